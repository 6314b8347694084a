"""The flattened case's "Why it collapses" is written from the run's findings: every number a probe measured is
quoted from that finding's evidence, a cause no finding backs is not told, and the causes come in the order of
their findings' severities. Also on a user's own loop: the story explains the findings that loop's Monitor raised."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import gendiag
from gendiag.config import load_case
from gendiag.findings import Finding, link_consequences, sort_findings
from gendiag.quantities.flattened import LossRange, Peak
from gendiag.recipes.flattened.facts import RunFacts
from gendiag.recipes.flattened.story import explain, ranked_causes
from gendiag.runner import run_case

CASES = Path(__file__).resolve().parent.parent / "cases"

FACTS = RunFacts(
    lr=1e-6, iterations=200, resumed_at=0, loss_kind="buggy_x0", frozen=False, source="rendered_gaussian",
    mode="binary", points_per_image=10_000, batch_size=16, dim=4096, last_width=256, displacement=0.0123,
    output_norm={0.0: 2.45, 0.5: 2.44}, gap=40.4, pair_gap=48.2, baseline_cos=0.348, baseline_iou=0.192,
    unreachable=0.94, losses=LossRange(first=7.5e3, last=2.7e5, median=1.1e5, min=7.5e3, max=1.9e9),
    peak=Peak(iteration=5, peak_cos_target=0.25, peak_cos_source=0.99, last_cos_target=0.248, last_cos_source=0.99),
    weight_distance=0.000153, loss_share_high_t=0.99962)


def flagship_findings(without: tuple[str, ...] = ()) -> list[Finding]:
    """The flagship's findings as the probes raise them (codes, severities and evidence keys of a real run), less
    the codes `without`, linked and sorted as the Monitor does."""
    def make(code: str, severity: str, **evidence: object) -> Finding:
        return Finding(code=code, severity=severity, title=f"title of {code}", message="", evidence=evidence)

    findings = [
        make("rendered-point-cloud", "critical", centroid_spread=0.00358, effective_distinct=1.0, samples_compared=16),
        make("data-near-duplicates", "critical", samples_compared=16, effective_distinct=1.3,
             median_relative_distance=0.1013, between_over_within_spread=0.239, dimension=4096, batch_size=16),
        make("data-binary-pixels", "warning", extreme_fraction=0.997, distinct_values=2),
        make("source-not-noise", "critical", mean=0.26505, std=0.44136, distinct_values=2, looks_rendered=True),
        make("train-sample-input-mismatch", "critical", bins=[[0.0, 0.5], [0.5, 0.9997]],
             progress_train_by_bin=[0.0055, 0.0052], progress_sampling_by_bin=[0.0072, 0.0082],
             train_change_over_t=0.0004),
        make("target-explodes", "critical", exponent=-1.9883, outer_distance=0.03125, outer_value=1056481.4,
             ratio_to_median=107.29, median_over_t=9847.4, quantity="squared target size"),
        make("params-stalled", "warning", update_ratio_median=2.1e-4, movement_over_run=0.0421, lr=1e-6),
        make("loss-t-imbalance", "warning", steps=[101, 200], worst_loss_bin="0.9–1.0", worst_loss_share=0.9991,
             loss_share_by_bin=[1e-5] * 9 + [0.9991]),
        make("field-ignores-t", "warning", sensitivity_t=0.0024, threshold=0.1),
        make("data-bottleneck", "warning", data_share=0.5634, ms_per_step_total=212.0, steps_measured=199),
    ]
    return sort_findings(link_consequences([f for f in findings if f.code not in without]))


def claims(story: str) -> list[str]:
    return re.findall(r"^\d+\. (.*)$", story, flags=re.MULTILINE)


def test_every_probe_number_in_the_story_is_the_findings_evidence() -> None:
    story = explain(flagship_findings(), FACTS)
    for quoted in ("(1 − t)^-1.99", "1.056e+06", "107×",
                   "t in 0.9–1.0 carried 99.9% of the expected loss (one of 10 equal bins",
                   "median update of 0.00021", "4.21%", "0.0024 times", "about 1.3 are distinct", "0.101 of a sample's",
                   "0.004 of the spatial spread", "99.7% of the values", "mean 0.265", "deviation 0.441",
                   "2 distinct values", "sat 0.005 of the way", "inputs 0.008 (", "56% of the step time",
                   "212 ms per step over 199 steps", "iterations 101–200"):
        assert quoted in story, quoted
    assert "67%" not in story  # the case's own timing is gone: one number for the data-time share


def test_the_story_says_what_z_is_where_the_formula_appears() -> None:
    story = explain(flagship_findings(), FACTS)
    assert "(z − x0)/(1 − t), where z is the data picture and x0 the source picture" in story


def test_causes_follow_the_findings_severities() -> None:
    findings = flagship_findings()
    ranked = ranked_causes(findings)
    worst = [min(("critical", "warning", "info").index(f.severity) for f in backing) for _, backing in ranked]
    assert worst == sorted(worst)
    assert worst == [0, 0, 0, 0, 1, 1, 1]  # data, source, inputs, target (critical); time, weights, t (warning)
    story_claims = claims(explain(findings, FACTS))
    for claim, (_, backing) in zip(story_claims, ranked):
        assert any(f"`{finding.code}`" in claim for finding in backing), claim
    assert "(Measured by the case" in story_claims[-1]  # what no finding backs comes last
    assert len(story_claims) == len(ranked) + 1


@pytest.mark.parametrize("code, told_by", [
    ("params-stalled", "The learning rate decides"),
    ("data-bottleneck", "Time: preparing the data"),
    ("source-not-noise", "The source is a picture too"),
    ("field-ignores-t", "barely depends on t"),
])
def test_a_cause_without_its_finding_is_not_told(code: str, told_by: str) -> None:
    story = explain(flagship_findings(without=(code,)), FACTS)
    assert told_by not in story and f"`{code}`" not in story
    assert told_by in explain(flagship_findings(), FACTS)


def test_without_the_x0_findings_the_exploding_target_is_not_told_and_the_correct_loss_is_ruled_out() -> None:
    story = explain(flagship_findings(without=("target-explodes", "loss-t-imbalance")),
                    replace(FACTS, loss_kind="correct"))
    assert "The target explodes" not in story
    assert "Ruled out in this run" in story and "keeps norm about 48.2" in story


def test_no_findings_leave_only_the_cases_own_measurements() -> None:
    story = explain([], FACTS)
    assert all("(Measured by the case" in claim for claim in claims(story))
    assert "`" not in story.split("Ruled out")[0]  # no finding code cited


def user_loop(run_dir: Path) -> list[Finding]:
    """A user's own 2D flow loop with the original's bug: the source x0 fed, the target divided by 1 - t."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.SiLU(), torch.nn.Linear(32, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def moons_batch(n: int) -> torch.Tensor:
        angle = torch.rand(n) * torch.pi
        upper = torch.rand(n) < 0.5
        x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
        y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
        return torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2)

    mon = gendiag.Monitor(run_dir, task="flow", probes=["loss_by_t"])
    for it in range(300):
        data, noise = moons_batch(256), torch.randn(256, 2)
        t = torch.rand(256)
        target = (data - noise) / (1 - t[:, None])
        per_sample = (net(torch.cat([noise, t[:, None]], 1)) - target).pow(2).sum(1)
        opt.zero_grad()
        per_sample.mean().backward()
        opt.step()
        mon.step(it, per_sample.mean(), t=t, per_sample_loss=per_sample, target_norm=target.norm(dim=1))
    return mon.finish().findings


