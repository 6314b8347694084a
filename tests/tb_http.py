"""A real `tensorboard` server on a loopback port, for tests that read a run back through its HTTP data API."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

READY_SECONDS = 60.0


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_json(base: str, path: str, **query: str) -> Any:
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read().decode("utf-8"))


@contextmanager
def tensorboard_serving(logdir: Path, log_path: Path, expected: set[str]) -> Iterator[tuple[str, str]]:
    """Start `tensorboard` on `logdir`, wait until one run serves every `expected` scalar tag, and yield (base URL,
    run name); the server is stopped on exit. Skips when no tensorboard executable sits beside this Python."""
    binary = Path(sys.executable).with_name("tensorboard")
    if not binary.is_file():
        pytest.skip(f"no tensorboard executable beside {sys.executable}")
    port = free_loopback_port()
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [str(binary), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port),
             "--load_fast=false", "--reload_interval", "1"],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            tags = _wait_for_tags(base, server, expected)
            yield base, next(name for name, served in tags.items() if expected <= set(served))
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=15)


def _wait_for_tags(base: str, server: subprocess.Popen, expected: set[str]) -> dict[str, dict[str, Any]]:
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
