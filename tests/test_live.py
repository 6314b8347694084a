"""Live diagnosis (issue 20) on loops written as a user would write them: a broken loop announces its finding on
the console and in findings_live.jsonl before it ends, a healthy one announces nothing; first_step on every
finding and in the report; stop_on; a rule that raises mid-run; the live record's own bookkeeping."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import gendiag
from gendiag.findings import Finding
from gendiag.live import JOURNAL, LiveChecks, stops
from gendiag.report import load_run, render_run
from gendiag.sinks import Sink


class Net(torch.nn.Module):
    """The user's network: one input, the point and its time side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.SiLU(), torch.nn.Linear(32, 2))

    def forward(self, xt: torch.Tensor) -> torch.Tensor:
        return self.body(xt)


def blobs(n: int, gen: torch.Generator) -> torch.Tensor:
    """The user's data: two blobs."""
    side = torch.randint(0, 2, (n, 1), generator=gen) * 2.0 - 1.0
    return torch.cat([side * 2, torch.zeros(n, 1)], 1) + 0.3 * torch.randn(n, 2, generator=gen)


def train(run_dir: Path, *, broken: bool, steps: int = 200, seen: list[str] | None = None,
          stop_on: str | None = None, **monitor: object) -> gendiag.Monitor:
    """A flow-matching loop in the user's own order. Broken: the target is divided by (1 - t), so it grows without
    bound as t -> 1. `seen` gets, after each step, the lines findings_live.jsonl holds by then (as `tail -f`)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    mon = gendiag.Monitor(run_dir, task="flow", stop_on=stop_on, **monitor)
    mon.watch(net, inputs=lambda args, kwargs: (args[0][:, :2], args[0][:, 2]),
              call=lambda module, x, t: module(torch.cat([x, t[:, None]], 1)), optimizer=opt)
    for it in range(steps):
        x1 = blobs(128, gen)
        x0 = torch.randn(128, 2, generator=gen)
        t = torch.rand(128, generator=gen)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        target = (x1 - x0) / (1 - t[:, None]).clamp(min=1e-3) if broken else x1 - x0
        opt.zero_grad()
        err = ((net(torch.cat([xt, t[:, None]], 1)) - target) ** 2).sum(1)
        err.mean().backward()
        opt.step()
        if it % 50 == 0:
            mon.observe_data(x1)
            mon.observe_data(x0, role="source")
        mon.step(it, err.mean(), t=t, per_sample_loss=err.detach())
        if seen is not None:
            journal = run_dir / JOURNAL
            seen.append(journal.read_text() if journal.exists() else "")
        if mon.should_stop:
            break
    with mon.sampling(), torch.no_grad():
        x = torch.randn(500, 2, generator=gen)
        for i in range(20):
            x = x + net(torch.cat([x, torch.full((500, 1), i / 20)], 1)) / 20
    mon.observe_samples(x)
    mon.finish()
    return mon


class Texts(Sink):
    """The user's own sink: keeps the texts it is sent (TensorBoard gets the same calls)."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str, int]] = []

    def scalar(self, tag: str, value: float, step: int) -> None:
        pass

    def text(self, tag: str, text: str, step: int) -> None:
        self.texts.append((tag, text, step))


