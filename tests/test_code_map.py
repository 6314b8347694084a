"""Every finding code leads in one hop to its measurement, its rule and its figure (issue 22), and every threshold
a rule uses carries its basis."""

from __future__ import annotations

import importlib

import pytest

from gendiag.findings import STAGES
from gendiag.rules.codes import CODES
from gendiag.rules.thresholds import THRESHOLDS

ABOUT_THE_DIAGNOSIS = {"probe-failed", "probe-not-run"}  # about gendiag's own work, not the training


def resolve(target: str) -> object:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def test_every_staged_code_is_mapped() -> None:
    """A code two probes raise (train-sample-input-mismatch: the inputs probe and the autoregressive one) has one
    entry per rule; no entry repeats another."""
    pairs = [(entry.code, entry.rule) for entry in CODES]
    assert len(pairs) == len(set(pairs)), "an entry is repeated"
    staged = {code for codes in STAGES.values() for code in codes}
    assert staged - ABOUT_THE_DIAGNOSIS == {code for code, _ in pairs}


@pytest.mark.parametrize("entry", CODES, ids=lambda entry: entry.code)
def test_each_mapped_object_exists(entry) -> None:
    assert entry.quantity.startswith("gendiag.quantities.") and callable(resolve(entry.quantity))
    assert entry.rule.startswith("gendiag.rules.") and callable(resolve(entry.rule))
    if entry.figure is not None:
        assert entry.figure.startswith("gendiag.figures.") and callable(resolve(entry.figure))


def test_every_threshold_states_a_basis() -> None:
    assert len(THRESHOLDS) >= 40
    for threshold in THRESHOLDS.values():
        assert len(threshold.basis.split()) >= 6, f"{threshold.name}: basis too thin: {threshold.basis!r}"
