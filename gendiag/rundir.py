"""Run folders: ROOT/<case>/<timestamp>-<short id>/, created exclusively so nothing is ever overwritten."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path


def create_run_dir(root: str | Path, case_name: str) -> Path:
    """Make a new, empty run folder; two runs started at once get two folders."""
    if Path(case_name).name != case_name or case_name in ("", ".", ".."):
        raise ValueError(f"case name {case_name!r} must be a plain folder name (no path separators or '..')")
    parent = Path(root) / case_name
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        candidate = parent / f"{stamp}-{secrets.token_hex(3)}"
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"could not create a fresh run folder under {parent}")
