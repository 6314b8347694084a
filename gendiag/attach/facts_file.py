"""`gendiag attach --facts FILE.yaml`: the facts a Monitor takes, written as YAML. Lists of numbers become tensors
(`modes`, `reference`, `schedule`), `image_shape` a tuple; facts that are functions (`source`, `sampler`,
`classifier`) cannot be written in YAML and are refused. Every fact is then checked as `Monitor` checks it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from gendiag.facts import check_facts

CALLABLE_FACTS = ("source", "sampler", "classifier")
TENSOR_FACTS = ("modes", "reference", "schedule")


def load_facts(path: str | Path) -> dict[str, Any]:
    """The facts in `path`, ready for `Monitor(**facts)`; a ValueError names the file and the fact at fault."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--facts {path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"--facts {path}: not valid YAML ({' '.join(str(error).split())})") from error
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"--facts {path}: expected a mapping of fact names to values, got {type(raw).__name__}")
    facts: dict[str, Any] = {}
    for name, value in raw.items():
        if name in CALLABLE_FACTS:
            raise ValueError(f"--facts {path}: fact {name!r} is a function and cannot be given in YAML; use "
                             f"gendiag.Monitor in the script for it")
        if name in TENSOR_FACTS and isinstance(value, list):
            value = torch.tensor(value, dtype=torch.float32)
        elif name == "image_shape" and isinstance(value, list):
            value = tuple(value)
        facts[name] = value
    try:
        check_facts(facts)
    except ValueError as error:
        raise ValueError(f"--facts {path}: {str(error).removeprefix('Monitor: ')}") from error
    return facts