@pytest.mark.slow
def test_broken_loop_announces_before_it_ends(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []
    sink = Texts()
    train(tmp_path / "run", broken=True, seen=seen, check_every=10, check_seconds=0, sinks=[sink])
    console = capsys.readouterr().err
    assert "CRITICAL target-explodes" in console
    line = next(line for line in console.splitlines() if "target-explodes" in line)
    step = int(line.split()[1])
    assert 0 < step <= 40  # the first checks already see it: the loop had 200 steps to go
    assert ("findings_live", line, step) in sink.texts
    assert "target-explodes" in seen[step] and "target-explodes" not in seen[step - 1]
    entries = [json.loads(line) for line in (tmp_path / "run" / JOURNAL).read_text().splitlines()]
    first = next(entry for entry in entries if entry["code"] == "target-explodes")
    assert (first["event"], first["severity"], first["step"], first["first_step"]) == \
        ("appeared", "critical", step, step)
    assert sum(entry["code"] == "target-explodes" and entry["event"] == "appeared" for entry in entries) == 1
    saved = json.loads((tmp_path / "run" / "findings.json").read_text())
    assert saved["steps"] == 199
    codes = {entry["code"]: entry for entry in saved["findings"]}
    assert codes["target-explodes"]["first_step"] == step and codes["target-explodes"]["last_step"] is None
    assert all(entry["first_step"] is not None for entry in saved["findings"])
    report = (tmp_path / "run" / "report.md").read_text()
    assert f"first seen at step {step} of 199 ({step / 199:.0%})" in report
    assert f"Known during training: `target-explodes` at step {step} of 199" in report


@pytest.mark.slow
def test_healthy_loop_announces_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mon = train(tmp_path / "run", broken=False, check_every=10, check_seconds=0)
    assert capsys.readouterr().err == ""
    assert not (tmp_path / "run" / JOURNAL).exists()
    assert not mon.should_stop and mon.stopped_on is None
    saved = load_run(tmp_path / "run")
    assert [f.severity for f in saved.findings if f.severity != "info"] == [] and saved.cleared == []


@pytest.mark.slow
def test_stop_on_critical_stops_the_users_loop(tmp_path: Path) -> None:
    mon = train(tmp_path / "run", broken=True, stop_on="critical", check_every=10, check_seconds=0,
                announce=lambda line: None)
    finding, step = mon.stopped_on
    assert mon.should_stop and finding.code == "target-explodes" and finding.severity == "critical"
    assert mon.ctx.step == step <= 40  # the loop broke at the step of the check that found it
    assert load_run(tmp_path / "run").steps == step


@pytest.mark.slow  # two runs; stop_on="critical" is in the default set
def test_stop_on_warning_also_stops_on_critical_and_none_never_stops(tmp_path: Path) -> None:
    mon = train(tmp_path / "warning", broken=True, stop_on="warning", check_every=10, check_seconds=0,
                announce=lambda line: None)
    assert mon.should_stop and mon.stopped_on[0].severity in ("warning", "critical")
    mon = train(tmp_path / "none", broken=True, steps=60, check_every=10, check_seconds=0,
                announce=lambda line: None)
    assert not mon.should_stop and mon.ctx.step == 59


@pytest.mark.parametrize("stop_on", ["info", "Critical", True, ""])
def test_stop_on_other_values_are_refused_in_one_line(tmp_path: Path, stop_on: object) -> None:
    with pytest.raises(ValueError, match=r"^Monitor: stop_on must be one of None, 'warning' or 'critical', got "):
        gendiag.Monitor(tmp_path / "run", task="flow", stop_on=stop_on)
    assert not (tmp_path / "run").exists()


def test_stop_on_needs_live_checks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="stop_on='critical' needs live checks"):
        gendiag.Monitor(tmp_path / "run", task="flow", stop_on="critical", check_every=None)


