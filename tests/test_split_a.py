"""The loss, loss-by-t, gradients, timing and schedule probes split into quantities, rules and figures (issue 22):
each rule fires and stays silent on hand-made summaries, each non-trivial quantity matches a brute-force twin,
and on loops written as a user would write them `findings()` may be called at any time without changing what the
run ends with."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import gendiag
from gendiag.quantities.gradients import GradientReadings, update_summary
from gendiag.quantities.loss import LossSeries, summarise_loss
from gendiag.quantities.loss_by_t import BINS, TimeBinnedLoss, summarise_loss_by_t, tail_fit, variance_shares
from gendiag.quantities.schedule import DataRMS, ScheduleSummary
from gendiag.quantities.timing import StepIntervals, phase_seconds, summarise_timing
from gendiag.rules.codes import CODES
from gendiag.rules.gradients import gradient_findings, is_stalled, judge_gradients
from gendiag.rules.loss import judge_trend, loss_findings
from gendiag.rules.loss_by_t import judge_bins, loss_by_t_findings
from gendiag.rules.schedule import schedule_findings
from gendiag.rules.thresholds import THRESHOLDS
from gendiag.rules.timing import timing_findings

OUR_CODES = {"loss-nonfinite", "loss-diverging", "loss-t-imbalance", "target-explodes", "params-stalled",
             "no-gradient-reaches", "gradients-not-seen", "data-bottleneck", "schedule-not-reaching-noise"}


def test_every_code_of_the_group_is_mapped_and_every_threshold_has_a_basis() -> None:
    assert OUR_CODES <= {c.code for c in CODES}
    ours = [t for t in THRESHOLDS.values() if t.name.split(".")[0] in
            ("loss", "loss_by_t", "gradients", "timing", "schedule")]
    assert len(ours) >= 20 and all(len(t.basis) > 40 for t in ours)


# -- rules on hand-made summaries ------------------------------------------------------------------------------------


def loss_summary(**changes) -> dict:
    summary = {"finite": 400, "first_loss": 5.0, "last_loss": 1.0, "min_loss": 0.9, "last_finite_step": 400,
               "best_window": (321, 360), "best_median": 1.0, "last_median": 1.05, "peak_window": (361, 400),
               "peak_median": 1.05, "rise": 0.05, "trend_tau": 0.2, "oscillation_growth": 1.2,
               "calm_window": (1, 40), "spikes": 0, "spike_steps": [], "blowup": 0.05, "peak_after_best": True,
               "calm_before_last": True, "recorded": 400, "nonfinite": 0, "first_nonfinite_step": None}
    summary.update(changes)
    return {**summary, **judge_trend(summary)}


def test_loss_rules_fire_and_stay_silent() -> None:
    assert loss_findings(loss_summary(), "figures/loss_curve.png", "flow") == []
    rising = loss_findings(loss_summary(rise=1.5, trend_tau=0.8, last_median=2.5, peak_median=2.5), None, "flow")
    assert [f.code for f in rising] == ["loss-diverging"] and rising[0].severity == "warning"
    assert loss_findings(loss_summary(rise=1.5, trend_tau=0.3), None, "flow") == []  # no sustained trend
    blown = loss_findings(loss_summary(blowup=12.0, peak_median=13.0), None, "gan")
    assert [f.code for f in blown] == ["loss-diverging"] and blown[0].severity == "info"
    swinging = loss_summary(oscillation_growth=5.0)
    assert swinging["oscillation_grows"] and not loss_summary(oscillation_growth=5.0, last_median=0.9)["diverging"]
    nan = loss_findings(loss_summary(nonfinite=3, first_nonfinite_step=398), "figures/loss_curve.png", "vae")
    assert [f.code for f in nan] == ["loss-nonfinite"] and nan[0].evidence["first_nonfinite_step"] == 398
    assert judge_trend({"finite": 20, "first_loss": 1.0}) == {"diverging": False}


def bins_summary(loss_share: float = 0.3, variance_share: float = 0.4, slope: float | None = -0.1,
                 ratio: float = 2.0) -> dict:
    tail = {"end": "t -> 1", "quantity": "loss", "slope": slope}
    if slope is not None:
        tail.update(intercept=0.0, distances=[0.25, 0.125, 0.0625], values=[1.0, 2.0, 4.0], counts=[50, 40, 30],
                    outer_distance=0.03125, outer_value=4.0, outer_ratio=ratio, median=0.4)
    return judge_bins({"late_steps": [101, 200], "samples": 1000, "bin_mean": [1.0] * BINS, "bin_std": [0.1] * BINS,
                       "loss_share": [0.1] * BINS, "variance_share": [0.1] * BINS, "worst_loss_bin": "0.9–1.0",
                       "worst_loss_share": loss_share, "worst_variance_bin": "0.9–1.0",
                       "worst_variance_share": variance_share, "median_bin_loss": 1.0,
                       "tails": [tail, {"end": "t -> 0", "quantity": "loss", "slope": None}]})


def test_loss_by_t_rules_fire_and_stay_silent() -> None:
    assert loss_by_t_findings(bins_summary(), "figures/loss_by_t.png", "flow") == []
    assert [f.code for f in loss_by_t_findings(bins_summary(loss_share=0.85), None, "flow")] == ["loss-t-imbalance"]
    assert [f.code for f in loss_by_t_findings(bins_summary(variance_share=0.95), None, "flow")] == \
        ["loss-t-imbalance"]
    critical = loss_by_t_findings(bins_summary(slope=-2.0, ratio=150.0), None, "diffusion")
    assert [(f.code, f.severity) for f in critical] == [("target-explodes", "critical")]
    warning = loss_by_t_findings(bins_summary(slope=-0.9, ratio=12.0), None, "flow")
    assert [(f.code, f.severity) for f in warning] == [("target-explodes", "warning")]
    assert loss_by_t_findings(bins_summary(slope=-2.0, ratio=5.0), None, "flow") == []  # steep but small
    assert loss_by_t_findings(bins_summary(slope=None), None, "flow") == []  # nothing fitted


def updates(samples: int = 10, median: float = 1e-3, zero: int = 0, nonfinite: int = 0, steps_run: int = 200,
            never_moved: bool = False) -> dict:
    return {"update_samples": samples, "update_ratio_median": median, "zero_update_samples": zero,
            "nonfinite_update_samples": nonfinite, "never_moved": never_moved, "first_update_step": 20,
            "last_update_step": 200, "movement_over_run": median * steps_run, "update_ratio_by_tensor": {"m.w": median}}


def network(read_at: str = "Monitor.step", readings: int = 10, with_gradient: int = 10, unseen: int = 0,
            arrived: bool = True, **update_changes) -> dict:
    return {"tensors": 2, "read_at": read_at, "lr": 1e-3, "optimizer_steps": 200 if read_at != "Monitor.step" else None,
            "readings": readings, "readings_with_gradient": with_gradient, "readings_unseen": unseen,
            "gradient_arrived": arrived, "other_networks_with_gradient": [], "first_step": 1, "last_step": 200,
            "parameters": ["m.w", "m.b"], **updates(**update_changes)}


def gradient_codes(**networks) -> list[tuple[str, str]]:
    summary = judge_gradients({"tensors": 2, "parameters": 10, "networks": networks})
    return [(f.code, f.severity) for f in gradient_findings(summary, "figures/gradients.png")]


def test_gradient_rules_fire_and_stay_silent() -> None:
    assert gradient_codes(m=network()) == []
    assert gradient_codes(m=network(median=1e-6)) == [("params-stalled", "warning")]
    assert gradient_codes(m=network(median=1e-6, steps_run=200_000)) == []  # slow, but the run moves them enough
    assert gradient_codes(m=network(zero=10, never_moved=True)) == [("params-stalled", "critical")]
    assert gradient_codes(m=network(samples=2, zero=2, never_moved=True)) == []  # too few updates to judge
    assert gradient_codes(m=network(read_at="optimizer step", with_gradient=0)) == \
        [("no-gradient-reaches", "critical")]
    assert gradient_codes(m=network(with_gradient=0, arrived=False, zero=10, never_moved=True)) == \
        [("no-gradient-reaches", "critical")]  # not also params-stalled
    assert gradient_codes(m=network(with_gradient=0, arrived=True, unseen=10)) == [("gradients-not-seen", "info")]
    assert not is_stalled({"update_samples": 0, "never_moved": False})


def test_timing_rule_fires_and_stays_silent() -> None:
    summary = {"steps_measured": 50, "ms_per_step_total": 10.0, "ms_per_step_median": 10.0,
               "ms_per_step": {"data": 6.0, "step": 3.0, "other": 1.0}, "shares": {"data": 0.6, "step": 0.3,
                                                                                    "other": 0.1},
               "data_phases": ["data"], "data_share": 0.6}
    assert [f.code for f in timing_findings(summary, None)] == ["data-bottleneck"]
    assert timing_findings({**summary, "data_share": 0.4}, None) == []
    assert timing_findings({**summary, "steps_measured": 5}, None) == []


def test_step_intervals_give_the_mean_step_time_over_the_steps_between_calls() -> None:
    readings = iter([10.0, 10.5, 12.5, 12.6])
    intervals = StepIntervals(clock=lambda: next(readings))
    intervals.tick(1, keep=True)  # the first call: nothing to measure yet
    intervals.tick(2, keep=True)  # one step in 0.5 s
    intervals.tick(6, keep=True)  # four steps in 2 s (a Monitor stepped every 4th step, or by gendiag attach)
    intervals.tick(7, keep=False)  # not asked for
    assert list(intervals.steps) == [2, 6] and list(intervals.intervals) == [0.5, 0.5]


def test_schedule_rule_fires_and_stays_silent() -> None:
    def end(alpha_bar: float) -> ScheduleSummary:
        return ScheduleSummary(100, alpha_bar, math.sqrt(alpha_bar), math.sqrt(1 - alpha_bar),
                               math.log(alpha_bar / (1 - alpha_bar)))

    assert [f.severity for f in schedule_findings(end(0.364), None, None)] == ["critical"]  # ratio 0.76
    assert [f.severity for f in schedule_findings(end(0.02), 1.0, None)] == ["warning"]  # ratio 0.14
    assert schedule_findings(end(0.02), 0.5, None) == []  # small data: ratio 0.07
    assert schedule_findings(end(4e-5), None, None) == []


# -- quantities against brute-force twins ----------------------------------------------------------------------------


def test_running_mean_and_windows_match_brute_force() -> None:
    rng = np.random.default_rng(1)
    values = 3.0 + rng.standard_normal(237)
    series = LossSeries()
    for step, value in enumerate(values, start=1):
        series.add(step, float(value))
    series.add(238, math.nan)
    decay = 0.98
    mean = decay ** 236 * values[0] + sum((1 - decay) * decay ** (236 - k) * values[k] for k in range(1, 237))
    assert series.running_mean == pytest.approx(mean, rel=1e-12)
    assert (series.nonfinite, series.first_nonfinite, series.last_finite_step) == (1, 238, 237)
    summary = series.summary()
    sizes = [24] * 7 + [23] * 3  # np.array_split of 237 into 10
    edges = np.cumsum([0] + sizes)
    medians = [float(np.median(values[a:b])) for a, b in zip(edges[:-1], edges[1:])]
    best = int(np.argmin(medians))
    assert summary["best_median"] == medians[best] and summary["last_median"] == medians[-1]
    assert summary["best_window"] == (edges[best] + 1, edges[best + 1])
    assert summary["recorded"] == 238 and summary["finite"] == 237
    assert summarise_loss(np.arange(3), np.array([1.0, 2.0, 0.5]))["min_loss"] == 0.5


def test_bins_and_shares_match_brute_force() -> None:
    generator = torch.Generator().manual_seed(3)
    bins = TimeBinnedLoss()
    ts, losses = [], []
    for step in range(1, 41):
        t = torch.rand(64, generator=generator)
        loss = (1 + 4 * t) * torch.rand(64, generator=generator)
        bins.add(step, t, loss, None)
        ts.append(t)
        losses.append(loss)
    before = bins.current.clone()
    chunks, chunk_steps, has_target = bins.snapshot(40, None)
    assert torch.equal(bins.current, before) and len(bins.pending) == 40 and bins.scale is None  # nothing changed
    summary = summarise_loss_by_t(chunks, chunk_steps, has_target)
    t, loss = torch.cat(ts).double().numpy(), torch.cat(losses).double().numpy()
    index = np.minimum((t * BINS).astype(int), BINS - 1)
    means = np.array([loss[index == b].mean() for b in range(BINS)])
    assert summary["bin_mean"] == pytest.approx(means, rel=1e-12)
    assert summary["loss_share"] == pytest.approx(means / means.sum(), rel=1e-12)
    weights = np.array([(index == b).mean() for b in range(BINS)])
    parts = np.array([weights[b] * (loss[index == b].var() + (means[b] - loss.mean()) ** 2) for b in range(BINS)])
    assert parts.sum() == pytest.approx(loss.var(), rel=1e-9)  # the law of total variance
    assert summary["variance_share"] == pytest.approx(parts / parts.sum(), rel=1e-9)
    bins.close_chunk(40, None)
    assert torch.equal(bins.chunks[0], chunks[0]) and bins.chunk_steps == chunk_steps


def test_variance_shares_of_equal_bins_are_even() -> None:
    shares = variance_shares(torch.full((4,), 10.0), torch.zeros(4, dtype=torch.float64), torch.ones(4))
    assert shares.tolist() == pytest.approx([0.25] * 4)


def test_tail_fit_recovers_a_power_law() -> None:
    count = np.full(2 * 16 + BINS, 100.0)
    distance = np.concatenate([np.ones(BINS), 2.0 ** -(np.arange(16) + 0.5), np.ones(16)])
    measured = distance ** -1.5
    tail = tail_fit(count, measured, BINS, "t -> 1", median=1.0, has_target=False)
    assert tail["slope"] == pytest.approx(-1.5) and tail["outer_ratio"] == pytest.approx(2 ** (15.5 * 1.5))
    sparse = tail_fit(np.zeros_like(count), measured, BINS, "t -> 1", median=1.0, has_target=True)
    assert sparse["slope"] is None and sparse["quantity"] == "squared target size"


def test_update_summary_by_hand() -> None:
    nan = math.nan
    ratios = [np.array([1e-3, 2e-3, nan]), np.array([0.0, 0.0, nan]), np.array([3e-3, 1e-3, nan])]
    masks = [np.array([True, True, False])] * 3
    matrices = np.array([True, False, True])
    result = update_summary(ratios, masks, [20, 40, 60], [0, 1], ["w", "b", "v"], matrices, steps_run=60)
    assert result["update_samples"] == 3 and result["zero_update_samples"] == 1
    assert result["update_ratio_median"] == pytest.approx(2e-3)  # median of the matrix "w" over moved updates
    assert result["update_ratio_by_tensor"] == {"w": pytest.approx(2e-3), "b": pytest.approx(1.5e-3)}
    assert result["movement_over_run"] == pytest.approx(0.12) and not result["never_moved"]
    assert update_summary(ratios, masks, [20, 40, 60], [2], ["w", "b", "v"], matrices, 60)["update_samples"] == 0


def test_update_ratio_and_gradient_noise_match_brute_force() -> None:
    model = torch.nn.Linear(3, 2)
    readings = GradientReadings()
    readings.watch("m", model)
    generator = torch.Generator().manual_seed(0)
    g = [torch.randn(p.shape, generator=generator) for p in model.parameters()]
    for step in range(1, 21):  # the 20th reading copies the weights and gradients
        for p, grad in zip(model.parameters(), g):
            p.grad = grad.clone()
        readings.at_step(step, True)
    before = [p.detach().clone() for p in model.parameters()]
    g2 = [torch.randn(p.shape, generator=generator) for p in model.parameters()]
    with torch.no_grad():
        for p, grad in zip(model.parameters(), g2):
            p -= 0.01 * grad
            p.grad = grad.clone()
    readings.at_step(21, True)
    updates = readings.settle()  # the measurements stay on the device until the flush reads them
    expected = [float((p.detach() - b).norm() / p.detach().norm()) for p, b in zip(model.parameters(), before)]
    assert updates[0].ratio.tolist() == pytest.approx(expected, rel=1e-5) and updates[0].step == 21
    change = sum(float((a - b).square().sum()) for a, b in zip(g, g2))
    dot = sum(float((a * b).sum()) for a, b in zip(g, g2))
    assert readings.noise_sums.tolist() == pytest.approx([change / 2, dot], rel=1e-4)


def test_phase_seconds_and_shares_by_hand() -> None:
    import pandas as pd

    frame = pd.DataFrame({"tag": ["time/data", "time/step", "time/data", "time/step", "time/share/data", "loss"],
                          "step": [1, 1, 2, 2, 2, 2], "value": [0.03, 0.01, 0.05, 0.01, 0.9, 1.0]})
    per_step = phase_seconds(frame, np.array([1, 2]), np.array([0.05, 0.05]))
    assert per_step.loc[2, "total"] == pytest.approx(0.06)  # the phases took longer than the interval
    assert per_step["other"].tolist() == pytest.approx([0.01, 0.0])
    summary = summarise_timing(per_step)
    assert summary["shares"]["data"] == pytest.approx(0.08 / 0.11) and summary["data_phases"] == ["data"]
    assert summary["ms_per_step_total"] == pytest.approx(55.0)


def test_data_rms_keeps_the_first_batches_only() -> None:
    rms = DataRMS()
    assert rms.value is None
    batches = [torch.full((4, 2), float(i + 1)) for i in range(10)]
    for batch in batches:
        rms.add(batch)
    assert rms.batches == 8 and rms.value == pytest.approx(math.sqrt(np.mean([(i + 1) ** 2 for i in range(8)])))


# -- loops written as a user would write them -----------------------------------------------------------------------


def two_moons(n: int, generator: torch.Generator) -> torch.Tensor:
    """A user's own data helper: two interleaved half circles, returned on the CPU."""
    angle = torch.rand(n, generator=generator) * math.pi
    upper = torch.rand(n, generator=generator) < 0.5
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    return torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2, generator=generator)


