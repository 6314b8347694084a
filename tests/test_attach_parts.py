"""The parts of `gendiag attach` on small scripts written as users write them: the loss's graph, exit status and
output, interruption, facts from YAML, the command line, and what the report says it could not read."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gendiag.attach import run_attached
from gendiag.attach.convention import Convention, read_convention
from gendiag.attach.facts_file import load_facts
from gendiag.attach.graph import describe, find_regression
from gendiag.attach.runner import split_command
from gendiag.attach.schedule import Schedule, interval
from gendiag.cli import main
from gendiag.monitor import Monitor

ROOT = Path(__file__).resolve().parent.parent


def script(tmp_path: Path, body: str, name: str = "train.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def inferred(run_dir: Path) -> str:
    sections = json.loads((run_dir / "sections.json").read_text())
    return next(s["text"] for s in sections if s["title"] == "What gendiag attach inferred")


# A user's flow loop in the README's shape, with the loss as a parameter of the script.
FLOW = """
    import sys
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.SiLU(), torch.nn.Linear(64, 2))

    class Velocity(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x, t):
            return self.net(torch.cat([x, t[:, None]], 1))

    model = Velocity()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    kind = sys.argv[1]
    for step in range(60):
        x1 = torch.randn(128, 2) * 0.5 + 2
        x0 = torch.randn(128, 2)
        t = torch.rand(128)
        xt = t[:, None] * x1 + (1 - t[:, None]) * x0
        pred = model(xt, t)
        if kind == "l1":
            loss = (pred - (x1 - x0)).abs().mean()
        else:
            loss = F.mse_loss(pred, x1 - x0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        t = torch.rand(256)                       # a validation pass at random times: not a sampler
        model(t[:, None] * (torch.randn(256, 2) * 0.5 + 2) + (1 - t[:, None]) * torch.randn(256, 2), t)
        x = torch.randn(256, 2)
        for i in range(10):
            x = x + model(x, torch.full((256,), i / 10)) / 10
    print("trained", kind)
"""


def test_graph_reads_residual_and_sign_of_the_common_squared_errors() -> None:
    layer = torch.nn.Linear(3, 3)
    out, target = layer(torch.randn(5, 3)), torch.randn(5, 3)
    known = {out.grad_fn: ("call", out)}
    for loss in (((out - target) ** 2).mean(), ((target - out) ** 2).sum(1).mean(), F.mse_loss(out, target),
                 (out.reshape(15) - target.reshape(15)).pow(2).mean(), torch.square(out - target).mean()):
        found = find_regression(loss, known)
        assert found is not None and found.call == "call", describe(loss)
        torch.testing.assert_close(out.detach() - found.residual, target)
    assert find_regression((out - target).abs().mean(), known) is None
    assert find_regression(((out - target) ** 2).mean(), {}) is None  # not a watched output
    assert describe((out - target).abs().mean()).startswith("MeanBackward0 <- AbsBackward0 <- SubBackward0")


def test_convention_finds_x_and_t_by_shape() -> None:
    x = torch.zeros(8, 2)
    assert read_convention((x, torch.rand(8)), {}) == Convention(0, 1)
    assert read_convention((x,), {"timestep": torch.tensor(3)}) == Convention(0, "timestep")
    assert read_convention((torch.rand(8, 1), x), {}) == Convention(1, 0)
    assert read_convention((torch.rand(8), x), {}) == Convention(1, 0)
    assert read_convention((torch.cat([x, torch.rand(8, 1)], 1),), {}) == Convention(0, None)  # a stated limit
    assert read_convention((x,), {}) == Convention(0, None)
    assert read_convention((torch.zeros(8),), {}) is None


@pytest.mark.slow
def test_mse_flow_script_output_and_inference(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = script(tmp_path, FLOW)
    attached = run_attached(["python", str(path), "mse"], tmp_path / "run")
    text = inferred(attached.run_dir)
    assert attached.exit_code == 0 and capsys.readouterr().out == "trained mse\n"
    assert "**Task: flow**" in text and "through `MseLossBackward0`" in text
    assert "| 60 | 10 | 1 | yes |" in text  # 60 training calls, 10 sampling calls, the validation call left out
    probe_data = json.loads((attached.run_dir / "probe_data.json").read_text())
    assert probe_data["loss_by_t"]["samples"] == 57 * 128  # per-sample losses of every round after the first 3


def test_unrecognised_loss_is_said_with_the_probes_that_went_without(tmp_path: Path) -> None:
    path = script(tmp_path, FLOW)
    attached = run_attached(["python", str(path), "l1"], tmp_path / "run", task="flow")
    text = inferred(attached.run_dir)
    assert "given with --task" in text
    assert "not a squared error on a watched output: `MeanBackward0 <- AbsBackward0 <- SubBackward0" in text
    assert "`loss_by_t` had no per-sample losses" in text
    assert not any(f.code in ("target-explodes", "loss-t-imbalance") for f in attached.report.findings)


def test_exit_status_and_partial_report_follow_the_script(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = script(tmp_path, """
        import sys
        import torch
        net = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for step in range(5):
            net(torch.randn(4, 2)).pow(2).mean().backward()
            opt.step()
        print("argv", sys.argv[1:], __name__)
        sys.exit(3)
    """)
    attached = run_attached(["python", str(path), "--flag", "x"], tmp_path / "run")
    assert attached.exit_code == 3
    assert capsys.readouterr().out == "argv ['--flag', 'x'] __main__\n"
    assert attached.report.partial == "the script exited with status 3"
    assert (attached.run_dir / "report.html").is_file()


def test_ctrl_c_writes_a_partial_report_and_exits_130(tmp_path: Path) -> None:
    path = script(tmp_path, """
        import torch
        net = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for step in range(8):
            net(torch.randn(4, 2)).pow(2).mean().backward()
            opt.step()
        raise KeyboardInterrupt
    """)
    attached = run_attached(["python", str(path)], tmp_path / "run")
    assert attached.exit_code == 130
    assert attached.report.partial.startswith("interrupted")
    assert "**Task: generic**" in inferred(attached.run_dir)


def test_facts_file(tmp_path: Path) -> None:
    good = script(tmp_path, "image_shape: [1, 8, 8]\nmodes: [[0, 0], [1, 1]]\nmode_std: 0.1\n", "facts.yaml")
    facts = load_facts(good)
    assert facts["image_shape"] == (1, 8, 8) and facts["modes"].shape == (2, 2)
    with pytest.raises(ValueError, match="fact 'sampler' is a function"):
        load_facts(script(tmp_path, "sampler: euler\n", "bad.yaml"))
    with pytest.raises(ValueError, match="did you mean 'image_shape'"):
        load_facts(script(tmp_path, "image_shap: [1, 8, 8]\n", "typo.yaml"))


def test_split_command() -> None:
    assert split_command(["--", "python", "cases/scripts/healthy_flow.py", "--steps", "3"]) == (
        "script", "cases/scripts/healthy_flow.py", ["--steps", "3"])
    assert split_command(["python3", "-m", "pkg.train", "a"]) == ("module", "pkg.train", ["a"])
    with pytest.raises(ValueError, match="option '-u' is not supported"):
        split_command(["python", "-u", "x.py"])
    with pytest.raises(FileNotFoundError, match="no script 'missing.py'"):
        split_command(["python", "missing.py"])


def test_cli_returns_the_scripts_status(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = script(tmp_path, "import sys\nprint('hello')\nsys.exit(4)\n")
    assert main(["attach", "--out", str(tmp_path / "reports"), "--", "python", str(path)]) == 4
    captured = capsys.readouterr()
    assert captured.out == "hello\n"
    assert "gendiag attach: task generic; report in" in captured.err
    assert len(list((tmp_path / "reports" / "train").glob("*/report.html"))) == 1


@pytest.mark.slow
def test_cli_refuses_a_missing_script_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "gendiag.cli", "attach", "--out", str(tmp_path), "--", "python",
                           "nowhere.py"], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"gendiag: error: attach: no script 'nowhere.py' (from {ROOT})"]


@pytest.mark.slow
def test_sigterm_writes_a_partial_report_and_exits_143(tmp_path: Path) -> None:
    path = script(tmp_path, """
        import os
        import signal
        import torch
        net = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for step in range(6):
            net(torch.randn(4, 2)).pow(2).mean().backward()
            opt.step()
        os.kill(os.getpid(), signal.SIGTERM)
        print("not reached")
    """)
    done = subprocess.run([sys.executable, "-m", "gendiag.cli", "attach", "--out", str(tmp_path / "reports"), "--",
                           "python", str(path)], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 143 and "not reached" not in done.stdout
    findings = json.loads(next((tmp_path / "reports" / "train").glob("*/findings.json")).read_text())
    assert findings["partial"] == "stopped by SIGTERM"


def test_integer_timesteps_read_as_diffusion(tmp_path: Path) -> None:
    path = script(tmp_path, """
        import torch

        class Denoiser(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.SiLU(), torch.nn.Linear(64, 2))

            def forward(self, x, timestep):
                return self.net(torch.cat([x, timestep[:, None].float() / 100], 1))

        torch.manual_seed(0)
        abar = torch.cumprod(1 - torch.linspace(1e-4, 0.2, 100), 0)
        model = Denoiser()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for step in range(40):
            x0 = torch.randn(128, 2) * 0.5 + 1
            t = torch.randint(0, 100, (128,))
            eps = torch.randn(128, 2)
            a = abar[t][:, None]
            loss = ((model(a.sqrt() * x0 + (1 - a).sqrt() * eps, timestep=t) - eps) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    """)
    text = inferred(run_attached(["python", str(path)], tmp_path / "run").run_dir)
    assert "**Task: diffusion**" in text and "x = argument 0, t = keyword 'timestep'" in text
    assert "integer timesteps" in text


@pytest.mark.slow
def test_cli_hands_the_facts_file_to_the_probes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    facts = script(tmp_path, "modes: [[2.0, 2.0]]\nmode_std: 0.5\n", "facts.yaml")
    path = script(tmp_path, FLOW)
    assert main(["attach", "--facts", str(facts), "--out", str(tmp_path / "reports"), "--", "python", str(path),
                 "mse"]) == 0
    probe_data = json.loads(next((tmp_path / "reports" / "train").glob("*/probe_data.json")).read_text())
    assert probe_data["mode-collapse"]["n_modes"] == 1  # the mode-collapse probe ran on the declared mode


def test_schedule_interval_keeps_the_share() -> None:
    assert interval(step_seconds=0.002, cost_seconds=0.002, share=0.05) == 32  # 0.002 / 32 <= 5% of 0.002
    assert interval(step_seconds=0.1, cost_seconds=0.001, share=0.05) == 1
    assert interval(step_seconds=0.001, cost_seconds=1.0, share=0.05, longest=64) == 64
    assert interval(step_seconds=0.001, cost_seconds=1.0, share=0.05, longest=12) == 8  # a power of two


def test_schedule_learns_the_interval_from_round_durations() -> None:
    schedule = Schedule(first_round=4, share=0.05, full_rounds=8, longest=64)
    for _ in range(3):
        schedule.unwatched(0.002)
    assert not schedule.records(3) and all(schedule.records(r) for r in range(4, 12))
    recorded = []
    for round_ in range(4, 200):  # the script's rounds take 2 ms, a recorded one 2 ms more, a full one 0.1 ms more
        if schedule.records(round_):
            recorded.append(round_)
        schedule.round_took(round_, 0.0021 if round_ < 12 else 0.004 if schedule.records(round_) else 0.002)
        if round_ == 11:
            assert schedule.every == 64  # nothing left alone yet: the longest, to time the script's own rounds
    assert schedule.every == 32 and schedule.step_seconds == 0.002 and schedule.cost_seconds == 0.002
    assert recorded == [*range(4, 12), 64, 128, 160, 192]  # timed by round 64 alone, not by the cheap full rounds
    schedule.saw_batch(16)  # batches of 16 rows: k at most 16 / 2 = 8
    schedule.round_took(224, 0.004)
    assert schedule.every == 8


def test_schedule_keeps_rounds_alone_to_time_the_script_however_cheap_recording_is() -> None:
    schedule = Schedule(first_round=4, share=0.05, full_rounds=8)
    for _ in range(3):
        schedule.unwatched(0.1)
    for round_ in range(4, 600):  # recording costs 0.1% of a 100 ms round: k = 1 would keep the share
        schedule.round_took(round_, 0.1001 if schedule.records(round_) else 0.1)
    assert schedule.every == 4 and schedule.step_seconds == 0.1
    for round_ in range(600, 1000):  # the machine gets faster: the rounds left alone tell
        schedule.round_took(round_, 0.0501 if schedule.records(round_) else 0.05)
    assert schedule.every == 4 and schedule.step_seconds == 0.05


def test_schedule_of_a_small_batch_script_times_it_by_its_warmup() -> None:
    schedule = Schedule(first_round=4, share=0.05, full_rounds=8)
    for _ in range(3):
        schedule.unwatched(0.002)
    schedule.saw_batch(4)  # k at most 4 / 2 = 2: no round is ever left alone to time
    for round_ in range(4, 12):
        schedule.round_took(round_, 0.0021)  # recording costs 5% of a round: every round is recorded
    assert schedule.every == 1
    for round_ in range(12, 80):
        schedule.round_took(round_, 0.004 if schedule.records(round_) else 0.002)
    assert schedule.every == 2


def test_suspended_recording_hides_optimizer_steps_from_the_probes(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(tmp_path / "run", task="generic", probes=["gradients"], check_every=None)
    monitor.watch(model, t_arg=None, optimizer=optimizer)
    readings = monitor.probes[0].readings
    with monitor.ctx.suspended_recording():
        model(torch.randn(4, 2)).sum().backward()
        optimizer.step()
    assert readings.changes == 0
    model(torch.randn(4, 2)).sum().backward()
    optimizer.step()
    assert readings.changes == 1
    monitor.close()


def test_unrecorded_rounds_run_without_global_module_hooks_yet_count_and_wake(tmp_path: Path) -> None:
    """Between recorded rounds the global module hooks are off (torch's fast path for every layer); training calls
    are still counted, the first sampling call wakes the hooks and the whole sampling run is recorded, and
    `Module.__call__` is the original again after the run."""
    body = FLOW.replace("range(60)", "range(400)").replace("torch.rand(128)", "torch.rand(256)").replace(
        "randn(128, 2)", "randn(256, 2)").replace("        opt.step()\n", """        opt.step()
        if step == 381:  # the round after it is odd: unrecorded at any k above 1
            from torch.nn.modules import module
            print("global module hooks at step 381:", len(module._global_forward_hooks))
""")
    path = script(tmp_path, body)
    call = torch.nn.Module.__call__
    completed = subprocess.run([sys.executable, "-m", "gendiag.cli", "attach", "--out", str(tmp_path / "runs"), "--",
                                "python", str(path), "mse"], capture_output=True, text=True, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr
    assert "global module hooks at step 381: 0" in completed.stdout
    run_dir = next((tmp_path / "runs").glob("*/*/"))
    text = inferred(run_dir)
    assert "| 400 | 10 | 1 | yes |" in text, text  # 400 training calls counted, the 10 sampling calls all seen
    assert torch.nn.Module.__call__ is call


@pytest.mark.slow
def test_a_long_run_is_recorded_on_a_schedule_the_report_states(tmp_path: Path) -> None:
    path = script(tmp_path, FLOW.replace("range(60)", "range(240)"))
    attached = run_attached(["python", str(path), "mse"], tmp_path / "run")
    text = inferred(attached.run_dir)
    found = re.search(r"(\d+) of the 237 rounds after the warm-up were recorded and shown to the probes: the first "
                      r"64, then one round in k, k (\d+) at the end", text)
    assert found is not None, text
    recorded, every = int(found[1]), int(found[2])
    assert 64 < recorded < 237 and every in (4, 8, 16, 32, 64)  # batches of 128 rows: at most 128 / 2, at least 4
    assert "at least 4, so that rounds are still left alone to time the script by" in text
    assert "| 240 | 10 | 1 | yes |" in text  # every training call counted, the sampling all seen
    metrics = (attached.run_dir / "metrics.csv").read_text().splitlines()
    assert sum(",loss/train," in row for row in metrics) == recorded  # one Monitor step per recorded round
