"""Test-suite settings shared by every test module.

- One torch thread per pytest-xdist worker: the default command runs one worker per core (`-n auto`), and torch's
  own default (a thread per core in every worker) would put cores² threads on the cores. An OMP_NUM_THREADS the
  caller set is kept. Set here, before any test module imports torch.
- A test run over several seeds (`@pytest.mark.parametrize("seed", [0, 1, 2])`, a loop that must stay silent on
  every seed) runs its first seed in the default set and the others with the slow set, which CI runs too.
- A test that takes 2.5 s or more (`python -m pytest --durations=0`, two workers on 2 cores) is marked
  `@pytest.mark.slow`: training runs to the end, subprocesses (the CLI, torchrun, a browser), the README's examples.
  So the default set stays a few minutes long on a busy 2-core machine; the slow set keeps every check in CI."""

from __future__ import annotations

import os

import pytest

if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("seed", 0) not in (0, None):
            item.add_marker(pytest.mark.slow)
