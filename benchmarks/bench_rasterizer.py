"""Rasterizer: batched `binary` rendering against one image at a time with a Python loop over the batch, in the
failed project's convention, at B = 256 images of N = 50,000 points (moons x 5, so some points fall outside the
square and get clamped), size 64, scale 5.

Two per-image baselines, both with the original convention and identical output (checked every repetition):
numpy vectorized within each image (the fastest per-image renderer, and what the original's speed implies), and a
Python loop over each image's points with int(). Timings are interleaved (batched, numpy loop, point loop, ...);
each repetition gives one ratio per baseline; the median and the min-max spread are reported. The point loop,
~20 s a pass over all 256 images, is timed on the first 32 of them and its time scaled by 256 / 32 (it does the
same work for every image; its output is compared on those 32)."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from gendiag.data import make_distribution, rasterize

SIZE, SCALE = 64, 5.0
POINT_LOOP_IMAGES = 32


def per_image_numpy(points: torch.Tensor) -> np.ndarray:
    """One image at a time; within an image, numpy with astype(int) (truncation toward zero, as int())."""
    images = np.zeros((len(points), SIZE * SIZE), dtype=np.float32)
    for image, cloud in zip(images, points.numpy()):
        normalized = (cloud.astype(np.float64) + SCALE) / (2 * SCALE)
        index = np.clip((normalized * SIZE).astype(np.int64), 0, SIZE - 1)
        image[index[:, 1] * SIZE + index[:, 0]] = 1
    return images


def per_image_points(points: torch.Tensor) -> np.ndarray:
    """One image at a time, one point at a time, with Python's int()."""
    images = np.zeros((len(points), SIZE * SIZE), dtype=np.float32)
    for image, cloud in zip(images, points.double().tolist()):
        for x, y in cloud:
            column = min(max(int((x + SCALE) / (2 * SCALE) * SIZE), 0), SIZE - 1)
            row = min(max(int((y + SCALE) / (2 * SCALE) * SIZE), 0), SIZE - 1)
            image[row * SIZE + column] = 1
    return images


def _timed(render: Callable[[torch.Tensor], np.ndarray], points: torch.Tensor) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    images = render(points)
    return time.perf_counter() - start, images


def run(quick: bool = False) -> list[dict]:
    n_images, n_points, repetitions = (32, 10_000, 3) if quick else (256, 50_000, 5)
    points = make_distribution("moons", noise=0.05, scale=5.0).sample(
        n_images * n_points, generator=torch.Generator().manual_seed(0)).view(n_images, n_points, 2)
    subset = min(POINT_LOOP_IMAGES, n_images)
    baselines = {"numpy within each image": (per_image_numpy, n_images),
                 "Python int() per point": (per_image_points, subset)}
    ratios: dict[str, list[float]] = {name: [] for name in baselines}
    batched_seconds: list[float] = []
    for _ in range(repetitions):
        seconds, batched = _timed(lambda p: rasterize(p, SIZE, SCALE).images.numpy(), points)
        batched_seconds.append(seconds)
        for name, (render, images) in baselines.items():
            loop_seconds, looped = _timed(render, points[:images])
            if not np.array_equal(batched[:images], looped):
                raise AssertionError(f"bench_rasterizer: batched and per-image ({name}) images differ")
            ratios[name].append(loop_seconds * n_images / images / seconds)
    clamped = int(rasterize(points, SIZE, SCALE).clamped.sum())
    rows = []
    for name, values in ratios.items():
        median = statistics.median(values)
        timed = baselines[name][1]
        scaled = f"; loop timed on {timed} of {n_images} images, scaled" if timed < n_images else ""
        rows.append({
            "benchmark": "rasterizer", "figure": f"binary B={n_images} N={n_points}: speed-up vs per-image loop, {name}",
            "median": median, "spread": max(values) - min(values), "unit": "× faster", "goal": "≥ 20× (issue 3)",
            "met": median >= 20, "note": (f"{repetitions} interleaved repetitions, spread = max − min; identical "
                                          f"output; batched median {statistics.median(batched_seconds):.3f} s; "
                                          f"{clamped} points clamped; torch threads {torch.get_num_threads()}{scaled}"),
        })
    return rows


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