def user_flow_loop(run_dir: Path, *, exploding: bool, ask_every: int | None) -> tuple[gendiag.Monitor, list]:
    """Flow matching the way a user writes it: t drawn as a (B, 1) column, the velocity net fed cat([x, t]), the
    optimizer cleared after its step and the Monitor told last; optionally a target divided by (1 - t). With
    `ask_every`, every probe's findings are asked for every `ask_every` steps (what a live view will do)."""
    generator = torch.Generator().manual_seed(7)
    torch.manual_seed(7)
    net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.SiLU(), torch.nn.Linear(64, 2))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    mon = gendiag.Monitor(run_dir, task="flow", probes=["loss", "loss_by_t", "gradients", "timing"], overwrite=True,
                          check_every=None)  # only the test asks; the Monitor's own live checks would ask both runs
    mon.watch(net, call=lambda model, x, t: model(torch.cat([x, t.reshape(-1, 1)], 1)), optimizer=opt)
    asked: list = []
    for it in range(200):
        with mon.phase("data"):
            x1 = two_moons(256, generator)
            x0 = torch.randn(256, 2, generator=generator)
            t = torch.rand(256, 1, generator=generator)
        xt = t * x1 + (1 - t) * x0
        target = (x1 - x0) / (1 - t).clamp(min=1e-4) if exploding else x1 - x0
        per_sample = (net(torch.cat([xt, t], 1)) - target).square().sum(1)
        loss = per_sample.mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        mon.step(it, loss=loss.item(), t=t.squeeze(1), per_sample_loss=per_sample.detach())
        if ask_every and it % ask_every == 0:
            before = (len(mon.ctx.table.frame()), sorted((run_dir / "figures").glob("*")))
            for _ in range(2):
                asked.append([f.code for probe in mon.probes for f in probe.findings(mon.ctx)])
            assert (len(mon.ctx.table.frame()), sorted((run_dir / "figures").glob("*"))) == before
    mon.finish()
    return mon, asked


