"""findings_live.jsonl under a kill: the writer is stopped by SIGTERM or SIGINT while it appends lines as fast as
it can, and every line left in the file parses whole (each line is one append write)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gendiag.live import JOURNAL, kills_held

WRITER = """
import sys
import threading
import time
from pathlib import Path
from gendiag.findings import Finding
from gendiag.live import LiveChecks

live = LiveChecks(Path(sys.argv[1]), sinks=[], announce=lambda line: None, every=1, seconds=0)
findings = [Finding(code=f"code-{i}", severity="critical", title=f"finding {i}", message="why " * 400, probe="p")
            for i in range(20)]
threading.Thread(target=lambda: time.sleep(3600), daemon=True).start()  # a second thread, as training has
step = 0
while True:  # every finding appears, then clears: 20 lines per check
    step += 1
    live.record(step, findings if step % 2 else [])
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_kill_mid_write_leaves_every_line_whole(tmp_path: Path, signum: int) -> None:
    journal = tmp_path / JOURNAL
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "OMP_NUM_THREADS": "1"}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while (not journal.exists() or journal.stat().st_size < 2_000_000) and time.monotonic() < deadline:
            time.sleep(0.05)
        writer.send_signal(signum)
        writer.wait(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode != 0  # it was stopped, not finished
    lines = journal.read_bytes().split(b"\n")
    assert lines[-1] == b""  # the file ends with a whole line
    entries = [json.loads(line) for line in lines[:-1]]
    assert len(entries) > 200
    assert {entry["event"] for entry in entries} == {"appeared", "returned", "cleared"}
    assert all(entry["message"] == "why " * 400 for entry in entries)


def test_a_signal_inside_a_write_takes_effect_after_it_with_the_handler_put_back() -> None:
    before = signal.getsignal(signal.SIGINT)
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt):
        with kills_held():
            signal.raise_signal(signal.SIGINT)
            reached_the_end = True
    assert reached_the_end
    assert signal.getsignal(signal.SIGINT) is before
