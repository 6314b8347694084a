"""Case files: YAML with sections data, model, training, sampling, probes, output; validated before any
work starts, with errors that name the file, the key path and what was expected.

Layout of a case file::

    name: pointcloud_moons            # the case's name (folder under reports/)
    description: one line for `gendiag list`
    recipe: flow_matching             # the training loop that runs it (gendiag.recipes)
    seed: 0
    data: {...}                       # validated by the recipe's schema
    model: {...}
    training: {...}
    sampling: {...}
    probes: {set: default, every: 1, strict: false, figures: all}
    run: {checkpoint_every: 500, on_nonfinite: stop, threads: null}
    output: {root: reports}
    profiles:                         # named sets of overrides by key path; the file's values are the default
      faithful: {training.steps: 1000}
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo

from gendiag.errors import CaseError
from gendiag.live import CHECK_EVERY, CHECK_SECONDS
from gendiag.pending import FLUSH_EVERY
from gendiag.recipes import get_recipe

__all__ = ["Case", "CaseError", "CaseFile", "DistributionName", "DistributionParams", "Section", "distribution_name",
           "load_case", "load_resolved"]


class Section(BaseModel):
    """Base of every case-file section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ProbesConfig(Section):
    set: Literal["default", "all"] | list[str] = "default"
    every: int = Field(1, ge=1, description="step interval of the probes' per-step work")
    strict: bool = False
    check_every: int = Field(CHECK_EVERY, ge=0, description="steps between live checks of the findings (0: none)")
    check_seconds: float = Field(CHECK_SECONDS, ge=0, description="least wall time between two live checks")
    flush_every: int = Field(FLUSH_EVERY, ge=1, description="steps between two flushes, where what the steps gathered "
                                                            "reaches the host (under torchrun live checks come there)")
    figures: Literal["all", "findings"] = Field(
        "all", description="the report's figures: every probe's (all) or the overview and those of findings that "
                           "hold (findings, the Monitor's default)")


class RunConfig(Section):
    checkpoint_every: int = Field(500, ge=0, description="steps between checkpoints for --resume (0: none)")
    on_nonfinite: Literal["stop", "continue"] = Field(
        "stop", description="a NaN or infinite loss stops the run cleanly (the last good checkpoint is kept) or not")
    threads: int | None = Field(None, ge=1, description="torch's intra-op threads (None: OMP_NUM_THREADS when set, "
                                                        "else the physical cores this process may use)")


class OutputConfig(Section):
    root: str = Field("reports", description="folder under which runs are written: ROOT/<case>/<stamp>-<id>/")


class CaseFile(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    recipe: str
    seed: int = Field(0, ge=0)
    data: dict[str, Any] = Field(default_factory=dict)
    model: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    sampling: dict[str, Any] = Field(default_factory=dict)
    probes: ProbesConfig = ProbesConfig()
    run: RunConfig = RunConfig()
    output: OutputConfig = OutputConfig()
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)


RECIPE_SECTIONS = ("data", "model", "training", "sampling")


def _known_distribution(name: str, also: tuple[str, ...] = ()) -> str:
    """A 2D distribution's name from gendiag.data.DISTRIBUTIONS (or one of `also`, e.g. an image set)."""
    from gendiag.data import DISTRIBUTIONS  # torch, when a case is validated rather than when config is imported

    known = [*also, *DISTRIBUTIONS]
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown distribution {name!r}{hint}; expected one of {', '.join(known)}")
    return name


def distribution_name(*also: str) -> Any:
    """The type of a recipe's data-set field: a 2D distribution's name, or one of `also`."""
    return Annotated[str, AfterValidator(functools.partial(_known_distribution, also=also))]


DistributionName = distribution_name()