def test_a_users_loop_is_explained_from_its_own_findings(tmp_path: Path) -> None:
    findings = user_loop(tmp_path / "run")
    explodes = next(f for f in findings if f.code == "target-explodes")
    story = explain(findings, replace(FACTS, displacement=0.5, unreachable=0.0))
    assert f"(1 − t)^{explodes.evidence['exponent']:.2f}" in story
    assert f"{explodes.evidence['ratio_to_median']:.3g}× its median" in story
    assert claims(story)[0].startswith("The target explodes")


def test_one_number_per_fact_between_the_story_and_the_results() -> None:
    """How far the weights moved and how much of the loss high t carries are each told twice, as two named
    quantities: the probes' (a bound from the median step; the second half, by bin of t) and the recipe's results
    (the distance from the initial weights; all iterations). The story quotes each from its one source, under the
    name the results table gives it, and no result repeats a finding's evidence key."""
    findings = flagship_findings()
    story = explain(findings, FACTS)
    found = {f.code: f.evidence for f in findings}
    results = FACTS.results()
    assert set(results) == {"weight_distance_from_init", "loss_share_t_above_0.9_all_iterations"}
    assert f"about {found['params-stalled']['movement_over_run']:.2%} over the run" in story
    assert f"the weights sit {results['weight_distance_from_init']:.2%} of their size" in story
    assert f"carried {found['loss-t-imbalance']['worst_loss_share']:.1%} of the expected loss" in story
    assert f"carried {results['loss_share_t_above_0.9_all_iterations']:.1%} of the summed per-sample loss" in story
    assert all(f"`{key}` in the results" in story for key in results)
    assert not results.keys() & {key for evidence in found.values() for key in evidence}