def findings_without_timing(run_dir: Path) -> list[dict]:
    return [f for f in json.loads((run_dir / "findings.json").read_text())["findings"]
            if f["code"] != "data-bottleneck"]


@pytest.mark.slow
def test_findings_asked_during_training_change_nothing_at_the_end(tmp_path: Path) -> None:
    _, asked = user_flow_loop(tmp_path / "asked", exploding=True, ask_every=40)
    user_flow_loop(tmp_path / "quiet", exploding=True, ask_every=None)
    assert findings_without_timing(tmp_path / "asked") == findings_without_timing(tmp_path / "quiet")
    codes = {f["code"] for f in findings_without_timing(tmp_path / "quiet")}
    assert "target-explodes" in codes
    assert "target-explodes" in asked[-1] and all(a == b for a, b in zip(asked[::2], asked[1::2]))
    for name in ("probe_data.json",):
        asked_data = json.loads((tmp_path / "asked" / name).read_text())
        quiet_data = json.loads((tmp_path / "quiet" / name).read_text())
        asked_data.pop("timing"), quiet_data.pop("timing")
        assert asked_data == quiet_data


def test_healthy_user_flow_loop_is_silent(tmp_path: Path) -> None:
    import pandas as pd

    user_flow_loop(tmp_path, exploding=False, ask_every=None)
    assert not {f["code"] for f in findings_without_timing(tmp_path)} & OUR_CODES
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    logged = metrics[metrics["tag"] == "grad/update_ratio"]["value"]  # a ratio per step, not a tensor's index
    median = json.loads((tmp_path / "probe_data.json").read_text())["gradients"]["update_ratio_median"]
    assert len(logged) and (logged < 0.1).all() and logged.iloc[-1] == pytest.approx(median, rel=2.0)


