"""Findings in cause order with advice for the task: on a user's own tiny DDPM whose schedule does not reach noise,
on a user's own VAE whose posterior collapses, and on hand-made findings."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import gendiag
from gendiag.findings import (
    CONSEQUENCES, STAGES, Finding, advice, link_consequences, sort_findings,
)
from gendiag.report import load_run, write_reports

FLOW_TEXT = ("t·x1", "t*x1", "x_t = t")
GAN_TEXT = ("PacGAN", "WGAN", "discriminator")


# -- a tiny DDPM as a user writes it: 8x8 blob images, T = 50, their own q_sample and sampler -----------------------

def blob_images(n: int, generator: torch.Generator) -> torch.Tensor:
    """8x8 images in [-1, 1], flattened: one soft blob at a random place with a random width."""
    grid = torch.arange(8.0)
    cx, cy = 1 + 6 * torch.rand(2, n, 1, 1, generator=generator)
    width = 0.8 + 0.8 * torch.rand(n, 1, 1, generator=generator)
    blob = torch.exp(-((grid[None, None, :] - cx) ** 2 + (grid[None, :, None] - cy) ** 2) / (2 * width ** 2))
    return (2 * blob - 1).reshape(n, 64)


class EpsModel(nn.Module):
    def __init__(self, timesteps: int) -> None:
        super().__init__()
        self.timesteps = timesteps
        self.net = nn.Sequential(nn.Linear(65, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 64))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, (t.float() / self.timesteps)[:, None]], dim=1))


def tiny_ddpm(run_dir: Path, steps: int = 150) -> gendiag.report.Report:
    T = 50
    betas = torch.linspace(1e-4, 0.02, T)  # sqrt(alpha_bar_T) = 0.78: the forward process never reaches noise
    alphas = 1 - betas
    alphas_cumprod = torch.cumprod(alphas, dim=0)

    def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        a = alphas_cumprod[t][:, None]
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = EpsModel(T)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    mon = gendiag.Monitor(run_dir, task="diffusion", schedule=alphas_cumprod)
    mon.watch(model)
    for step in range(1, steps + 1):
        x0 = blob_images(128, gen)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, T, (128,), generator=gen)
        loss = (model(q_sample(x0, t, noise), t) - noise).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.observe_data(x0)
        mon.observe_data(noise, role="source")
        mon.step(step, loss.item(), t=t)
    with torch.no_grad(), mon.sampling():
        x = torch.randn(256, 64, generator=gen)
        for i in reversed(range(T)):
            eps = model(x, torch.full((256,), i, dtype=torch.long))
            x = (x - betas[i] / (1 - alphas_cumprod[i]).sqrt() * eps) / alphas[i].sqrt()
            if i > 0:
                x = x + betas[i].sqrt() * torch.randn(x.shape, generator=gen)
    mon.observe_samples(x)
    return mon.finish()


def texts(finding: Finding) -> str:
    return " ".join([finding.title, finding.message, finding.suggestion])


@pytest.mark.slow
def test_ddpm_schedule_comes_before_the_input_mismatch_it_explains(tmp_path: Path) -> None:
    report = tiny_ddpm(tmp_path)
    codes = [f.code for f in report.findings]
    assert "schedule-not-reaching-noise" in codes and "train-sample-input-mismatch" in codes, codes
    assert codes.index("schedule-not-reaching-noise") < codes.index("train-sample-input-mismatch")
    mismatch = report.findings[codes.index("train-sample-input-mismatch")]
    assert mismatch.consequence_of == ["schedule-not-reaching-noise"]
    assert "Likely a consequence of `schedule-not-reaching-noise`" in mismatch.message
    assert "sqrt(ᾱ_t)·x0 + sqrt(1 - ᾱ_t)·ε" in mismatch.suggestion
    for finding in report.findings:
        assert not any(text in texts(finding) for text in FLOW_TEXT), (finding.code, finding.suggestion)
    markdown = (tmp_path / "report.md").read_text()
    explains = re.search(r"^\*Likely explains (.*) \(below\): fix this first\.\*$", markdown, flags=re.MULTILINE)
    assert explains is not None and "`train-sample-input-mismatch`" in explains.group(1)
    assert "Likely explains <code>train-sample-input-mismatch</code>" in (tmp_path / "report.html").read_text()
    saved = json.loads((tmp_path / "findings.json").read_text())["findings"]
    assert [f["code"] for f in saved] == codes and saved[codes.index(mismatch.code)]["consequence_of"] == [
        "schedule-not-reaching-noise"]


# -- a VAE as a user writes it, whose KL weight is far too high: the posterior collapses --------------------------

ANGLES = torch.arange(8) * 2 * math.pi / 8
RING = 2.0 * torch.stack([ANGLES.cos(), ANGLES.sin()], dim=1)


class TinyVAE(nn.Module):
    def __init__(self, zdim: int = 4) -> None:
        super().__init__()
        self.zdim = zdim
        self.enc = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 2 * zdim))
        self.dec = nn.Sequential(nn.Linear(zdim, 64), nn.ReLU(), nn.Linear(64, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(x).chunk(2, dim=1)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        return self.dec(z), mu, logvar


def collapsing_vae(run_dir: Path, beta: float = 50.0, steps: int = 200) -> gendiag.report.Report:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)

    def ring(n: int) -> torch.Tensor:
        return RING[torch.randint(0, 8, (n,), generator=gen)] + 0.05 * torch.randn(n, 2, generator=gen)

    vae = TinyVAE()
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    held_out = ring(512)
    # the two probes in the default set's order, which used to list the consequence first
    with gendiag.Monitor(run_dir, task="vae", probes=["mode-collapse", "vae-health"], modes=RING,
                         mode_std=0.05) as mon:
        for step in range(1, steps + 1):
            x = ring(128)
            recon, mu, logvar = vae(x)
            rec = (recon - x).pow(2).sum(1).mean()
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()
            loss = rec + beta * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.observe_data(x)
            mon.step(step, loss.item(), recon=rec.item(), kl=kl.item())
            if step % 100 == 0:
                with torch.no_grad():
                    _, mu, logvar = vae(held_out)
                    mon.observe_latents(mu, logvar)
                    mon.observe_samples(vae.dec(torch.randn(1000, vae.zdim, generator=gen)))
    return mon.finish()


def test_vae_posterior_collapse_comes_before_the_mode_collapse_it_explains(tmp_path: Path) -> None:
    report = collapsing_vae(tmp_path)
    codes = [f.code for f in report.findings]
    assert codes.index("posterior-collapse") < codes.index("mode-collapse"), codes
    collapse = report.findings[codes.index("mode-collapse")]
    assert collapse.consequence_of == ["posterior-collapse"]
    assert "Likely a consequence of `posterior-collapse`" in collapse.message
    assert not any(text in collapse.suggestion for text in GAN_TEXT), collapse.suggestion
    assert "KL weight" in collapse.suggestion and "free bits" in collapse.suggestion
    assert report.worst() == "critical"


# -- the sort and the links on hand-made findings -------------------------------------------------------------------

def made(code: str, severity: str) -> Finding:
    return Finding(code=code, severity=severity, title=code, message=f"{code} seen.", suggestion=f"fix {code}",
                   probe="hand")


def test_scrambled_findings_come_out_in_cause_order() -> None:
    scrambled = [made("mode-collapse", "critical"), made("loss-diverging", "warning"), made("probe-failed", "info"),
                 made("loss-nonfinite", "critical"), made("memorization", "warning"),
                 made("posterior-collapse", "critical"), made("data-bottleneck", "warning"),
                 made("target-explodes", "warning")]
    ordered = sort_findings(link_consequences(scrambled))
    # target-explodes (a warning) explains the critical loss-nonfinite: the pair stands first among the criticals,
    # cause first; set-up before model, model before samples; a consequence directly after its cause.
    assert [f.code for f in ordered] == ["target-explodes", "loss-nonfinite", "loss-diverging", "posterior-collapse",
                                         "mode-collapse", "data-bottleneck", "memorization", "probe-failed"]
    by_code = {f.code: f for f in ordered}
    assert by_code["loss-diverging"].consequence_of == ["target-explodes"]
    assert by_code["mode-collapse"].message.endswith(
        "Likely a consequence of `posterior-collapse` (a decoder that ignores the latent code gives every sample the "
        "same output): fix that first.")
    assert by_code["memorization"].consequence_of == [] and by_code["memorization"].message == "memorization seen."
    again = sort_findings(link_consequences(list(reversed(ordered))))
    assert [f.code for f in again] == [f.code for f in ordered]
    assert by_code["mode-collapse"].message.count("Likely a consequence") == 1


def test_two_causes_are_both_named_and_the_consequence_follows_the_more_severe() -> None:
    findings = link_consequences([made("mode-collapse", "warning"), made("params-stalled", "warning"),
                                  made("posterior-collapse", "critical"), made("loss-t-imbalance", "warning")])
    ordered = [f.code for f in sort_findings(findings)]
    assert ordered == ["posterior-collapse", "mode-collapse", "params-stalled", "loss-t-imbalance"]
    collapse = next(f for f in findings if f.code == "mode-collapse")
    assert collapse.consequence_of == ["params-stalled", "posterior-collapse"]
    assert "`params-stalled` (" in collapse.message and "and of `posterior-collapse` (" in collapse.message
    assert collapse.message.endswith("fix those first.")


def test_healthy_run_findings_are_unchanged() -> None:
    findings = [made("loss-t-imbalance", "warning"), made("data-binary-pixels", "info"),
                made("probe-failed", "info")]
    before = [f.to_dict() for f in findings]
    ordered = sort_findings(link_consequences(findings))
    assert [f.to_dict() for f in ordered] == before
    assert sort_findings([]) == [] and link_consequences([]) == []


def test_a_loop_of_hand_made_links_loses_no_finding() -> None:
    a, b = made("mode-collapse", "critical"), made("posterior-collapse", "warning")
    a.consequence_of, b.consequence_of = ["posterior-collapse"], ["mode-collapse"]
    assert sorted(f.code for f in sort_findings([a, b])) == ["mode-collapse", "posterior-collapse"]


def test_every_code_has_a_stage_and_the_cause_table_has_no_loop() -> None:
    root = Path(gendiag.__file__).parent
    made_codes = {code for path in root.rglob("*.py")
                  for code in re.findall(r'code="([a-z0-9-]+)"', path.read_text(encoding="utf-8"))}
    staged = [code for codes in STAGES.values() for code in codes]
    assert len(staged) == len(set(staged))
    assert made_codes - set(staged) == {"probe-failed", "probe-not-run", "batch-skipped"}
    assert set(CONSEQUENCES) <= set(staged)
    assert {code for effects in CONSEQUENCES.values() for code in effects} <= set(staged)

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(effect == goal or (effect not in seen and reaches(effect, goal, seen | {effect}))
                   for effect in CONSEQUENCES.get(start, {}))

    assert not any(reaches(code, code) for code in CONSEQUENCES)


def test_advice_falls_back_to_the_generic_text() -> None:
    texts_by_task = {"gan": "g", "generic": "any"}
    assert advice(texts_by_task, "gan") == "g" and advice(texts_by_task, "flow") == "any"


# -- findings.json round trip, old run folders without the field ----------------------------------------------------

def test_findings_round_trip_and_old_run_folders_render_again(tmp_path: Path) -> None:
    cause, effect = made("posterior-collapse", "critical"), made("mode-collapse", "critical")
    link_consequences([cause, effect])
    assert Finding.from_dict(effect.to_dict()) == effect
    old = {k: v for k, v in effect.to_dict().items() if k != "consequence_of"}
    assert Finding.from_dict(old).consequence_of == []
    (tmp_path / "findings.json").write_text(json.dumps({"partial": None, "findings": [cause.to_dict(), old]}))
    (tmp_path / "sections.json").write_text("[]")
    report = load_run(tmp_path)
    write_reports(report, {"case": "old"})
    assert "`mode-collapse` — mode-collapse" in (tmp_path / "report.md").read_text()
    assert "Likely explains" not in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("task, absent", [("diffusion", FLOW_TEXT), ("vae", GAN_TEXT), ("flow", GAN_TEXT)])
def test_suggestions_fit_the_task_on_rules_with_task_texts(task: str, absent: tuple[str, ...]) -> None:
    from gendiag.rules import inputs, loss, loss_by_t, memorization, modes

    for table in (inputs.ADVICE, modes.ADVICE, loss_by_t.EXPLODES_ADVICE, loss.NONFINITE_ADVICE,
                  loss.DIVERGING_ADVICE, memorization.ADVICE):
        text = advice(table, task)
        assert not any(word in text for word in absent), (task, text)
