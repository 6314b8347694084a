"""Registers the shipped recipes: imports each case-section module in `gendiag.recipes.schemas` (light: no training
loop, no runner)."""

from __future__ import annotations

import importlib
import pkgutil

import gendiag.recipes.schemas as _schemas

for _module in pkgutil.iter_modules(_schemas.__path__):
    if _module.name != "common":
        importlib.import_module(f"gendiag.recipes.schemas.{_module.name}")