def test_user_ddpm_with_a_short_schedule_is_found_mid_run(tmp_path: Path) -> None:
    """A user's DDPM: β from a list, data observed through observe_data, integer timesteps; the schedule's finding
    is there from the first step on."""
    betas = np.linspace(1e-4, 0.02, 100)
    alphas_cumprod = np.cumprod(1 - betas)
    generator = torch.Generator().manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    mon = gendiag.Monitor(tmp_path, task="diffusion", probes=["schedule", "loss"], schedule=alphas_cumprod.tolist())
    table = torch.as_tensor(alphas_cumprod, dtype=torch.float32)
    for step in range(1, 41):
        x0 = two_moons(128, generator)
        mon.observe_data(x0)
        t = torch.randint(0, 100, (128,), generator=generator)
        noise = torch.randn(128, 2, generator=generator)
        a = table[t].unsqueeze(1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        loss = (net(torch.cat([xt, t.unsqueeze(1) / 100], 1)) - noise).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(step, loss=loss)
        if step == 1:
            early = [f for probe in mon.probes for f in probe.findings(mon.ctx)]
            assert [f.code for f in early] == ["schedule-not-reaching-noise"]
            assert not (tmp_path / early[0].figure).exists()  # named before it is drawn
    report = mon.finish()
    final = [f for f in report.findings if f.code == "schedule-not-reaching-noise"]
    assert final[0].severity == "critical" and (tmp_path / final[0].figure).is_file()
