"""Recipes: the plain training loops that run a case. Each one builds data and a reference model, trains with a
Monitor attached through the public API only, samples, and returns the run's headline results.

A recipe comes in two modules: its case sections (pydantic models for data, model, training and sampling), its
cross-field `check` and its `register(Recipe(...))` in `gendiag/recipes/schemas/<name>.py`, and its training
loop in `gendiag/recipes/<name>.py`, named in the Recipe as "module:function" and imported only when a case runs.
So a case file is validated, and its `check` refuses settings that do not go together, without importing a
training loop or the runner, and before a run folder exists."""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from gendiag.errors import CaseError

if TYPE_CHECKING:
    from gendiag.config import Case, Section
    from gendiag.runner import RunContext

RunFunction = Callable[["Case", "RunContext"], dict[str, Any]]


@dataclass(frozen=True)
class Recipe:
    """A recipe's name, its case sections, its training loop (`run`: "module:function", or the function itself)
    and its cross-field `check` of a loaded case."""

    name: str
    description: str
    sections: dict[str, type["Section"]]
    run: str | RunFunction
    check: Callable[["Case"], None] | None = None

    def load_run(self) -> RunFunction:
        """The training loop, imported on first use."""
        if callable(self.run):
            return self.run
        module, _, function = self.run.partition(":")
        return getattr(importlib.import_module(module), function)


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    if recipe.name in RECIPES:
        raise ValueError(f"recipe {recipe.name!r} is registered twice")
    missing = {"data", "model", "training", "sampling"} - set(recipe.sections)
    if missing:
        raise ValueError(f"recipe {recipe.name!r} lacks sections {sorted(missing)}")
    if isinstance(recipe.run, str) and ":" not in recipe.run:
        raise ValueError(f"recipe {recipe.name!r}: run must be 'module:function', got {recipe.run!r}")
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str, path: Path | str = "case") -> Recipe:
    """The registered recipe `name` (the shipped ones register when first asked for); a CaseError naming `path`
    and the known recipes if there is none."""
    importlib.import_module("gendiag.recipes.catalogue")  # registers the shipped recipes, once
    if name not in RECIPES:
        close = difflib.get_close_matches(name, list(RECIPES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise CaseError(f"{path}: recipe: unknown recipe {name!r}{hint}; known: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]
