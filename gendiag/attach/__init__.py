"""`gendiag attach -- python train.py [args]`: diagnosis of an unchanged script, through global hooks only.

- `hooks`: the global forward, optimizer-step, backward and DataLoader hooks, installed and undone together;
- `convention`: which argument of a network call is x and which is t;
- `graph`: per-sample losses and targets from a loss's autograd graph;
- `infer`: the task from what the hooks saw;
- `session`: the listener that builds and feeds a `Monitor`; `records` what it keeps between events;
- `schedule`: which rounds are recorded, so that gendiag's share of the script's time stays small;
- `summary`: the report's section on what was inferred;
- `runner`: runs the script in this process, as `__main__`, and writes the report at its end;
- `facts_file`: `--facts FILE.yaml`."""

from gendiag.attach.runner import Attached, run_attached

__all__ = ["Attached", "run_attached"]
