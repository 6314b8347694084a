"""One torch thread per pytest-xdist worker: the default command runs one worker per core (`-n auto`), and torch's
own default (a thread per core in every worker) would put cores² threads on the cores. An OMP_NUM_THREADS the caller
set is kept. Set here, before any test module imports torch."""

import os

if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
