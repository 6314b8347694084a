"""`conditioning-ignored` on class-conditional loops written as a user would: a flow-matching model on a 2-D mixture
of four Gaussians whose labels are the components, with the labels given to the Monitor through the public calls
(`observe_data(x, cond=y)`, `observe_samples(x, cond=y)`). Healthy: silent over three seeds. Labels shuffled apart
from their rows, in the loop (the samples then ignore their label) or in the dataset (the data's own labels then
tell nothing): named. A conditional GAN on the same data, G and D fed one-hot labels: healthy, silent; D shown
the real rows with other rows' labels (so that G learns nothing from its label): named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gendiag

CENTERS = torch.tensor([[2.5, 0.0], [0.0, 2.5], [-2.5, 0.0], [0.0, -2.5]])


def mixture(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The user's data helper: points and the component each came from."""
    labels = torch.randint(0, 4, (n,), generator=generator)
    return CENTERS[labels] + 0.3 * torch.randn(n, 2, generator=generator), labels


class CondVelocity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(4, 8)
        self.body = nn.Sequential(nn.Linear(2 + 1 + 8, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([x, t[:, None], self.embed(y)], dim=1))


def shuffled_mixture(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A data helper with the bug: the labels are shuffled apart from the points."""
    x, labels = mixture(n, generator)
    return x, labels[torch.randperm(n, generator=generator)]


def train_flow(run_dir: Path, seed: int, bug: str | None = None, steps: int = 400) -> list:
    torch.manual_seed(seed)
    data_rng = torch.Generator().manual_seed(100 + seed)
    model = CondVelocity()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with gendiag.Monitor(run_dir, task="flow", check_every=None) as mon:
        mon.watch(model, cond_arg=2, optimizer=opt)
        for step in range(steps):
            x1, y = (shuffled_mixture if bug == "dataset" else mixture)(128, data_rng)
            mon.observe_data(x1, cond=y)
            if bug == "loop":  # the bug: the batch is shuffled, its labels are not
                x1 = x1[torch.randperm(len(x1))]
            x0 = torch.randn_like(x1)
            mon.observe_data(x0, role="source")
            t = torch.rand(len(x1))
            xt = t[:, None] * x1 + (1 - t[:, None]) * x0
            loss = ((model(xt, t, y) - (x1 - x0)) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(step, loss)
        wanted = torch.arange(4).repeat(50)
        with mon.sampling(), torch.no_grad():
            x = torch.randn(len(wanted), 2)
            for i in range(20):
                x = x + model(x, torch.full((len(x),), i / 20), wanted) / 20
        mon.observe_samples(x, cond=wanted)
    return mon.finish().findings


def codes(findings: list, severities: tuple[str, ...] = ("warning", "critical")) -> set[str]:
    return {f.code for f in findings if f.severity in severities}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_conditional_flow_is_silent(tmp_path: Path, seed: int) -> None:
    findings = train_flow(tmp_path / "run", seed)
    assert "conditioning-ignored" not in {f.code for f in findings}
    section = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "land in the class asked for" in section


@pytest.mark.slow
def test_rows_shuffled_apart_from_their_labels_are_named(tmp_path: Path) -> None:
    findings = train_flow(tmp_path / "run", 0, bug="loop")
    found = [f for f in findings if f.code == "conditioning-ignored"]
    assert found and found[0].severity == "critical"
    evidence = found[0].evidence
    assert evidence["data_agreement"] > 0.95 and evidence["chance"] == 0.25
    assert evidence["agreement"] < 0.45 and evidence["score"] < 0.2
    assert "shuffled" in found[0].suggestion and "discriminator" in found[0].suggestion


@pytest.mark.slow
def test_labels_shuffled_in_the_dataset_are_named(tmp_path: Path) -> None:
    findings = train_flow(tmp_path / "run", 0, bug="dataset")
    found = [f for f in findings if f.code == "conditioning-ignored"]
    assert found and found[0].severity == "critical"
    assert abs(found[0].evidence["data_agreement"] - 0.25) < 0.05
    assert "do not tell its rows apart" in found[0].title


def train_cgan(run_dir: Path, seed: int, wrong_labels_to_d: bool = False, steps: int = 1000) -> list:
    torch.manual_seed(seed)
    data_rng = torch.Generator().manual_seed(100 + seed)
    G = nn.Sequential(nn.Linear(8 + 4, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 2))
    D = nn.Sequential(nn.Linear(2 + 4, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    with gendiag.Monitor(run_dir, task="gan", check_every=None) as mon:
        mon.watch(G, name="G", t_arg=None, optimizer=opt_g)
        mon.watch(D, name="D", t_arg=None, optimizer=opt_d)
        for step in range(steps):
            real, y = mixture(128, data_rng)
            mon.observe_data(real, cond=y)
            onehot = F.one_hot(y, 4).float()
            fake = G(torch.cat([torch.randn(128, 8), onehot], 1))
            real_labels = onehot[torch.randperm(128)] if wrong_labels_to_d else onehot  # the bug: other rows' labels
            d_real = D(torch.cat([real, real_labels], 1))
            d_fake = D(torch.cat([fake.detach(), onehot], 1))
            loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                      + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            d_g = D(torch.cat([fake, onehot], 1))
            loss_g = F.binary_cross_entropy_with_logits(d_g, torch.ones_like(d_g))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            mon.step(step, loss_g.item(), loss_d=loss_d.item(), loss_g=loss_g.item(), d_real=d_real.detach(),
                     d_fake=d_fake.detach(),
                     d_output="logit")
        wanted = torch.arange(4).repeat(50)
        with torch.no_grad():
            samples = G(torch.cat([torch.randn(200, 8), F.one_hot(wanted, 4).float()], 1))
        mon.observe_samples(samples, cond=F.one_hot(wanted, 4))
    return mon.finish().findings


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_conditional_gan_is_silent(tmp_path: Path, seed: int) -> None:
    assert "conditioning-ignored" not in {f.code for f in train_cgan(tmp_path / "run", seed)}


@pytest.mark.slow
def test_wrong_labels_given_to_d_are_named(tmp_path: Path) -> None:
    found = [f for f in train_cgan(tmp_path / "run", 0, wrong_labels_to_d=True) if f.code == "conditioning-ignored"]
    assert found and found[0].severity == "critical"
    assert found[0].evidence["score"] < 0.2 and found[0].evidence["data_agreement"] > 0.95


def test_conditions_must_match_the_batch(tmp_path: Path) -> None:
    mon = gendiag.Monitor(tmp_path / "run", task="flow")
    with pytest.raises(ValueError, match=r"cond has shape \(3,\) for a batch of 4 rows"):
        mon.observe_data(torch.zeros(4, 2), cond=torch.zeros(3))
    with pytest.raises(ValueError, match="cond= belongs to data rows"):
        mon.observe_data(torch.zeros(4, 2), role="source", cond=torch.zeros(4))
    mon.close()
