"""The flattened-image flagship: the original's buggy loss and sampler, the similarity measures, the recipe at a
tiny size, and the fix ladder losing the findings its fixes address."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gendiag.config import load_case
from gendiag.quantities.flattened import binary_iou, cosine
from gendiag.recipes.flattened.loss import flattened_loss
from gendiag.recipes.flattened.sampling import euler_time_points
from gendiag.runner import run_case
from reference_models.concat_mlp import ConcatMLP

CASES = Path(__file__).resolve().parent.parent / "cases"
TINY = ["data.image_size=16", "data.points_per_image=300", "training.batch_size=8", "model.hidden=[32, 16]",
        "training.checkpoints=[2]", "sampling.time_points=5", "sampling.images=2", "sampling.n_samples=4",
        "probes.strict=true"]


def zero_network(dim: int) -> ConcatMLP:
    model = ConcatMLP(dim, hidden=(4,))
    torch.nn.init.zeros_(model.net[-1].weight)
    torch.nn.init.zeros_(model.net[-1].bias)
    return model


def test_buggy_loss_is_the_original_formula_on_a_hand_batch() -> None:
    x0 = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    z = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    t = torch.tensor([0.5, 0.75])
    batch = flattened_loss(zero_network(2), x0, z, t, "buggy_x0")
    # targets (z - x0)/(1 - t): [2, 0] and [-4, 0]; squared norms 4 and 16
    assert torch.equal(batch.inputs, x0)
    assert torch.allclose(batch.per_sample_loss, torch.tensor([4.0, 16.0]))
    assert float(batch.loss.detach()) == pytest.approx(10.0)


def test_buggy_loss_with_a_trained_shape_network_matches_the_formula() -> None:
    generator = torch.Generator().manual_seed(0)
    model = ConcatMLP(6, hidden=(5, 3))
    x0, z, t = torch.rand(4, 6, generator=generator), torch.rand(4, 6, generator=generator), torch.rand(4, generator=generator)
    with torch.no_grad():
        expected = ((model(x0, t) - (z - x0) / (1 - t[:, None])) ** 2).sum(1).mean()
    assert float(flattened_loss(model, x0, z, t, "buggy_x0").loss.detach()) == pytest.approx(float(expected), rel=1e-6)


@settings(max_examples=30, deadline=None)
@given(t=st.floats(0.0, 0.99), seed=st.integers(0, 1000))
def test_correct_loss_feeds_x_t_and_its_target_is_the_velocity_at_x_t(t: float, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    x0, z = torch.rand(3, 5, generator=generator), torch.rand(3, 5, generator=generator)
    times = torch.full((3,), t)
    batch = flattened_loss(zero_network(5), x0, z, times, "correct")
    xt = t * z + (1 - t) * x0
    assert torch.allclose(batch.inputs, xt)
    assert torch.allclose(batch.target, (z - xt) / (1 - t), atol=1e-4)


def test_loss_rejects_mismatched_batches() -> None:
    with pytest.raises(ValueError, match="one shape"):
        flattened_loss(zero_network(2), torch.zeros(2, 2), torch.zeros(3, 2), torch.zeros(2), "buggy_x0")


def test_euler_integrates_and_the_frozen_sampler_returns_its_start() -> None:
    x0 = torch.tensor([[1.0, -1.0]])
    seen: list[float] = []

    def field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(float(t[0]))
        return torch.full_like(x, 2.0)

    moved = euler_time_points(field, x0, time_points=11)
    assert torch.allclose(moved, x0 + 2.0)
    assert len(seen) == 10 and seen[0] == 0.0 and seen[-1] == pytest.approx(0.9)
    frozen = euler_time_points(lambda x, t: torch.full_like(x, 2.0), x0, time_points=11, frozen=True)
    assert torch.equal(frozen, x0)


def test_similarities_on_hand_images() -> None:
    a = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    b = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    assert float(cosine(a, b)) == pytest.approx(0.5)
    assert float(binary_iou(a, b, 0.5)) == pytest.approx(1 / 3)
    assert float(binary_iou(torch.zeros(1, 4), torch.zeros(1, 4), 0.5)) == 1.0


@pytest.mark.slow
def test_recipe_runs_at_a_tiny_size(tmp_path: Path) -> None:
    case = load_case(CASES / "flattened_moons.yaml", overrides=[*TINY, "training.steps=3",
                                                                            "probes.set=[loss, loss_by_t, inputs]"])
    result = run_case(case, out_root=tmp_path)
    for key in ("final_loss", "cos_target", "cos_source", "sampler_displacement",
                "loss_share_t_above_0.9_all_iterations", "weight_distance_from_init"):
        assert key in result.results
    report = (result.run_dir / "report.md").read_text()
    assert "## Why it collapses" in report and "1. " in report
    for figure in ("flattened_checkpoints", "flattened_similarity", "flattened_loss"):
        assert (result.run_dir / "figures" / f"{figure}.png").is_file()
    table = (result.run_dir / "metrics.csv").read_text()
    assert "flattened/cos_target" in table and "flattened/cos_source" in table


def test_every_flattened_case_and_its_faithful_profile_load() -> None:
    for path in sorted(CASES.glob("flattened_*.yaml")):
        case = load_case(path, profile="faithful")
        assert case.training.batch_size == 256 and case.data.points_per_image == 50_000
        assert case.training.steps == 1000 and case.model.hidden == [2048, 512, 256]
    faithful = load_case(CASES / "flattened_moons.yaml", profile="faithful")
    assert faithful.training.lr == 1e-6 and faithful.training.loss == "buggy_x0"
    assert faithful.data.source == "rendered_gaussian" and faithful.data.mode == "binary"


def codes(run_dir: Path) -> set[str]:
    return {f["code"] for f in json.loads((run_dir / "findings.json").read_text())["findings"]}


@pytest.mark.slow
def test_the_ladder_loses_the_findings_its_fixes_address(tmp_path: Path) -> None:
    small = [*TINY, "training.steps=40", "training.batch_size=16", "training.observe_every=10",
             "probes.set=[loss_by_t, data_repr]"]
    buggy = codes(run_case(load_case(CASES / "flattened_moons.yaml", overrides=small), out_root=tmp_path).run_dir)
    fix1 = codes(run_case(load_case(CASES / "flattened_moons_fix1.yaml", overrides=small), out_root=tmp_path).run_dir)
    fix2 = codes(run_case(load_case(CASES / "flattened_moons_fix2.yaml", overrides=small), out_root=tmp_path).run_dir)
    assert {"target-explodes", "source-not-noise"} <= buggy
    assert not {"target-explodes", "loss-t-imbalance"} & fix1 and "source-not-noise" in fix1
    assert not {"target-explodes", "source-not-noise", "data-binary-pixels"} & fix2
