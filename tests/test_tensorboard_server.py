"""A real `tensorboard` server on a loopback port reads a Monitor's run back: the scalar tags and their values are
exactly what the run logged (through the scalars plugin's HTTP data API)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import gendiag

READY_SECONDS = 60.0
LOGGED = {"loss/train": [2.5, 1.75, 1.125, 0.8125], "train/lr": [1e-3, 5e-4, 2.5e-4, 1.25e-4],
          "grad/global_norm": [10.0, 8.0, 6.0, 4.0]}


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_json(base: str, path: str, **query: str) -> Any:
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read().decode("utf-8"))


def wait_for_tags(base: str, server: subprocess.Popen, expected: set[str]) -> dict[str, dict[str, Any]]:
    """Poll the scalars plugin until every expected tag is served (TensorBoard loads event files in the background)."""
    deadline = time.monotonic() + READY_SECONDS
    last: Any = None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"tensorboard exited early with code {server.returncode}")
        try:
            last = get_json(base, "/data/plugin/scalars/tags")
            if any(expected <= set(tags) for tags in last.values()):
                return last
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"tensorboard did not serve {sorted(expected)} within {READY_SECONDS:.0f} s; last answer: {last}")


def test_tensorboard_serves_the_logged_scalars(tmp_path: Path) -> None:
    binary = Path(sys.executable).with_name("tensorboard")
    if not binary.is_file():
        pytest.skip(f"no tensorboard executable beside {sys.executable}")
    run_dir = tmp_path / "run"
    with gendiag.Monitor(run_dir, task="generic", probes=[]) as mon:
        for step, (loss, lr, norm) in enumerate(zip(*LOGGED.values()), start=1):
            mon.step(step, loss, lr=lr, **{"grad/global_norm": norm})
    mon.finish()

    port = free_loopback_port()
    log = (tmp_path / "tensorboard.log").open("w")
    server = subprocess.Popen(
        [str(binary), "--logdir", str(run_dir / "tb"), "--host", "127.0.0.1", "--port", str(port),
         "--load_fast=false", "--reload_interval", "1"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        tags = wait_for_tags(base, server, set(LOGGED))
        run = next(name for name, served in tags.items() if set(LOGGED) <= set(served))
        for tag, values in LOGGED.items():
            points = get_json(base, "/data/plugin/scalars/scalars", run=run, tag=tag)
            assert [step for _, step, _ in points] == [1, 2, 3, 4], tag
            assert [value for _, _, value in points] == pytest.approx(values, rel=1e-6), tag
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
        log.close()
