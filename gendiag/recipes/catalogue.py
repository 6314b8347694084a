"""Registers the shipped recipes: imports each case-section module in `gendiag.recipes.schemas` (light: no training
loop, no runner), and the recipes whose sections still live beside their loop."""

from __future__ import annotations

import importlib
import pkgutil

import gendiag.recipes.schemas as _schemas

# flattened.py defines its sections beside its loop and registers itself; it joins schemas/ when it is split by job
_WHOLE = ("gendiag.recipes.flattened",)

for _module in pkgutil.iter_modules(_schemas.__path__):
    if _module.name != "common":
        importlib.import_module(f"gendiag.recipes.schemas.{_module.name}")
for _name in _WHOLE:
    importlib.import_module(_name)
