"""The autoregressive quantities against hand-computed twins, and each rule firing and silent on hand-made
summaries."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch

from gendiag.facts import check_facts
from gendiag.quantities.autoregressive import (
    CHUNK, Dependence, NetworkCheck, PositionLoss, Summary, ValueCounts, dependence, distinct_rows, layout,
    off_level_share, offset_cross_entropy,
)
from gendiag.rules.autoregressive import autoregressive_findings, causal_leak, target_offset
from gendiag.rules.codes import CODES
from gendiag.rules.thresholds import THRESHOLDS


def test_codes_and_thresholds_are_registered() -> None:
    ours = [entry for entry in CODES if entry.rule.startswith("gendiag.rules.autoregressive:")]
    assert {entry.code for entry in ours} == {"causal-leak", "train-sample-input-mismatch", "ar-samples-identical"}
    for entry in ours:
        for reference in filter(None, (entry.quantity, entry.rule, entry.figure)):
            module, name = reference.split(":")
            assert callable(getattr(importlib.import_module(module), name)), reference
    ours = [t for name, t in THRESHOLDS.items() if name.startswith("autoregressive.")]
    assert len(ours) == 7 and all(len(t.basis) > 40 for t in ours)


def test_value_counts_entropy_is_the_plug_in_entropy_per_position() -> None:
    counts = ValueCounts()
    counts.add(torch.tensor([[0.0, 1.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    assert counts.levels().tolist() == [0.0, 1.0]
    assert counts.entropy() == pytest.approx([0.0, math.log(2)])
    wide = ValueCounts()
    wide.add(torch.linspace(0, 1, 600).reshape(2, 300))
    assert wide.levels() is None and wide.entropy() is None and (wide.low, wide.high) == (0.0, 1.0)


def test_off_level_share_counts_values_between_levels() -> None:
    levels = np.array([0.0, 1.0])
    assert off_level_share(torch.tensor([0.0, 1.0, 0.5, 1.0 + 1e-9]), levels, 1e-5) == 0.25
    assert off_level_share(torch.arange(256.0) / 255, np.arange(256) / 255, 1e-5) == 0.0


def test_position_loss_averages_rows_and_chunks_and_skips_nonfinite_steps() -> None:
    loss = PositionLoss()
    for step in range(CHUNK + 3):
        loss.add(torch.tensor([[1.0, 3.0], [3.0, 5.0]]) * (1 if step < CHUNK else 10))
    loss.add(torch.tensor([[float("nan"), 1.0]]))
    assert loss.recent().tolist() == [2.0, 4.0] and loss.steps == CHUNK + 3 and loss.skipped == 1


def test_sequences_of_changing_length_average_each_position_over_the_steps_reaching_it() -> None:
    loss = PositionLoss()
    loss.add(torch.tensor([[1.0, 2.0]]))
    loss.add(torch.tensor([[3.0, 4.0, 6.0]]))
    assert loss.recent().tolist() == [2.0, 3.0, 6.0]
    counts = ValueCounts()
    counts.add(torch.tensor([[0.0, 1.0]]))
    counts.add(torch.tensor([[1.0, 1.0, 0.0]]))
    assert counts.entropy() == pytest.approx([math.log(2), 0.0, 0.0])


def test_layouts() -> None:
    tokens = torch.tensor([[0.0, 3.0, 2.0]])
    assert layout(tokens, torch.zeros(1, 3, 5)) == "tokens"
    assert layout(tokens / 7, torch.zeros(1, 3)) == "sequence"
    assert layout(torch.zeros(1, 1, 4, 4), torch.zeros(1, 256, 1, 4, 4)) == "image"
    assert layout(torch.zeros(1, 3), torch.zeros(1, 2)) is None


def test_dependence_of_a_hand_written_network_with_a_known_lookahead() -> None:
    """out[i] = x[i - 1] + 2 x[i + lookahead] (zero beyond the ends): brute force says which positions move."""

    def network(lookahead: int):
        def run(x: torch.Tensor) -> torch.Tensor:
            out = torch.zeros_like(x)
            out[:, 1:] += x[:, :-1]
            if lookahead < 0:
                out[:, -lookahead:] += 2 * x[:, :lookahead]
            else:
                out[:, :x.shape[1] - lookahead] += 2 * x[:, lookahead:]
            return out
        return run

    x = (torch.rand(16, 10, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    causal = dependence(network(-2), x, "sequence", step=3)
    assert causal.step == 3 and causal.positions == [0, 2, 4, 5, 7, 9]
    for row, p in enumerate(causal.positions):
        assert causal.own[row, :p].max(initial=0) == 0 and causal.later[row, :p + 1].max() == 0
    check = NetworkCheck("net", "sequence", [causal], None)
    assert causal_leak(Summary(networks=[check]), {}) is None
    sees_itself = NetworkCheck("net", "image", [dependence(network(0), x, "sequence", step=0)], None)
    finding = causal_leak(Summary(networks=[sees_itself]), {})
    assert finding.severity == "critical" and finding.evidence["net"]["later"] == 0


def test_target_offset_is_read_from_the_cross_entropies_else_the_convention() -> None:
    def check(kind: str, offsets: dict[int, float] | None) -> NetworkCheck:
        return NetworkCheck("net", kind, [], offsets)

    assert target_offset(check("tokens", {0: 0.01, 1: 2.0})) == (0, "measured")
    assert target_offset(check("image", {0: 2.0, 1: 0.1})) == (1, "measured")
    assert target_offset(check("image", {0: 1.0, 1: 1.1})) == (0, "convention")
    assert target_offset(check("tokens", None)) == (1, "convention")


def test_offset_cross_entropy_of_a_copying_network() -> None:
    tokens = torch.tensor([[0, 1, 2, 1]])
    copy = 20 * torch.nn.functional.one_hot(tokens, 3).float()
    found = offset_cross_entropy(tokens.float(), copy, "tokens")
    assert found[0] < 1e-6 and found[1] > 10


def test_loss_far_below_the_given_entropy_is_a_leak_and_at_it_is_not() -> None:
    assert causal_leak(Summary(loss=np.array([1.0, 1.1]), entropy=np.array(1.04)), {}) is None
    finding = causal_leak(Summary(loss=np.array([0.01, 0.02]), entropy=np.array(1.04)), {})
    assert finding.evidence["loss"]["ratio"] == pytest.approx(0.015 / 1.04)


def test_sampling_and_sample_rules() -> None:
    healthy = Summary(levels=[0.0, 1.0], sampling_off_level=[1 / 64], sampling_positions=64, samples_off_level=0.0,
                      samples=64, samples_distinct=40, data_distinct=15, data_compared=64)
    assert autoregressive_findings(healthy, {}) == []
    short = Summary(levels=[0.0, 1.0], sampling_off_level=[0.5], sampling_positions=4)
    assert autoregressive_findings(short, {}) == []  # one undrawn position of four is not judged
    written = Summary(levels=[0.0, 1.0], sampling_off_level=[0.9], sampling_positions=64, samples_off_level=1.0,
                      samples=64, samples_distinct=1, data_distinct=15, data_compared=64)
    assert {f.code: f.severity for f in autoregressive_findings(written, {})} == {
        "train-sample-input-mismatch": "critical", "ar-samples-identical": "critical"}
    few = Summary(samples=64, samples_distinct=6, data_distinct=64, data_compared=64)
    assert [(f.code, f.severity) for f in autoregressive_findings(few, {})] == [("ar-samples-identical", "warning")]
    same_data = Summary(samples=64, samples_distinct=1, data_distinct=1, data_compared=64)
    assert autoregressive_findings(same_data, {}) == []


def test_distinct_rows_and_the_entropy_fact() -> None:
    assert distinct_rows(torch.tensor([[1, 2], [1, 2], [2, 1]])) == 2
    check_facts({"entropy": 1.2})
    check_facts({"entropy": [0.5, 0.7]})
    with pytest.raises(ValueError, match="fact 'entropy' must be the data's entropy in nats per position"):
        check_facts({"entropy": -1.0})


def test_dependence_runs_images_with_channels_in_channel_order() -> None:
    """A pixel's last channel and every later pixel are changed; earlier channels of the pixel are not."""
    seen = []

    def run(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return x.sum(1, keepdim=True)

    x = torch.zeros(2, 3, 2, 2)
    result = dependence(run, x, "image", step=0)
    assert isinstance(result, Dependence) and result.positions == [0, 1, 2, 3]
    changed = seen[1] != seen[0]  # inputs from pixel 0 on, own pixel's last channel included
    assert changed[:, 2, 0, 0].all() and not changed[:, :2, 0, 0].any() and changed[:, :, 0, 1].all()


def test_a_network_drawing_noise_in_its_forward_pass_is_compared_with_itself() -> None:
    """Causal with noise: out[i] = x[i - 1] + noise. Same draws in every run, and torch's global generator untouched."""

    def noisy(x: torch.Tensor) -> torch.Tensor:
        out = torch.randn_like(x)
        out[:, 1:] += x[:, :-1]
        return out

    torch.manual_seed(5)
    x = torch.rand(8, 12)
    before = torch.random.get_rng_state()
    found = dependence(noisy, x, "sequence", step=0)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert causal_leak(Summary(networks=[NetworkCheck("net", "sequence", [found], None)]), {}) is None
    assert found.own.max() > 0  # the later outputs do move: the check is not blind


def test_a_leak_seen_by_the_network_check_and_the_loss_gives_its_advice_once() -> None:
    x = (torch.rand(8, 10, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    copying = dependence(lambda v: v.clone(), x, "sequence", step=0)
    summary = Summary(networks=[NetworkCheck("lm", "tokens", [copying], {0: 0.001, 1: 3.0})],
                      loss=np.array([0.001]), entropy=np.array(1.0))
    finding = causal_leak(summary, {"causal": "figures/c.png", "loss": "figures/l.png"})
    assert set(finding.evidence) == {"lm", "loss"} and finding.figure == "figures/c.png"
    assert finding.suggestion.count("Shift the targets by one") == 1