def _buildable_params(params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    """Build the section's 2D distribution (its `distribution` or `dataset` field, validated before) once, so that
    a parameter it does not take or a value it refuses stops the case at load time, not in a half-made run."""
    from gendiag.data import DISTRIBUTIONS, make_distribution

    name = info.data.get("distribution", info.data.get("dataset"))
    if name not in DISTRIBUTIONS:  # an image set, or a name already refused
        return params
    accepted = [p for p in inspect.signature(DISTRIBUTIONS[name]).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not a parameter of distribution {name!r}; "
                         f"expected some of {', '.join(accepted)}")
    try:
        make_distribution(name, **params)
    except (TypeError, OverflowError, RuntimeError) as error:  # e.g. a value too large to build (torch refuses)
        raise ValueError(f"distribution {name!r} cannot be built from {params}: {error}") from error
    return params


DistributionParams = Annotated[dict[str, Any], AfterValidator(_buildable_params)]


@dataclass(frozen=True)
class Case:
    """A validated case: the top-level file plus the recipe's typed sections."""

    path: Path
    file: CaseFile
    profile: str
    data: Section
    model: Section
    training: Section
    sampling: Section
    raw: dict[str, Any]

    @property
    def name(self) -> str:
        return self.file.name


def load_case(path: str | Path, overrides: list[str] = (), profile: str | None = None,
              seed: int | None = None) -> Case:
    """Read, override and validate a case file. Raises CaseError with a one-line message."""
    path = Path(path)
    raw = read_yaml(path)
    profiles = raw.get("profiles", {}) if isinstance(raw, dict) else {}
    chosen = profile or "default"
    if profile is not None and profile != "default":
        if not isinstance(profiles, dict) or profile not in profiles:
            known = ", ".join(["default", *sorted(profiles)]) if isinstance(profiles, dict) else "default"
            raise CaseError(f"{path}: no profile {profile!r} (known: {known})")
        raw = apply_overrides(raw, [f"{k}={_yaml_scalar(v)}" for k, v in profiles[profile].items()], path)
    raw = apply_overrides(raw, list(overrides), path)
    if seed is not None:
        raw["seed"] = seed
    return _build_case(path, raw, chosen)


RUN_FOLDER_FILES = ("config.yaml", "run.json")


def load_resolved(run_dir: str | Path) -> Case:
    """The case a run folder was started with (its config.yaml), for `gendiag run --resume`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CaseError(f"{run_dir}: no such run folder")
    if not all((run_dir / name).is_file() for name in RUN_FOLDER_FILES):
        raise CaseError(f"{run_dir}: not a run folder (a run folder of `gendiag run` holds "
                        f"{' and '.join(RUN_FOLDER_FILES)}, e.g. reports/<case>/<stamp>-<id>/)")
    path = run_dir / "config.yaml"
    raw = read_yaml(path)
    return _build_case(path, raw, str(raw.pop("profile", "default")))


def _build_case(path: Path, raw: dict[str, Any], profile: str) -> Case:
    """Validate the top level, then the recipe's own sections, then the recipe's checks across them."""
    file = _validate(CaseFile, raw, path, "")
    recipe = get_recipe(file.recipe, path)
    sections = {name: _validate(recipe.sections[name], getattr(file, name), path, f"{name}.")
                for name in RECIPE_SECTIONS}
    case = Case(path=path, file=file, profile=profile, raw=raw, **sections)
    if recipe.check is not None:
        recipe.check(case)
    return case


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CaseError(f"{path}: no such case file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise CaseError(f"{path}: malformed YAML{where}: {problem}") from error
    except UnicodeDecodeError as error:
        raise CaseError(f"{path}: not a UTF-8 text file ({error.reason})") from error
    if not isinstance(data, dict):
        raise CaseError(f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}")
    return data


def apply_overrides(raw: dict[str, Any], overrides: list[str], path: Path) -> dict[str, Any]:
    """Apply `key.path=value` overrides (value parsed as YAML) to a copy of the raw case."""
    result = copy.deepcopy(raw)
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key.strip():
            raise CaseError(f"{path}: override {override!r} is not of the form key.path=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise CaseError(f"{path}: override {override!r}: value is not valid YAML") from error
        node = result
        parts = key.strip().split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise CaseError(f"{path}: override {key}: {'.'.join(parts[:depth + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def _validate(model: type[Section], data: Any, path: Path, prefix: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        raise CaseError(f"{path}: {_describe(first, model, prefix)}") from None


def _describe(error: dict[str, Any], model: type[Section], prefix: str) -> str:
    location = prefix + ".".join(_key_text(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        known = _known_keys(model, error["loc"][:-1])
        close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(sorted(known))})"
        return f"{location}: unknown key{hint}"
    if error["type"] == "missing":
        return f"{location}: required key is missing"
    if error["type"] == "value_error":  # our own validators' messages say what was given and what was expected
        return f"{location}: {error['ctx']['error']}"
    given = error.get("input")
    shown = repr(given) if not isinstance(given, (dict, list)) else type(given).__name__
    return f"{location}: {error['msg'].lower()}, got {shown}"


def _key_text(part: Any) -> str:
    """A key as it can be shown on one line: plain keys as they are, odd ones (spaces, control characters) quoted."""
    text = str(part)
    return text if text.isprintable() and text.strip() == text and text else repr(text)


def _known_keys(model: type[Section], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = field.annotation
    return list(getattr(current, "model_fields", {}))


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
