"""Imports every probe module in `gendiag.probes` once, so that each registers itself in `PROBES`."""

from __future__ import annotations

import importlib
import pkgutil

import gendiag.probes as _package

for _module in pkgutil.iter_modules(_package.__path__):
    if _module.name not in ("base", "catalogue"):
        importlib.import_module(f"gendiag.probes.{_module.name}")
