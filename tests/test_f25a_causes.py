"""Issue 25 (helper 25a): the exact traces of three faults, named as their cause, on loops written as a user
would write them (their own data helpers, loop order and call conventions; only the public Monitor API).

- `grad-accumulating`: zero_grad missing, or called on the other player's optimizer.
- `loss-unbounded-below`: a VAE whose KL term enters with the wrong sign.
- `gan-d-output-squashed`: a D ending in a Sigmoid trained with BCEWithLogitsLoss.
- per network and cause before symptom: a GAN whose generator step is detached, one whose D is never stepped."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn

import gendiag


# -- a flow-matching loop in a user's shape: one network on cat([x, t]), a generator of batches, SGD ----------


def moons_batches(n: int, generator: torch.Generator):
    """Two interleaved half circles, as a user's own data helper would make them."""
    while True:
        angle = torch.rand(n, generator=generator) * math.pi
        upper = torch.rand(n, generator=generator) < 0.5
        x = torch.where(upper, angle.cos(), 1 - angle.cos())
        y = torch.where(upper, angle.sin(), 0.5 - angle.sin())
        yield torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2, generator=generator)


def train_flow(tmp_path, seed: int, reset: str, watch_optimizer: bool = True) -> list[gendiag.Finding]:
    """`reset`: "none" (the bug), "before" (zero_grad before backward), "after" (after the step) or "micro"
    (gradients accumulated over 4 micro-batches, reset after each optimizer step)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 48), nn.SiLU(), nn.Linear(48, 48), nn.SiLU(), nn.Linear(48, 2))
    opt = torch.optim.SGD(net.parameters(), lr=2e-3, momentum=0.9)
    data = moons_batches(64, generator)
    mon = gendiag.Monitor(tmp_path / f"flow_{reset}_{seed}_{watch_optimizer}", task="flow",
                          probes=["loss", "gradients"])
    mon.watch(net, name="velocity", inputs=lambda args, kwargs: (args[0][:, :2], args[0][:, 2]),
              optimizer=opt if watch_optimizer else None)
    for it in range(160):
        x1 = next(data)
        x0 = torch.randn(x1.shape, generator=generator)
        t = torch.rand(len(x1), generator=generator)
        if reset == "before" or (reset == "micro" and it % 4 == 0):
            opt.zero_grad()
        xt = t[:, None] * x1 + (1 - t[:, None]) * x0
        loss = ((net(torch.cat([xt, t[:, None]], 1)) - (x1 - x0)) ** 2).mean()
        loss.backward()
        if reset != "micro" or it % 4 == 3:
            opt.step()
        if reset == "after":
            opt.zero_grad()
        mon.step(it, loss)
    return mon.finish().findings


@pytest.mark.slow
@pytest.mark.parametrize("watch_optimizer", [True, False])
def test_missing_zero_grad_is_named_with_its_network_and_step(tmp_path, watch_optimizer) -> None:
    found = {f.code: f for f in train_flow(tmp_path, 0, "none", watch_optimizer)}
    assert "grad-accumulating" in found
    finding = found["grad-accumulating"]
    assert finding.severity == "critical"
    assert finding.evidence["network"] == "velocity" and "velocity" in finding.title
    assert finding.evidence["since_step"] <= 10
    assert finding.evidence["grad_norm_last"] > 3 * finding.evidence["grad_norm_first"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("reset", ["before", "after", "micro"])
@pytest.mark.parametrize("watch_optimizer", [True, False])
def test_gradients_that_are_reset_are_silent(tmp_path, seed, reset, watch_optimizer) -> None:
    codes = {f.code for f in train_flow(tmp_path, seed, reset, watch_optimizer)}
    assert "grad-accumulating" not in codes


# -- a VAE in a user's shape: encoder returning (mu, logvar) chunks, the loss assembled by hand ---------------


def train_vae(tmp_path, seed: int, kl_sign: float, report_terms: bool) -> list[gendiag.Finding]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(2, 8, generator=generator)
    encoder = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 4))
    decoder = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 8))
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    with gendiag.Monitor(tmp_path / f"vae_{seed}_{kl_sign}_{report_terms}", task="vae",
                         probes=["loss", "gradients", "vae-health"]) as mon:
        for it in range(200):
            x = torch.randn(128, 2, generator=generator) @ mixing + 0.1 * torch.randn(128, 8, generator=generator)
            mu, logvar = encoder(x).chunk(2, dim=1)
            z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
            recon = ((decoder(z) - x) ** 2).sum(1).mean()
            kl = (0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)).sum(1).mean()
            loss = recon + kl_sign * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            terms = {"recon": recon.item(), "kl": kl.item()} if report_terms else {}
            mon.step(it, loss.item(), **terms)
            mon.observe_latents(mu.detach(), logvar.detach())
    return mon.finish().findings


@pytest.mark.parametrize("report_terms", [True, False])
def test_kl_with_the_wrong_sign_is_a_loss_without_floor_naming_the_kl(tmp_path, report_terms) -> None:
    found = {f.code: f for f in train_vae(tmp_path, 0, -1.0, report_terms)}
    assert "loss-unbounded-below" in found and "loss-diverging" not in found
    finding = found["loss-unbounded-below"]
    assert finding.severity == "critical"
    assert finding.evidence["last_window_median"] < 0
    term = finding.evidence["term_without_floor"]
    assert "kl" in term.lower()
    assert "subtract" in finding.message and "instead of subtracting" in finding.suggestion


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_healthy_vae_loss_has_a_floor(tmp_path, seed) -> None:
    codes = {f.code for f in train_vae(tmp_path, seed, 1.0, True)}
    assert "loss-unbounded-below" not in codes


# -- GANs in a user's shape: two optimizers, D's outputs and losses handed to mon.step ------------------------


def ring(n: int, generator: torch.Generator) -> torch.Tensor:
    angle = torch.randint(0, 8, (n,), generator=generator) * (math.pi / 4)
    return 2 * torch.stack([angle.cos(), angle.sin()], 1) + 0.05 * torch.randn(n, 2, generator=generator)


def train_gan(tmp_path, seed: int, bug: str, steps: int = 160, probes: str | list[str] = "default"):
    """`bug`: "none" (logits and BCEWithLogitsLoss), "prob" (a Sigmoid and BCELoss, also healthy), "squashed" (a
    Sigmoid and BCEWithLogitsLoss), "detached" (G's step through fake.detach()), "d_never" (opt_d.step() missing),
    "wrong_zero_grad" (opt_g.zero_grad() where opt_d's belongs)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    gen = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    layers = [nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1)]
    if bug in ("prob", "squashed"):
        layers.append(nn.Sigmoid())
    disc = nn.Sequential(*layers)
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    criterion = nn.BCELoss() if bug == "prob" else nn.BCEWithLogitsLoss()
    with gendiag.Monitor(tmp_path / f"gan_{bug}_{seed}", task="gan", probes=probes) as mon:
        mon.watch(gen, name="G", t_arg=None, optimizer=opt_g)
        mon.watch(disc, name="D", t_arg=None, optimizer=opt_d)
        for it in range(steps):
            real = ring(128, generator)
            fake = gen(torch.randn(128, 4, generator=generator))
            (opt_g if bug == "wrong_zero_grad" else opt_d).zero_grad()
            d_real, d_fake = disc(real), disc(fake.detach())
            loss_d = criterion(d_real, torch.ones_like(d_real)) + criterion(d_fake, torch.zeros_like(d_fake))
            loss_d.backward()
            if bug != "d_never":
                opt_d.step()
            opt_g.zero_grad()
            judged = disc(fake.detach() if bug == "detached" else fake)
            loss_g = criterion(judged, torch.ones_like(judged))
            if bug != "detached":
                loss_g.backward()
            opt_g.step()
            mon.step(it, loss_d + loss_g, d_real=d_real.detach(), d_fake=d_fake.detach(), loss_d=loss_d.item(),
                     loss_g=loss_g.item())
        with torch.no_grad():
            mon.observe_samples(gen(torch.randn(1000, 4, generator=generator)))
        mon.observe_data(ring(1000, generator))
    return mon.finish()


BALANCE = ["gan-balance", "gradients", "loss"]


def test_a_sigmoid_d_under_bce_with_logits_is_named(tmp_path) -> None:
    found = {f.code: f for f in train_gan(tmp_path, 0, "squashed", probes=BALANCE).findings}
    finding = found["gan-d-output-squashed"]
    assert finding.severity == "critical"
    assert finding.evidence["networks_ending_in_sigmoid"] == ["D"]
    assert finding.evidence["share_outputs_in_0_1"] == 1.0
    assert finding.evidence["min_loss_d"] >= finding.evidence["loss_d_floor_summed"]
    assert "Remove one of the two sigmoids" in finding.suggestion


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("bug", ["none", "prob", "d_never"])
def test_logits_or_probabilities_with_their_own_loss_are_silent(tmp_path, seed, bug) -> None:
    codes = {f.code for f in train_gan(tmp_path, seed, bug, probes=BALANCE).findings}
    assert "gan-d-output-squashed" not in codes
    assert "grad-accumulating" not in codes


def test_zero_grad_on_the_other_optimizer_names_d(tmp_path) -> None:
    found = [f for f in train_gan(tmp_path, 0, "wrong_zero_grad", probes=BALANCE).findings
             if f.code == "grad-accumulating"]
    assert [f.evidence["network"] for f in found] == ["D"]


def _position(findings: list[gendiag.Finding], code: str) -> int:
    return next(i for i, f in enumerate(findings) if f.code == code)


def test_a_detached_generator_step_is_the_cause_named_first(tmp_path) -> None:
    report = train_gan(tmp_path, 0, "detached")
    findings = report.findings
    cause = findings[_position(findings, "no-gradient-reaches")]
    assert cause.evidence["network"] == "G" and cause.severity == "critical"
    symptoms = [f for f in findings if f.consequence_of]
    assert symptoms, [f.code for f in findings]
    for symptom in symptoms:
        assert "no-gradient-reaches" in symptom.consequence_of
        assert findings.index(symptom) > findings.index(cause)
        assert "Likely a consequence of `no-gradient-reaches`" in symptom.message
        assert symptom.suggestion.startswith("First fix `no-gradient-reaches`")
    page = report.markdown_path.read_text(encoding="utf-8")
    assert "Global gradient norm" not in page and "G: no gradient norm was measured" in page
    tags = set(pd.read_csv(report.run_dir / "metrics.csv")["tag"])
    assert "grad/global_norm/D" in tags and "grad/global_norm/G" not in tags


@pytest.mark.slow
def test_a_discriminator_never_stepped_is_named_per_network(tmp_path) -> None:
    findings = train_gan(tmp_path, 0, "d_never").findings
    stalled = [f for f in findings if f.code == "params-stalled"]
    assert [f.evidence["network"] for f in stalled] == ["D"]
    assert stalled[0].severity == "critical" and stalled[0].title == "The optimizer of D never steps"
    assert stalled[0].evidence["other_optimizer_steps"] == {"G": 160}
    assert findings[0] is stalled[0]
    for symptom in findings[1:]:
        if symptom.code in ("mode-collapse", "gan-d-dominates", "loss-diverging", "samples-unlike-data"):
            assert "params-stalled" in symptom.consequence_of


@pytest.mark.parametrize(("shape", "task", "label", "fires"), [
    ("runaway", "generic", None, True),      # falls ever faster below 0
    ("runaway", "gan", "critic", False),     # a Wasserstein critic's loss has no floor by design
    ("settling", "vae", None, False),        # a Gaussian likelihood with a learned variance: negative, slowing down
])
def test_only_a_fall_that_does_not_slow_down_is_unbounded(tmp_path, shape, task, label, fires) -> None:
    mon = gendiag.Monitor(tmp_path / f"{shape}_{task}", task=task, probes=["loss"])
    for step in range(300):
        loss = 1.0 - 1.03 ** step if shape == "runaway" else 1.0 - 12.0 * (1 - math.exp(-step / 40))
        mon.step(step, loss, **({"d_output": label} if label else {}))
    codes = {f.code for f in mon.finish().findings}
    assert ("loss-unbounded-below" in codes) == fires
