"""The probe catalogue: every probe registers itself here by name.

The probe modules are imported the first time probes are chosen (a Monitor is made), not with gendiag: a
training script pays for them, and for what they import, only when it attaches a Monitor."""

from __future__ import annotations

import importlib

from gendiag.probes.base import TASKS, Probe

PROBES: dict[str, type[Probe]] = {}


def register(cls: type[Probe]) -> type[Probe]:
    """Class decorator: add a probe to the catalogue under its `name`."""
    if cls.name in PROBES:
        raise ValueError(f"probe name {cls.name!r} is registered twice")
    PROBES[cls.name] = cls
    return cls


def select_probes(choice: str | list[str], task: str, every: int = 1) -> list[Probe]:
    """Instantiate the probes for a task: "default" (those on by default for it), "all", or names."""
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {TASKS}")
    importlib.import_module("gendiag.probes.catalogue")  # registers every probe, once
    if choice == "default":
        names = [n for n, c in PROBES.items() if c.default and task in c.tasks]
    elif choice == "all":
        names = [n for n, c in PROBES.items() if task in c.tasks]
    elif isinstance(choice, (list, tuple)):
        unknown = [n for n in choice if n not in PROBES]
        if unknown:
            raise ValueError(f"unknown probes {unknown}; known: {sorted(PROBES)}")
        names = list(choice)
    else:
        raise ValueError(f"probes must be 'default', 'all' or a list of names, got {choice!r}")
    return [PROBES[n](every=every) for n in names]

