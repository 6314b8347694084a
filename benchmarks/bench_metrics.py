"""Sample metrics against their reference implementations: agreement, time and peak memory.

- Precision, recall, density, coverage (k = 5) against the `prdc` package (`pip install prdc==0.2`), on the same
  float32 features, N real = N fake up to 20,000. The reference holds N x N matrices; ours runs in blocks.
- Fréchet distance against pytorch-fid's `calculate_frechet_distance` (`pip install --no-deps pytorch-fid==0.3.0`:
  its torchvision dependency cannot be imported beside the CPU torch, so the function is compiled from the
  package's source file; see `_reference_fid`).

Neither reference is a dependency of gendiag; without one, its rows say "reference not installed".
Timings are taken side by side in this process (ours, reference, ours, ...); the ratio is reference / ours (above 1:
ours is faster). Peak memory is tracemalloc's peak of numpy allocations during one call."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import statistics
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy import linalg

from gendiag.metrics import frechet_distance, prdc

AGREEMENT = 1e-6
FEATURE_DIM = 64
LARGE_N = 10_000  # from here on the N x N matrix dominates, and the memory goal applies
FULL = {"prdc_sizes": (2000, 5000, 20000), "fid_dims": (64, 512, 2048), "repeats": 3, "repeats_largest": 1}
QUICK = {"prdc_sizes": (1000, 3000), "fid_dims": (64, 256), "repeats": 3, "repeats_largest": 3}


def _reference_fid() -> tuple[Callable[..., float] | None, str]:
    """pytorch-fid's own `calculate_frechet_distance`, compiled from the installed package's source file.

    `pytorch_fid.fid_score` imports torchvision at the top, which cannot be imported beside the CPU build of torch,
    so the benchmark reads that one function out of the file (`pip install --no-deps pytorch-fid==0.3.0`) and runs
    it with the numpy and scipy.linalg it was written against: the reference's code, not a copy of it."""
    spec = importlib.util.find_spec("pytorch_fid")
    if spec is None or not spec.submodule_search_locations:
        return None, "reference not installed (pip install --no-deps pytorch-fid==0.3.0)"
    source_file = Path(spec.submodule_search_locations[0]) / "fid_score.py"
    tree = ast.parse(source_file.read_text(), filename=str(source_file))
    function = next(node for node in tree.body
                    if isinstance(node, ast.FunctionDef) and node.name == "calculate_frechet_distance")
    namespace: dict[str, Any] = {"np": np, "linalg": linalg}
    exec(compile(ast.Module(body=[function], type_ignores=[]), str(source_file), "exec"), namespace)
    return namespace["calculate_frechet_distance"], f"calculate_frechet_distance from {source_file}"


def _timed(function: Callable[[], Any], memory: bool = False) -> tuple[Any, float, float]:
    """Result, seconds and (with `memory`) tracemalloc's peak in MB."""
    if memory:
        tracemalloc.start()
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    peak = 0.0
    if memory:
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    return result, seconds, peak


def _relative(ours: float, reference: float) -> float:
    return abs(ours - reference) / abs(reference) if reference != 0 else abs(ours - reference)


def _row(figure: str, median: float, spread: str, unit: str, goal: str, met: bool | None, note: str) -> dict:
    return {"benchmark": "metrics", "figure": figure, "median": median, "spread": spread, "unit": unit,
            "goal": goal, "met": met, "note": note}


