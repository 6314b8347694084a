"""The findings of every shipped case, recorded and compared: a check that a change meant to preserve behaviour
(issue 22's redesign) leaves every case's diagnosis as it was.

`python -m benchmarks.case_findings record` runs every case in cases/ through the CLI at the sizes below (the
flattened cases at their default profile, the others shortened so the whole set takes minutes on one core, with
one torch thread so that runs are repeatable) and writes each case's findings (code and severity) to
benchmarks/results/case_findings.json. `python -m benchmarks.case_findings check` runs them again and lists every
case whose findings differ from the recorded ones; it exits 1 if any does. `--only NAME,NAME` limits either to
some cases."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "cases"
RECORD = Path(__file__).resolve().parent / "results" / "case_findings.json"
SIZES = {  # recipe -> overrides; a recipe not listed runs at its default profile
    "flow_matching": ["training.steps=300"],
    "ddpm_points": ["training.steps=600"],
    "ddpm_images": ["training.steps=200", "sampling.n_samples=200"],
    "pixelcnn": ["training.steps=100", "sampling.n_samples=200"],
    "gan": ["training.steps=400"],
    "vae": ["training.epochs=1"],
}


def case_findings(case: Path) -> list[list[str]]:
    """Run one case in a subprocess and return its findings as sorted [code, severity] pairs."""
    recipe = str(yaml.safe_load(case.read_text())["recipe"])
    overrides = [arg for value in SIZES.get(recipe, []) for arg in ("--set", value)]
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "gendiag", "run", str(case), "--out", out, "--threads", "1", *overrides]
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{case.name}: gendiag run exited {result.returncode}: {result.stderr.strip()[-500:]}")
        found = list(Path(out).rglob("findings.json"))
        if len(found) != 1:
            raise RuntimeError(f"{case.name}: expected one findings.json under {out}, found {len(found)}")
        findings = json.loads(found[0].read_text())["findings"]
    return sorted([f["code"], f["severity"]] for f in findings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.case_findings", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("record", "check"))
    parser.add_argument("--only", default="", help="comma-separated case names (default: every case)")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or sorted(p.stem for p in CASES.glob("*.yaml"))
    recorded = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    differ = []
    for number, name in enumerate(names, 1):
        findings = case_findings(CASES / f"{name}.yaml")
        print(f"[{number}/{len(names)}] {name}: {', '.join(f'{c} ({s})' for c, s in findings) or 'none'}", flush=True)
        if args.action == "record":
            recorded[name] = findings
        elif recorded.get(name) != findings:
            differ.append(name)
            print(f"  differs from the record: {recorded.get(name)}", flush=True)
    if args.action == "record":
        RECORD.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        print(f"wrote {RECORD.relative_to(ROOT)}")
        return 0
    print(f"{len(names) - len(differ)} of {len(names)} cases as recorded" + (f"; differ: {', '.join(differ)}" if differ else ""))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