def test_a_rule_that_raises_mid_run_switches_its_probe_off_and_training_goes_on(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    mon = gendiag.Monitor(tmp_path / "run", task="generic", check_every=5, check_seconds=0)
    mon.watch(net, t_arg=None, optimizer=opt)
    loss_probe = next(probe for probe in mon.probes if probe.name == "loss")

    def broken_rule(ctx: object) -> list[Finding]:
        raise ZeroDivisionError("a rule divided by zero")

    loss_probe.findings = broken_rule
    for step in range(1, 21):
        x = torch.randn(16, 2)
        loss = net(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(step, loss)
    report = mon.finish()
    assert loss_probe not in mon.probes and mon.ctx.step == 20
    failed = [f for f in report.findings if f.code == "probe-failed"]
    assert len(failed) == 1 and failed[0].evidence["method"] == "findings" and failed[0].evidence["step"] == 5
    assert failed[0].first_step == 5
    assert "ZeroDivisionError: a rule divided by zero" in \
        (tmp_path / "run" / failed[0].evidence["traceback"]).read_text()


def test_strict_monitor_raises_from_a_live_check(tmp_path: Path) -> None:
    net = torch.nn.Linear(2, 2)
    mon = gendiag.Monitor(tmp_path / "run", task="generic", strict=True, check_every=1, check_seconds=0)
    mon.watch(net, t_arg=None)
    next(probe for probe in mon.probes if probe.name == "loss").findings = lambda ctx: 1 / 0
    with pytest.raises(ZeroDivisionError):
        mon.step(1, net(torch.randn(4, 2)).pow(2).mean())
    mon.close()


def finding(code: str, severity: str = "critical", **evidence: object) -> Finding:
    return Finding(code=code, severity=severity, title=code, message="m", evidence=dict(evidence), probe="p")


def test_live_record_announces_appearing_clearing_and_returning(tmp_path: Path) -> None:
    lines: list[str] = []
    live = LiveChecks(tmp_path, sinks=[], announce=lines.append, every=1, seconds=0)
    live.record(10, [finding("a"), finding("b", "info")])
    live.record(20, [finding("a"), finding("b", "info"), finding("c", "warning", network="G")])
    live.record(30, [finding("c", "warning", network="D"), finding("c", "warning", network="G")])
    live.record(40, [finding("a")])
    assert lines == ["step 10  CRITICAL a: a", "step 20  WARNING c: c", "step 30  WARNING c: c",
                     "step 30  cleared a: a (held from step 10 to 20)",
                     "step 40  CRITICAL a: a (again; first seen at step 10)",
                     "step 40  cleared c: c (held from step 20 to 30)",
                     "step 40  cleared c: c (held from step 30 to 30)"]
    final = [finding("a"), finding("late", "warning")]
    cleared = live.stamp(final, 50, gone=lambda f: False)
    assert [(f.code, f.first_step, f.last_step) for f in final] == [("a", 10, None), ("late", 50, None)]
    assert sorted((f.code, f.evidence["network"], f.first_step, f.last_step) for f in cleared) == \
        [("c", "D", 30, 30), ("c", "G", 20, 30)]
    entries = [json.loads(line) for line in (tmp_path / JOURNAL).read_text().splitlines()]
    assert [(e["step"], e["event"], e["code"]) for e in entries] == [
        (10, "appeared", "a"), (20, "appeared", "c"), (30, "appeared", "c"), (30, "cleared", "a"),
        (40, "returned", "a"), (40, "cleared", "c"), (40, "cleared", "c")]


def test_a_finding_of_a_probe_switched_off_is_not_called_cleared(tmp_path: Path) -> None:
    live = LiveChecks(tmp_path, sinks=[], announce=lambda line: None, every=1, seconds=0)
    live.record(5, [finding("a")])
    assert live.stamp([], 9, gone=lambda f: f.probe == "p") == []
    held = live.stamp([], 9, gone=lambda f: False)
    assert [(f.code, f.first_step, f.last_step) for f in held] == [("a", 5, 5)]


def test_checks_wait_for_both_the_steps_and_the_wall_time(tmp_path: Path) -> None:
    now = [0.0]
    live = LiveChecks(tmp_path, sinks=[], every=10, seconds=2.0, clock=lambda: now[0])
    assert not live.due(9) and live.due(10)  # the first check waits for the steps only
    live.record(10, [])
    now[0] = 1.9
    assert not live.due(20) and not live.due(40)  # steps enough, but under 2 s since the last check
    now[0] = 10.0
    assert not live.due(19) and live.due(20)
    with pytest.raises(ValueError, match="check_every must be an integer >= 1"):
        LiveChecks(tmp_path, sinks=[], every=0)


@pytest.mark.parametrize("settings, message", [
    (dict(check_every=0), "check_every must be an integer >= 1 (or None for no live checks), got 0"),
    (dict(check_every=2.5), "check_every must be an integer >= 1 (or None for no live checks), got 2.5"),
    (dict(check_seconds=-1), "check_seconds must be a number >= 0, got -1"),
    (dict(total_steps=0), "total_steps must be an integer >= 1 (or None), got 0"),
])
def test_a_bad_schedule_is_refused_before_the_run_folder_exists(tmp_path: Path, settings: dict,
                                                                message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape('Monitor: ' + message)}$"):
        gendiag.Monitor(tmp_path / "run", task="flow", **settings)
    with pytest.raises(TypeError, match="announce must be callable"):
        gendiag.Monitor(tmp_path / "run", task="flow", announce="stderr")
    assert not (tmp_path / "run").exists()


def test_first_step_survives_the_report_round_trip(tmp_path: Path) -> None:
    item = Finding(code="x", severity="warning", title="t", message="m", first_step=12, last_step=40)
    assert Finding.from_dict(json.loads(json.dumps(item.to_dict()))) == item
    assert Finding.from_dict({k: v for k, v in item.to_dict().items() if k not in ("first_step", "last_step")}) \
        .first_step is None  # findings.json of a run made before live checks still reads


def test_cleared_findings_are_shown_apart_and_read_back(tmp_path: Path) -> None:
    held = Finding(code="target-explodes", severity="critical", title="Target explodes", message="m", first_step=12)
    gone = Finding(code="loss-diverging", severity="warning", title="Loss grows", message="spike", first_step=30,
                   last_step=40)
    render_run(tmp_path, [held], [], steps=100, cleared=[gone])
    markdown = (tmp_path / "report.md").read_text()
    assert "Known during training: `target-explodes` at step 12 of 100 (12%)." in markdown
    assert "— Target explodes · first seen at step 12 of 100 (12%)" in markdown
    assert "## Cleared during training" in markdown
    assert "`loss-diverging` — Loss grows · first seen at step 30 of 100 (30%), cleared after step 40: spike" in markdown
    assert "first seen at step 12 of 100 (12%)" in (tmp_path / "report.html").read_text()
    saved = load_run(tmp_path)
    assert (saved.findings, saved.cleared, saved.steps) == ([held], [gone], 100)


def test_outcomes_of_training_are_recorded_quietly(tmp_path: Path) -> None:
    """A network early in training ignores t as a healthy one does: field-ignores-t is never announced, never
    stops a run, never 'cleared'; it counts as known from the check where it began to hold without a break."""
    lines: list[str] = []
    live = LiveChecks(tmp_path, sinks=[], announce=lines.append, every=1, seconds=0)
    ignores = finding("field-ignores-t", "critical")
    assert not stops(ignores, "warning") and stops(finding("target-explodes"), "critical")
    for step, held in ((10, True), (20, True), (30, False), (40, True), (50, True)):
        live.record(step, [ignores] if held else [])
    final = [finding("field-ignores-t", "critical")]
    assert live.stamp(final, 60, gone=lambda f: False) == [] and final[0].first_step == 40
    assert lines == [] and not (tmp_path / JOURNAL).exists()
    live.record(70, [])
    late = [finding("field-ignores-t", "critical")]
    live.stamp(late, 80, gone=lambda f: False)
    assert late[0].first_step == 80  # it did not hold at the last check: known at the end only


def test_a_slow_check_waits_until_checks_are_two_percent_of_the_time(tmp_path: Path) -> None:
    now = [0.0]
    live = LiveChecks(tmp_path, sinks=[], every=1, seconds=0.0, clock=lambda: now[0])
    live.record(1, [], spent=0.5)  # a check that ran a network for half a second
    now[0] = 24.9
    assert not live.due(100)
    now[0] = 25.1
    assert live.due(100)
    live.record(100, [], spent=0.001)
    now[0] = 25.2
    assert live.due(101)  # a cheap check waits only 0.05 s


def test_live_checks_skip_a_probe_that_only_costs_time(tmp_path: Path) -> None:
    """The sampler probe runs the user's sampler and finds outcomes only: live checks leave it to the end."""
    mon = gendiag.Monitor(tmp_path / "run", task="flow", probes=["sampler", "loss"], check_every=5, check_seconds=0)
    asked: dict[str, list[int]] = {"sampler": [], "loss": []}
    for probe in mon.probes:
        original = probe.findings
        probe.findings = lambda ctx, name=probe.name, original=original: asked[name].append(ctx.step) or original(ctx)
    for step in range(1, 21):
        mon.step(step, 1.0)
    assert asked["loss"][:1] == [5] and asked["sampler"] == []  # checked at step 5 (later ones: the 2% share)
    mon.finish()
    assert asked["sampler"] == [20]
