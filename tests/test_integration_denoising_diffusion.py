"""denoising-diffusion-pytorch: `GaussianDiffusionMonitor` on a loop written as the package's README writes one
(without its `Trainer`): a small `Unet`, a `GaussianDiffusion` whose `forward` computes the loss, images in [0, 1]
as its `auto_normalize` expects, and `diffusion.sample(batch_size=...)`. The healthy loop raises no warning; a loop
that forgets to scale 8-bit images to [0, 1] (pixel values up to 255, so the data are hundreds of times the noise's
scale after the package's own normalisation) is named `data-scale-mismatch`.

The package imports torchvision, which beside the CPU build of torch cannot be imported here: these tests run in
their own environment (README: the denoising-diffusion-pytorch integration), marked integration."""

from __future__ import annotations

import json

import pytest
import torch

ddpm = pytest.importorskip("denoising_diffusion_pytorch", reason="denoising-diffusion-pytorch is not installed (its "
                           "own environment: see the README); the integration tests run with -m integration")

from gendiag.integrations.denoising_diffusion import GaussianDiffusionMonitor  # noqa: E402
from tests.loops import blob_images  # noqa: E402

pytestmark = pytest.mark.integration

SIZE = 8
SAMPLES = 128


def diffusion_model() -> "ddpm.GaussianDiffusion":
    unet = ddpm.Unet(dim=8, dim_mults=(1, 2), channels=1, flash_attn=False)
    return ddpm.GaussianDiffusion(unet, image_size=SIZE, timesteps=200, sampling_timesteps=25)


def train_and_sample(run_dir, steps: int, pixel_scale: float) -> tuple[list[dict], GaussianDiffusionMonitor]:
    torch.manual_seed(0)
    data_generator = torch.Generator().manual_seed(1)
    diffusion = diffusion_model()
    opt = torch.optim.Adam(diffusion.parameters(), lr=1e-3)
    with GaussianDiffusionMonitor(run_dir, diffusion, optimizer=opt) as mon:
        for step in range(steps):
            images = blob_images(32, data_generator, SIZE) * pixel_scale
            loss = diffusion(images)
            loss.backward()
            opt.step()
            opt.zero_grad()
            mon.step(step, loss)
        samples = diffusion.sample(batch_size=SAMPLES)
    assert samples.shape == (SAMPLES, 1, SIZE, SIZE)
    assert not {"q_sample", "p_losses", "sample"} & set(vars(diffusion))   # its own methods are back
    return json.loads((run_dir / "findings.json").read_text())["findings"], mon


def serious(found: list[dict]) -> list[str]:
    return [f"{f['severity']} {f['code']}: {f['title']}" for f in found if f["severity"] in ("warning", "critical")]


def test_healthy_gaussian_diffusion_raises_no_warning(tmp_path) -> None:
    found, _ = train_and_sample(tmp_path / "run", steps=400, pixel_scale=1.0)
    assert serious(found) == []
    data = json.loads((tmp_path / "run" / "probe_data.json").read_text())
    first, last = data["loss_by_t"]["late_steps"]                     # per-sample losses read from p_losses:
    assert data["loss_by_t"]["samples"] == (last - first + 1) * 32    # 32 a step over the steps it judged
    assert data["samples_vs_data"]["n_samples"] == SAMPLES           # diffusion.sample's samples observed
    assert [f["code"] for f in found if f["code"] in ("probe-not-run", "gradients-not-seen")] == []


def test_images_left_in_0_255_are_data_scale_mismatch(tmp_path) -> None:
    found, _ = train_and_sample(tmp_path / "run", steps=150, pixel_scale=255.0)
    codes = {f["code"]: f for f in found}
    assert "data-scale-mismatch" in codes, sorted(codes)


def test_the_loss_the_loop_gets_is_the_package_s_own(tmp_path) -> None:
    """The Monitor reads per-sample losses through `p_losses`; the mean the loop backpropagates is unchanged."""
    torch.manual_seed(0)
    diffusion = diffusion_model()
    images = blob_images(8, torch.Generator().manual_seed(2), SIZE)
    times, noise = torch.randint(0, 200, (8,)), torch.randn(8, 1, SIZE, SIZE)
    expected = diffusion.p_losses(diffusion.normalize(images), times, noise)
    with GaussianDiffusionMonitor(tmp_path / "run", diffusion, strict=True) as mon:
        got = diffusion.p_losses(diffusion.normalize(images), times, noise)
        mon.step(0, got)
    assert torch.equal(got, expected)


def test_an_object_that_is_not_a_gaussian_diffusion_is_refused(tmp_path) -> None:
    with pytest.raises(TypeError, match="GaussianDiffusion"):
        GaussianDiffusionMonitor(tmp_path / "run", torch.nn.Linear(2, 2))
    assert not (tmp_path / "run").exists()
