"""Training checkpoints: written atomically, read back with `torch.load(weights_only=True)` so that a file holding
anything but tensors, numbers, strings and plain containers is refused."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from gendiag.io import atomic_write_bytes

CHECKPOINT = "checkpoints/last.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Serialize to memory, then write with a temporary file and a rename: a crash never leaves half a file."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; a clear error for a missing, corrupt or unsafe file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint (runs write one every run.checkpoint_every steps)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        reason = str(error).strip().splitlines()[-1][:200] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: refused: corrupt, or holds objects other than tensors and plain values "
                         f"({reason})") from error
    if not isinstance(state, dict) or "step" not in state:
        raise ValueError(f"{path}: not a gendiag checkpoint (expected a dict with a 'step')")
    return state
