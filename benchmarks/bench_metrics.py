"""Sample metrics against their reference implementations: agreement, time and peak memory.

- Precision, recall, density, coverage (k = 5) against the `prdc` package (`pip install prdc==0.2`), on the same
  float32 features, N real = N fake up to 20,000. The reference holds N x N matrices; ours runs in blocks.
- Fréchet distance against pytorch-fid's `calculate_frechet_distance` (`pip install pytorch-fid==0.3.0`). Its
  module imports torchvision at the top, which the CPU torch build here cannot import; then the benchmark uses
  `_pytorch_fid_formula` below, a line-for-line copy of that function's arithmetic (scipy's sqrtm of S1 S2, the
  eps offset when singular, the real part), and the note says so.

Neither reference is a dependency of gendiag; without `prdc` its rows say "reference not installed".
Timings are taken side by side in this process (ours, reference, ours, ...); the ratio is reference / ours (above 1:
ours is faster). Peak memory is tracemalloc's peak of numpy allocations during one call."""

from __future__ import annotations

import contextlib
import io
import statistics
import time
import tracemalloc
from typing import Any, Callable

import numpy as np
from scipy import linalg

from gendiag.metrics import frechet_distance, prdc

AGREEMENT = 1e-6
FEATURE_DIM = 64
LARGE_N = 10_000  # from here on the N x N matrix dominates, and the memory goal applies
FULL = {"prdc_sizes": (2000, 5000, 20000), "fid_dims": (64, 512, 2048), "repeats": 3, "repeats_largest": 1}
QUICK = {"prdc_sizes": (1000, 3000), "fid_dims": (64, 256), "repeats": 3, "repeats_largest": 3}


def _pytorch_fid_formula(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                         eps: float = 1e-6) -> float:
    """pytorch-fid 0.3.0's calculate_frechet_distance, reproduced because its module needs torchvision."""
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _reference_fid() -> tuple[Callable[..., float], str]:
    try:
        from pytorch_fid.fid_score import calculate_frechet_distance
    except ImportError as error:  # torchvision missing (or pytorch-fid not installed)
        return _pytorch_fid_formula, f"pytorch-fid formula reproduced in the benchmark ({error})"
    return calculate_frechet_distance, "pytorch_fid.fid_score.calculate_frechet_distance"


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
