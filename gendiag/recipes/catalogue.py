"""Imports every recipe module in `gendiag.recipes` once, so that each registers itself in `RECIPES`."""

from __future__ import annotations

import importlib
import pkgutil

import gendiag.recipes as _package

for _module in pkgutil.iter_modules(_package.__path__):
    if _module.name != "catalogue":
        importlib.import_module(f"gendiag.recipes.{_module.name}")
