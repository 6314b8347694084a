"""diffusers: `DiffusersMonitor` on a loop written as diffusers' training examples write it: a tiny `UNet2DModel`
built from a config (never downloaded), `DDPMScheduler.add_noise` in training with integer timesteps, a
`DDIMScheduler` with the same betas for sampling (`scheduler.timesteps`, `scheduler.step(...).prev_sample`). The
healthy loop raises no warning; a loop that feeds the UNet `timesteps / T` in training while the sampler passes the
scheduler's integer steps is named `train-sample-input-mismatch`, with both scales."""

from __future__ import annotations

import json

import pytest
import torch

diffusers = pytest.importorskip("diffusers", reason="diffusers is not installed (pip install 'gendiag[diffusers]'); "
                                "the integration tests run with -m integration")

from gendiag.integrations.diffusers import DiffusersMonitor  # noqa: E402
from tests.loops import blob_images  # noqa: E402

pytestmark = pytest.mark.integration

SIZE = 8
T = 1000


def blobs(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 1, 8, 8) images in [-1, 1], as diffusers' examples scale theirs."""
    return 2 * blob_images(n, generator, SIZE) - 1


def tiny_unet() -> "diffusers.UNet2DModel":
    return diffusers.UNet2DModel(sample_size=SIZE, in_channels=1, out_channels=1, layers_per_block=1,
                                 block_out_channels=(16, 32), down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8, add_attention=False)


def train_and_sample(run_dir, steps: int, normalise_t_in_training: bool) -> list[dict]:
    torch.manual_seed(0)
    data_generator = torch.Generator().manual_seed(1)
    unet = tiny_unet()
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="linear")
    opt = torch.optim.AdamW(unet.parameters(), lr=2e-3)
    with DiffusersMonitor(run_dir, scheduler, unet, optimizer=opt) as mon:
        for step in range(steps):
            clean = blobs(32, data_generator)
            noise = torch.randn_like(clean)
            timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(clean),))
            noisy = scheduler.add_noise(clean, noise, timesteps)
            fed = timesteps / scheduler.config.num_train_timesteps if normalise_t_in_training else timesteps
            pred = unet(noisy, fed, return_dict=False)[0]
            per_sample = torch.nn.functional.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
            loss = per_sample.mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            mon.step(step, loss, t=timesteps, per_sample_loss=per_sample.detach())
        sampler = diffusers.DDIMScheduler.from_config(scheduler.config)
        sampler.set_timesteps(25)
        unet.eval()
        with mon.sampling(), torch.no_grad():
            image = torch.randn(256, 1, SIZE, SIZE)
            for t in sampler.timesteps:
                eps = unet(image, t).sample
                image = sampler.step(eps, t, image).prev_sample
        mon.observe_samples(image)
    assert scheduler.add_noise.__func__ is diffusers.DDPMScheduler.add_noise  # given back at finish
    return json.loads((run_dir / "findings.json").read_text())["findings"]


def serious(found: list[dict]) -> list[str]:
    return [f"{f['severity']} {f['code']}: {f['title']}" for f in found if f["severity"] in ("warning", "critical")]


def test_healthy_ddpm_loop_with_ddim_sampler_raises_no_warning(tmp_path) -> None:
    found = train_and_sample(tmp_path / "run", steps=200, normalise_t_in_training=False)
    assert serious(found) == []
    data = json.loads((tmp_path / "run" / "probe_data.json").read_text())
    assert data["schedule"]["steps"] == T                       # the schedule fact came from the scheduler


def test_training_on_t_over_T_while_sampling_on_integer_steps_is_named(tmp_path) -> None:
    found = {f["code"]: f for f in train_and_sample(tmp_path / "run", steps=60, normalise_t_in_training=True)}
    assert "train-sample-input-mismatch" in found, sorted(found)
    finding = found["train-sample-input-mismatch"]
    assert finding["severity"] == "critical"
    assert finding["evidence"]["train_t_max"] < 1.0 <= 900 <= finding["evidence"]["sampling_t_max"]
    assert finding["evidence"]["schedule_steps"] == T
    assert "integer step" in finding["message"]