def _prdc_rows(sizes: tuple[int, ...], repeats: int, repeats_largest: int) -> list[dict]:
    try:
        from prdc import compute_prdc
    except ImportError:
        return [_row("prdc vs `prdc` package", float("nan"), "–", "–", f"agree to {AGREEMENT:g}", None,
                     "reference not installed (pip install prdc==0.2)")]
    rows = []
    rng = np.random.default_rng(0)
    for n in sizes:
        real = rng.normal(size=(n, FEATURE_DIM)).astype(np.float32)
        fake = (rng.normal(size=(n, FEATURE_DIM)) * 1.1 + 0.1).astype(np.float32)
        ratios, ours_peaks, reference_peaks, differences = [], [], [], []
        for _ in range(repeats_largest if n == max(sizes) else repeats):
            ours, ours_seconds, ours_peak = _timed(lambda: prdc(real, fake, k=5), memory=True)
            with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the sample counts
                reference, reference_seconds, reference_peak = _timed(lambda: compute_prdc(real, fake, 5),
                                                                      memory=True)
            ratios.append(reference_seconds / ours_seconds)
            ours_peaks.append(ours_peak)
            reference_peaks.append(reference_peak)
            differences.append(max(_relative(v, float(reference[k])) for k, v in ours.as_dict().items()))
        spread = f"{min(ratios):.2f}–{max(ratios):.2f} (min–max of {len(ratios)})"
        matrix_mb = n * n * 4 / 1e6
        large = n >= LARGE_N
        rows += [
            _row(f"prdc agreement with `prdc`, N = {n:,}", max(differences), "max over runs", "relative",
                 f"≤ {AGREEMENT:g}", max(differences) <= AGREEMENT, "largest relative difference of P, R, D, C"),
            _row(f"prdc speed-up over `prdc`, N = {n:,}", statistics.median(ratios), spread, "× (ref / ours)",
                 "> 1" if n == max(sizes) else "–", statistics.median(ratios) > 1 if n == max(sizes) else None,
                 f"ours {ours_seconds:.2f} s, reference {reference_seconds:.2f} s (last run); D = {FEATURE_DIM}"),
            _row(f"prdc peak memory, N = {n:,}", statistics.median(ours_peaks), "–", "MB",
                 f"< N×N float32 / 10 = {matrix_mb / 10:.0f} MB" if large else "–",
                 statistics.median(ours_peaks) < matrix_mb / 10 if large else None,
                 f"reference peak {statistics.median(reference_peaks):.0f} MB"),
        ]
    return rows


def _fid_rows(dims: tuple[int, ...], repeats: int, repeats_largest: int) -> list[dict]:
    reference_fid, source = _reference_fid()
    if reference_fid is None:
        return [_row("Fréchet distance vs pytorch-fid", float("nan"), "–", "–", f"agree to {AGREEMENT:g}", None, source)]
    rows = []
    rng = np.random.default_rng(1)
    for dim in dims:
        n = max(2 * dim, 2000)
        mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
        a = rng.normal(size=(n, dim)) @ mixing
        b = (rng.normal(size=(n, dim)) * 1.2 + 0.05) @ mixing
        mu1, sigma1 = a.mean(0), np.cov(a, rowvar=False)
        mu2, sigma2 = b.mean(0), np.cov(b, rowvar=False)
        ratios, differences = [], []
        for _ in range(repeats_largest if dim == max(dims) else repeats):
            ours, ours_seconds, _ = _timed(lambda: frechet_distance(mu1, sigma1, mu2, sigma2))
            # it prints a note when the product is singular, and scipy >= 1.16 warns about its `disp=False`
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                reference, reference_seconds, _ = _timed(lambda: reference_fid(mu1, sigma1, mu2, sigma2))
            ratios.append(reference_seconds / ours_seconds)
            differences.append(_relative(ours, float(reference)))
        rows += [
            _row(f"Fréchet distance agreement with pytorch-fid, D = {dim}", max(differences), "max over runs",
                 "relative", f"≤ {AGREEMENT:g}", max(differences) <= AGREEMENT, f"{source}; FD = {ours:.6g}"),
            _row(f"Fréchet distance speed-up over pytorch-fid, D = {dim}", statistics.median(ratios),
                 f"{min(ratios):.2f}–{max(ratios):.2f} (min–max of {len(ratios)})", "× (ref / ours)", "–", None,
                 f"ours {ours_seconds * 1e3:.1f} ms, reference {reference_seconds * 1e3:.1f} ms (last run)"),
        ]
    return rows


def run(quick: bool = False) -> list[dict]:
    sizes = QUICK if quick else FULL
    return (_prdc_rows(sizes["prdc_sizes"], sizes["repeats"], sizes["repeats_largest"])
            + _fid_rows(sizes["fid_dims"], sizes["repeats"], sizes["repeats_largest"]))
