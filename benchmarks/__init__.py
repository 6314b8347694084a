"""Speed and quality benchmarks: `python -m benchmarks` (see __main__.py)."""
