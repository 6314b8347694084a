"""`import gendiag` loads none of the heavy libraries (issue 22): a training script pays for matplotlib, scipy,
pandas, scikit-learn, POT and TensorBoard only when a probe, a figure or a report uses them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = "('matplotlib','scipy','pandas','sklearn','ot','tensorboard')"


def _fresh(code: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_import_gendiag_loads_no_heavy_library() -> None:
    loaded = _fresh(f"import gendiag, sys; print(sorted(m for m in {HEAVY} if m in sys.modules))")
    assert loaded == "[]"


LOAD_CASE = "import sys; from gendiag.config import load_case; load_case('cases/gan_ring.yaml'); "


def test_loading_a_case_imports_no_training_loop() -> None:
    """The case schema validates a recipe's sections without the loops that run them."""
    loops = ("gendiag.recipes.gan", "gendiag.recipes.vae", "gendiag.recipes.flow_points", "gendiag.recipes.ddpm_points",
             "gendiag.recipes.ddpm_images", "gendiag.recipes.gmm", "gendiag.recipes.pixelcnn")
    assert _fresh(LOAD_CASE + f"print(sorted(m for m in {loops!r} if m in sys.modules))") == "[]"


@pytest.mark.slow
def test_loading_a_case_imports_no_runner() -> None:
    """No import circle config -> recipes -> runner -> config: validating a case never reaches the runner."""
    assert _fresh(LOAD_CASE + "print('gendiag.runner' in sys.modules)") == "False"


@pytest.mark.slow
def test_the_readme_loop_and_its_report_load_neither_pot_nor_scipy_stats(tmp_path: Path) -> None:
    """The README's own loop, trained and reported (its live checks and `finish`), in a fresh process: its W2
    comparisons (at most 1,000 points) use SciPy's assignment solver and its statistics gendiag.metrics.statistics,
    so the report costs no POT import (1-4 s measured on 2 cores, scikit-learn and scipy.stats with it)."""
    import re

    block = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.DOTALL).group(1)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    code = block + "\nimport sys\nprint(sorted(m for m in ('ot', 'scipy.stats', 'sklearn') if m in sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
