"""`gendiag attach`: unchanged scripts, written as users write them, run under the global hooks. The flagship (the
failed flattened-moons project as a plain script) must be named by its findings; the healthy flow, GAN and VAE
scripts must get their task right and no false alarm."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from gendiag.attach import run_attached

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "cases" / "scripts"


def attach(tmp_path: Path, script: str, *args: str, task: str | None = None):
    return run_attached(["python", str(SCRIPTS / script), *args], tmp_path / "run", task=task)


def serious(report) -> list[str]:
    return [f"{f.severity} {f.code}" for f in report.findings if f.severity != "info"]


def inferred(run_dir: Path) -> str:
    sections = json.loads((run_dir / "sections.json").read_text())
    return next(s["text"] for s in sections if s["title"] == "What gendiag attach inferred")


@pytest.mark.slow
def test_flagship_names_the_failed_projects_faults(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    attached = attach(tmp_path, "failed_flattened_moons.py", "--steps", "40", "--batch", "8", "--points", "2000",
                      "--hidden", "128", "64", "32")
    codes = {f.code: f.severity for f in attached.report.findings}
    assert attached.exit_code == 0
    for code in ("train-sample-input-mismatch", "target-explodes", "source-not-noise"):
        assert codes.get(code) == "critical", (code, codes)
    assert {"rendered-point-cloud", "data-near-duplicates"} & set(codes)
    assert "**Task: flow**" in inferred(attached.run_dir)
    assert "final: cosine to the target" in capsys.readouterr().out  # the script's own output, as it printed it


@pytest.mark.slow
def test_healthy_flow_script_is_flow_and_quiet(tmp_path: Path) -> None:
    attached = attach(tmp_path, "healthy_flow.py", "--steps", "400", "--samples", "500")
    text = inferred(attached.run_dir)
    assert "**Task: flow**" in text and "through `PowBackward0`" in text
    assert serious(attached.report) == []


@pytest.mark.slow
def test_gan_script_is_gan_and_quiet(tmp_path: Path) -> None:
    attached = attach(tmp_path, "gan_ring.py", "--steps", "400")
    text = inferred(attached.run_dir)
    assert "**Task: gan**" in text and "| generator |" in text and "| discriminator |" in text
    assert serious(attached.report) == []


@pytest.mark.slow
def test_vae_script_is_vae_and_quiet(tmp_path: Path) -> None:
    attached = attach(tmp_path, "vae_mnist.py", "--epochs", "4", "--images", "5000")
    text = inferred(attached.run_dir)
    assert "**Task: vae**" in text and "from DataLoader batches" in text
    assert serious(attached.report) == []


@pytest.mark.slow
def test_flagship_at_the_cases_default_sizes(tmp_path: Path) -> None:
    attached = attach(tmp_path, "failed_flattened_moons.py")
    codes = {f.code for f in attached.report.findings if f.severity == "critical"}
    assert {"train-sample-input-mismatch", "target-explodes", "source-not-noise", "rendered-point-cloud"} <= codes


def test_every_global_hook_is_undone(tmp_path: Path) -> None:
    from torch.nn.modules import module
    from torch.optim import optimizer
    from torch.utils.data import dataloader

    before = (torch.autograd.backward, dataloader._BaseDataLoaderIter.__next__, sys.argv[:], sys.path[:])
    script = tmp_path / "boom.py"
    script.write_text("import torch\nnet = torch.nn.Linear(2, 2)\nnet(torch.zeros(3, 2)).sum().backward()\n"
                      "raise RuntimeError('the user broke it')\n")
    attached = run_attached(["python", str(script)], tmp_path / "run")
    assert attached.exit_code == 1
    assert attached.report.partial == "the script raised RuntimeError: the user broke it"
    assert (torch.autograd.backward, dataloader._BaseDataLoaderIter.__next__, sys.argv[:], sys.path[:]) == before
    assert not module._global_forward_hooks and not module._global_forward_pre_hooks
    assert torch.nn.Module.__call__ is module.Module._wrapped_call_impl
    assert not optimizer._global_optimizer_pre_hooks and not optimizer._global_optimizer_post_hooks