@pytest.mark.slow
def test_the_cases_story_quotes_its_findings_json(tmp_path: Path) -> None:
    tiny = ["data.image_size=16", "data.points_per_image=300", "training.batch_size=16", "model.hidden=[32, 16]",
            "training.checkpoints=[2]", "sampling.time_points=5", "sampling.images=2", "sampling.n_samples=4",
            "training.steps=40", "training.observe_every=10", "probes.set=[loss_by_t, data_repr]", "probes.strict=true"]
    run_dir = run_case(load_case(CASES / "flattened_moons.yaml", overrides=tiny), out_root=tmp_path).run_dir
    found = {f["code"]: f["evidence"] for f in json.loads((run_dir / "findings.json").read_text())["findings"]}
    story = (run_dir / "report.md").read_text().split("## Why it collapses")[1].split("\n## ")[0]
    assert {"target-explodes", "source-not-noise"} <= found.keys()
    assert f"(1 − t)^{found['target-explodes']['exponent']:.2f}" in story
    assert f"mean {found['source-not-noise']['mean']:.3g}" in story
    results = json.loads((run_dir / "run.json").read_text())["results"]
    assert "weight_change" not in results and "loss_share_t_above_0.9" not in results
    if "loss-t-imbalance" in found:
        assert f"carried {results['loss_share_t_above_0.9_all_iterations']:.1%} of the summed" in story


def test_the_public_doors_the_recipe_uses(tmp_path: Path) -> None:
    """`Monitor.log_scalar` lands in metrics.csv; `Monitor.evaluate` runs the watched network through its `call`, in
    eval mode and without gradients, and leaves its train/eval mode as it was."""
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 2))
    mon = gendiag.Monitor(tmp_path / "run", task="flow", probes=["inputs"])
    mon.watch(net, inputs=lambda args, kwargs: (args[0][:, :2], args[0][:, 2]),
              call=lambda module, x, t: module(torch.cat([x, t[:, None]], 1)))
    out = mon.evaluate("model", torch.ones(5, 2), 0.5)
    assert out.shape == (5, 2) and not out.requires_grad and net.training
    with torch.no_grad():
        net.eval()
        assert torch.allclose(out, net(torch.cat([torch.ones(5, 2), torch.full((5, 1), 0.5)], 1)))
        net.train()
    mon.step(1, 1.0)
    mon.log_scalar("mine/number", 2.5, 1)
    mon.finish()
    assert "mine/number" in (tmp_path / "run" / "metrics.csv").read_text()
