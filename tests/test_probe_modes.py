"""The `mode-collapse` probe: fires on dropped modes or classes (naming them and since when), stays silent on a
balanced generator and on too few samples to judge."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import gendiag

ANGLES = torch.arange(8) * 2 * math.pi / 8
CENTERS = torch.stack([ANGLES.cos(), ANGLES.sin()], 1)


def ring(n: int, modes: list[int], generator: torch.Generator) -> torch.Tensor:
    index = torch.tensor(modes)[torch.randint(0, len(modes), (n,), generator=generator)]
    return CENTERS[index] + 0.01 * torch.randn(n, 2, generator=generator)


def run_modes(run_dir: Path, modes_at: dict[int, list[int]], n_samples: int = 2500) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    with gendiag.Monitor(run_dir, task="gan", probes=["mode-collapse"], strict=True, modes=CENTERS,
                         mode_std=0.01) as mon:
        for step in range(1, 401):
            mon.step(step, 0.0)
            if step in modes_at:
                mon.observe_samples(ring(n_samples, modes_at[step], generator))
    return json.loads((run_dir / "findings.json").read_text())["findings"]


def test_dropped_modes_are_named_with_the_step_they_went_missing(tmp_path: Path) -> None:
    every, five, four = list(range(8)), [0, 1, 2, 3, 4], [0, 1, 2, 3]
    findings = run_modes(tmp_path, {100: every, 200: five, 300: five, 400: four})
    assert [f["code"] for f in findings] == ["mode-collapse"]
    finding = findings[0]
    evidence = finding["evidence"]
    assert evidence["dropped_modes"] == [4, 5, 6, 7] and evidence["modes_covered"] == 4
    assert evidence["missing_since_step"] == {"4": 400, "5": 200, "6": 200, "7": 200}
    assert evidence["modes_covered_over_time"] == [8, 5, 5, 4] and evidence["never_captured"] == []
    assert evidence["reverse_kl"] == pytest.approx(math.log(2), abs=0.01)  # four of eight modes, evenly
    assert finding["severity"] == "critical"  # half the modes are gone
    assert "mode 5, 6, 7 since step 200" in finding["message"] and "mode 4 since step 400" in finding["message"]
    assert (tmp_path / finding["figure"]).is_file()
    state = json.loads((tmp_path / "probe_data.json").read_text())["mode-collapse"]
    assert state["modes_captured"] == 4 and state["n_modes"] == 8


def test_balanced_generator_is_silent(tmp_path: Path) -> None:
    every = list(range(8))
    assert run_modes(tmp_path, {200: every, 400: every}) == []
    assert (tmp_path / "figures" / "mode_collapse.png").is_file()


def test_imbalance_without_a_dropped_mode_fires_on_reverse_kl(tmp_path: Path) -> None:
    heavy = [0] * 20 + list(range(1, 8))  # mode 0 draws 20 of 27 shares
    findings = run_modes(tmp_path, {400: heavy})
    assert len(findings) == 1 and findings[0]["evidence"]["dropped_modes"] == []
    assert findings[0]["evidence"]["reverse_kl"] > 0.2 and findings[0]["severity"] == "warning"


def test_too_few_samples_to_name_a_dropped_mode_is_silent(tmp_path: Path) -> None:
    # 20 samples over 8 modes: an even generator misses some mode with probability > 1%.
    assert run_modes(tmp_path, {400: list(range(7))}, n_samples=20) == []


def pixel_classifier(images: torch.Tensor) -> torch.Tensor:
    """Class = index of the brightest of 4 pixels."""
    return images.reshape(len(images), -1).argmax(dim=1)


def images_of(classes: list[int], n: int, generator: torch.Generator) -> torch.Tensor:
    labels = torch.tensor(classes)[torch.randint(0, len(classes), (n,), generator=generator)]
    images = 0.1 * torch.rand(n, 4, generator=generator)
    images[torch.arange(n), labels] = 1.0
    return images.reshape(n, 1, 2, 2)


@pytest.mark.parametrize("classes, fires", [([0, 1, 2, 3], False), ([0, 1], True)])
def test_classes_from_a_classifier(tmp_path: Path, classes: list[int], fires: bool) -> None:
    generator = torch.Generator().manual_seed(1)
    with gendiag.Monitor(tmp_path, task="gan", probes=["mode-collapse"], strict=True, classifier=pixel_classifier,
                         n_classes=4) as mon:
        mon.step(1, 0.0)
        mon.observe_samples(images_of([0, 1, 2, 3], 500, generator))
        mon.step(2, 0.0)
        mon.observe_samples(images_of(classes, 500, generator))
    findings = json.loads((tmp_path / "findings.json").read_text())["findings"]
    assert [f["code"] for f in findings] == (["mode-collapse"] if fires else [])
    if fires:
        evidence = findings[0]["evidence"]
        assert evidence["dropped_classes"] == [2, 3] and evidence["missing_since_step"] == {"2": 2, "3": 2}
        assert evidence["largest_share"] == pytest.approx(0.5, abs=0.06)


def test_missing_facts_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="modes were given without mode_std"):
        gendiag.Monitor(tmp_path / "a", task="gan", probes=["mode-collapse"], strict=True, modes=CENTERS)
    with pytest.raises(ValueError, match="needs n_classes"):
        gendiag.Monitor(tmp_path / "b", task="gan", probes=["mode-collapse"], strict=True,
                        classifier=pixel_classifier)
