"""Recipes: the plain training loops that run a case. Each one builds data and a reference model, trains with a
Monitor attached through the public API only, samples, and returns the run's headline results.

A recipe module defines pydantic sections for data, model, training and sampling and registers a `Recipe`; its
`check`, if any, refuses combinations of settings across sections when the case is loaded, before a run folder
exists."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from gendiag.config import Case, Section
    from gendiag.runner import RunContext


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    sections: dict[str, type["Section"]]
    run: Callable[["Case", "RunContext"], dict[str, Any]]
    check: Callable[["Case"], None] | None = None


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    if recipe.name in RECIPES:
        raise ValueError(f"recipe {recipe.name!r} is registered twice")
    missing = {"data", "model", "training", "sampling"} - set(recipe.sections)
    if missing:
        raise ValueError(f"recipe {recipe.name!r} lacks sections {sorted(missing)}")
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str, path: Path | str = "case") -> Recipe:
    from gendiag.config import CaseError
    from gendiag.recipes import catalogue  # noqa: F401  (registers every recipe)

    if name not in RECIPES:
        import difflib

        close = difflib.get_close_matches(name, list(RECIPES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise CaseError(f"{path}: recipe: unknown recipe {name!r}{hint}; known: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]
