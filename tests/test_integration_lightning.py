"""PyTorch Lightning: `GendiagCallback` on LightningModules written as Lightning's users write them, trained by a
real `Trainer` on CPU. A healthy flow-matching module (automatic optimization) and a healthy GAN (two optimizers,
manual optimization) raise no warning; a GAN whose generator step reuses the detached fake batch is named
`no-gradient-reaches` for G."""

from __future__ import annotations

import json

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch", reason="PyTorch Lightning is not installed (pip install "
                         "'gendiag[lightning]'); the integration tests run with -m integration")

from gendiag.integrations.lightning import GendiagCallback  # noqa: E402

pytestmark = pytest.mark.integration

ANGLES = torch.arange(8) * (torch.pi / 4)
CENTERS = 2 * torch.stack([ANGLES.cos(), ANGLES.sin()], dim=1)
LATENT = 2


def ring(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return CENTERS[torch.randint(0, 8, (n,), generator=generator)] + 0.1 * torch.randn(n, 2, generator=generator)


def gaussian(n: int, seed: int) -> torch.Tensor:
    """A stretched, shifted 2-D Gaussian: what a small GAN learns reliably in a few hundred steps."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=generator) * torch.tensor([1.0, 0.4]) + torch.tensor([1.0, -0.5])


def loader(data: torch.Tensor, batch_size: int = 128) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data), batch_size=batch_size, shuffle=True,
                                       generator=torch.Generator().manual_seed(2))


def trainer(callback: GendiagCallback, epochs: int) -> "pl.Trainer":
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, callbacks=[callback], logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)


class Velocity(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.SiLU(), torch.nn.Linear(64, 64),
                                       torch.nn.SiLU(), torch.nn.Linear(64, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t[:, None]], dim=1))


class FlowMatching(pl.LightningModule):
    """Rectified flow from N(0, I) to the data, trained by Lightning's automatic optimization."""

    def __init__(self) -> None:
        super().__init__()
        self.velocity = Velocity()

    def training_step(self, batch, batch_idx):
        (x1,) = batch
        x0 = torch.randn_like(x1)
        t = torch.rand(len(x1))
        xt = t[:, None] * x1 + (1 - t[:, None]) * x0
        per_sample = ((self.velocity(xt, t) - (x1 - x0)) ** 2).mean(1)
        loss = per_sample.mean()
        self.log("train_loss", loss)
        return {"loss": loss, "source": x0, "t": t, "per_sample_loss": per_sample.detach()}

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)

    def sample(self, n: int, steps: int = 40) -> torch.Tensor:
        x = torch.randn(n, 2)
        for i in range(steps):
            x = x + self.velocity(x, torch.full((n,), i / steps)) / steps
        return x


class GAN(pl.LightningModule):
    """A GAN under manual optimization, one optimizer per player, as Lightning's GAN example does it: an affine
    generator of 2-D noise against a small discriminator. With `detach_in_g_step` the generator step scores the fake
    batch detached for D's step: G gets no gradient."""

    def __init__(self, detach_in_g_step: bool = False) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.detach_in_g_step = detach_in_g_step
        self.generator = torch.nn.Linear(LATENT, 2)
        self.discriminator = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.LeakyReLU(0.2),
                                                 torch.nn.Linear(32, 1))
        self.bce = torch.nn.BCEWithLogitsLoss()

    def training_step(self, batch, batch_idx):
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        fake = self.generator(torch.randn(len(real), LATENT))
        fake_for_d = fake.detach()
        d_real, d_fake = self.discriminator(real), self.discriminator(fake_for_d)
        loss_d = self.bce(d_real, torch.ones_like(d_real)) + self.bce(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        d_on_fake = self.discriminator(fake_for_d if self.detach_in_g_step else fake)
        loss_g = self.bce(d_on_fake, torch.ones_like(d_on_fake))
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        return {"loss": loss_d + loss_g, "d_real": d_real.detach(), "d_fake": d_fake.detach(), "d_output": "logit",
                "loss_d": loss_d.item(), "loss_g": loss_g.item()}

    def configure_optimizers(self):
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=5e-3, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=5e-3, betas=(0.5, 0.999))
        return opt_g, opt_d


def findings(run_dir) -> list[dict]:
    return json.loads((run_dir / "findings.json").read_text())["findings"]


def serious(found: list[dict]) -> list[str]:
    return [f"{f['severity']} {f['code']}: {f['title']}" for f in found if f["severity"] in ("warning", "critical")]


def test_healthy_flow_matching_module_raises_no_warning(tmp_path) -> None:
    torch.manual_seed(0)
    callback = GendiagCallback(tmp_path / "run", task="flow", sample=lambda module: module.sample(1000))
    trainer(callback, epochs=8).fit(FlowMatching(), loader(ring(8192, seed=1)))
    found = findings(tmp_path / "run")
    assert serious(found) == []
    mon = callback.monitor
    assert sorted(mon.ctx.models) == ["velocity"]
    assert mon.ctx.step == 8 * 64                               # one Monitor step per training batch
    sections = json.loads((tmp_path / "run" / "sections.json").read_text())
    titles = [s["title"] for s in sections]
    assert "Training versus sampling inputs" in titles           # the sampler's calls were recorded as sampling


def test_healthy_gan_with_two_optimizers_under_manual_optimization(tmp_path) -> None:
    torch.manual_seed(0)
    callback = GendiagCallback(tmp_path / "run", task="gan",
                               sample=lambda module: module.generator(torch.randn(1000, LATENT)))
    trainer(callback, epochs=10).fit(GAN(), loader(gaussian(8192, seed=1)))
    assert serious(findings(tmp_path / "run")) == []
    assert len(callback.monitor._optimizers) == 2                # both players' optimizers are hooked
    assert sorted(callback.monitor.ctx.models) == ["discriminator", "generator"]


def test_gan_generator_step_on_the_detached_fake_is_no_gradient_reaches(tmp_path) -> None:
    torch.manual_seed(0)
    callback = GendiagCallback(tmp_path / "run", task="gan",
                               sample=lambda module: module.generator(torch.randn(1000, LATENT)))
    trainer(callback, epochs=2).fit(GAN(detach_in_g_step=True), loader(gaussian(8192, seed=1)))
    found = {f["code"]: f for f in findings(tmp_path / "run")}
    assert "no-gradient-reaches" in found, sorted(found)
    assert found["no-gradient-reaches"]["severity"] in ("warning", "critical")
    assert "generator" in json.dumps(found["no-gradient-reaches"]["evidence"])


def test_exception_in_training_step_writes_a_partial_report(tmp_path) -> None:
    class Failing(FlowMatching):
        def training_step(self, batch, batch_idx):
            if batch_idx == 5:
                raise RuntimeError("planted failure")
            return super().training_step(batch, batch_idx)

    callback = GendiagCallback(tmp_path / "run", task="flow")
    with pytest.raises(RuntimeError, match="planted failure"):
        trainer(callback, epochs=1).fit(Failing(), loader(ring(8192, seed=1)))
    report = (tmp_path / "run" / "report.md").read_text()
    assert "RuntimeError" in report and "partial" in report.lower()
