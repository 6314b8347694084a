"""The exact marginal velocity field of an empirical data set for the linear path x_t = t·x1 + (1 − t)·x0, x0 ~ N(0, I)
or x0 from an empirical source; any affine path x_t = α_t·x1 + β_t·x0 (`reference_models.paths`) on request.

Given data points x1_1 … x1_M, the marginal field is the posterior mean of the conditional velocity:

    u(x, t) = Σ_i w_i(x, t) · (x1_i − x) / (1 − t),   w = softmax_i( −|x − t·x1_i|² / (2 (1 − t)²) ).

A source that is not N(0, I) (eight Gaussians, say) is given by rows s_1 … s_K drawn from it and read as the mixture
(1/K) Σ_j N(s_j, σ² I) (σ: `source_bandwidth`). Given the pair (i, j), x_t ~ N(t·x1_i + (1 − t)·s_j, (1 − t)² σ² I)
and x1 − x0 = (x1_i − x)/(1 − t), so the field is the same average with weights over pairs:

    u(x, t) = Σ_ij w_ij · (x1_i − x) / (1 − t),   w = softmax_ij( −|x − t·x1_i − (1 − t)·s_j|² / (2 (1 − t)² σ²) ).

All M·K pairs are used while they number at most `max_pairs`; beyond that, each data point is paired with
max_pairs / M source rows drawn with a seeded generator (the same pairs at every call, so one field).

For an affine path the posterior weights use α_t and β_t in place of t and 1 − t, and the field is the conditional
velocity α̇·x1 + β̇·x0 averaged under them: with m = Σ w·x1 (the posterior mean of x1) and x0 = (x − α·x1)/β,

    u(x, t) = α̇·m + β̇·(x − α·m)/β.

The linear path (`path=None`) keeps the form (m − x)/(1 − t) above.

It is what a perfectly trained flow-matching network on this data set would output, so it is the reference the
probes compare a learned field with. Computed in chunks of queries and of data points with a streaming
log-sum-exp (an online softmax), so memory stays bounded by chunk sizes, never by Q × M. The field is singular at
t = 1; times above 1 − `eps` are clipped to 1 − `eps` with a warning.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

T_EPS = 1e-3
MAX_PAIRS = 2**13
PAIR_BLOCK = 2**22  # query rows × pairs per block of the empirical-source field
BANDWIDTH_STEPS = 16
BANDWIDTH_ROWS = 256


def exact_velocity(x: torch.Tensor, t: float | torch.Tensor, data: torch.Tensor, chunk: int = 1024,
                   data_chunk: int = 4096, dtype: torch.dtype | None = None, eps: float = T_EPS,
                   source: torch.Tensor | None = None, bandwidth: float | None = None,
                   max_pairs: int = MAX_PAIRS, seed: int = 0, path: Any = None) -> torch.Tensor:
    """u(x, t) of the empirical data set `data` (M, D) at queries `x` (Q, D), times `t` (a float or shape (Q,)).

    Args:
        chunk: query rows per block; data_chunk: data rows per block. Working memory is about
            2·chunk·data_chunk + 2·chunk·D numbers (plus a cast copy of one data block when `dtype` differs
            from the data's), whatever Q and M are; the (Q, D) result comes on top.
        dtype: compute and result dtype (torch.float64 for accuracy near t = 1); default: x's and data's
            promoted floating dtype.
        eps: times are clipped to [0, 1 − eps] (the field is singular at t = 1); a clip issues a UserWarning.
        source: rows (K, D) drawn from the source when it is not N(0, I); None: x0 ~ N(0, I).
        bandwidth: σ of the source mixture; default `source_bandwidth(source)`.
        max_pairs: most (data, source) pairs weighed (see the module docstring); with a source, working memory
            is about 6·min(chunk, 2**22 / pairs)·pairs numbers plus M·K for the data–source products.
        seed: seed of the draw of pairs when M·K exceeds `max_pairs`.
        path: an affine path with alpha(t), beta(t), d_alpha(t), d_beta(t) (as `reference_models.paths`); None
            for the linear path.
    Returns: (Q, D) velocities.
    """
    if x.dim() != 2 or data.dim() != 2:
        raise ValueError(f"exact_velocity: x and data must be 2-D (Q, D) and (M, D), got shapes {tuple(x.shape)} "
                         f"and {tuple(data.shape)}")
    if x.shape[1] != data.shape[1]:
        raise ValueError(f"exact_velocity: x has {x.shape[1]} features but data has {data.shape[1]}")
    if data.shape[0] == 0:
        raise ValueError("exact_velocity: data is empty; the field needs at least one data point")
    if chunk < 1 or data_chunk < 1:
        raise ValueError(f"exact_velocity: chunk and data_chunk must be >= 1, got {chunk} and {data_chunk}")
    if not 0 < eps < 1:
        raise ValueError(f"exact_velocity: eps must lie in (0, 1), got {eps}")
    if dtype is None:
        dtype = torch.promote_types(x.dtype, data.dtype)
        dtype = dtype if dtype.is_floating_point else torch.float32
    times = _times(t, x.shape[0], dtype, eps)
    if path is not None:
        return _affine(x.to(dtype), times, data, dtype, chunk, data_chunk, source, bandwidth, max_pairs, seed, path)
    if source is not None:
        return _from_source(x.to(dtype), times, data.to(device=x.device, dtype=dtype), source, bandwidth, chunk,
                            max_pairs, seed)
    norms = torch.cat([torch.linalg.vector_norm(data[i:i + data_chunk].to(dtype), dim=1) ** 2
                       for i in range(0, data.shape[0], data_chunk)])
    out = torch.empty(x.shape, dtype=dtype, device=x.device)
    for start in range(0, x.shape[0], chunk):
        stop = min(start + chunk, x.shape[0])
        out[start:stop] = _block(x[start:stop].to(dtype), times[start:stop], data, norms, data_chunk, dtype)
    return out


def _times(t: float | torch.Tensor, rows: int, dtype: torch.dtype, eps: float) -> torch.Tensor:
    """Times as a (rows,) tensor in [0, 1 − eps], warning when any were clipped at the top."""
    times = torch.as_tensor(t, dtype=dtype).reshape(-1)
    if times.numel() == 1:
        times = times.expand(rows)
    if times.numel() != rows:
        raise ValueError(f"exact_velocity: t must be a float or hold one time per query ({rows}), got {times.numel()}")
    if bool(((times < 0) | ~torch.isfinite(times)).any()):
        raise ValueError("exact_velocity: times must be finite and >= 0")
    clipped = int((times > 1 - eps).sum())
    if clipped:
        warnings.warn(f"exact_velocity: {clipped} time(s) above 1 - eps = {1 - eps} were clipped to it "
                      "(the marginal field is singular at t = 1)", UserWarning, stacklevel=3)
    return times.clamp(max=1 - eps)


def _block(x: torch.Tensor, t: torch.Tensor, data: torch.Tensor, norms: torch.Tensor, data_chunk: int,
           dtype: torch.dtype, rest: torch.Tensor | None = None) -> torch.Tensor:
    """The field for one block of queries, streaming over data blocks with an online softmax.

    The logit −|x − t·x1|²/(2(1 − t)²) drops |x|², which is the same for every data point of a query, leaving
    (t·x·x1 − t²|x1|²/2)/(1 − t)²: no cancellation against a large constant. One (queries × data_chunk) buffer
    is reused in place for the logits and the weights. Given `rest` (β_t), `t` is read as α_t and the block returns
    the posterior mean of x1 under x_t = α·x1 + β·x0 instead of the linear path's field."""
    beta = 1 - t if rest is None else rest
    scale = (t / beta ** 2)[:, None]
    half_t = 0.5 * t[:, None]
    running_max = torch.full((x.shape[0], 1), -torch.inf, dtype=dtype, device=x.device)
    weight_sum = torch.zeros((x.shape[0], 1), dtype=dtype, device=x.device)
    weighted = torch.zeros_like(x)
    for start in range(0, data.shape[0], data_chunk):
        points = data[start:start + data_chunk].to(device=x.device, dtype=dtype)
        logits = x @ points.T
        logits.addr_(half_t.squeeze(1), norms[start:start + data_chunk].to(x.device), alpha=-1).mul_(scale)
        block_max = torch.maximum(running_max, logits.amax(1, keepdim=True))
        rescale = torch.exp(running_max - block_max)
        weights = logits.sub_(block_max).exp_()
        weight_sum.mul_(rescale).add_(weights.sum(1, keepdim=True))
        weighted.mul_(rescale).addmm_(weights, points)
        running_max = block_max
    if rest is not None:
        return weighted.div_(weight_sum)
    return weighted.div_(weight_sum).sub_(x).div_((1 - t)[:, None])


def source_bandwidth(source: torch.Tensor) -> float:
    """σ of the mixture read from source rows (K, D), chosen by leave-one-out likelihood: the σ, among
    BANDWIDTH_STEPS values from 1e-3 to 1 times the rows' spread per dimension, under which each of at most
    BANDWIDTH_ROWS evenly spaced rows is most likely given all the others. Rows that are all one point get 1e-3 of
    their size."""
    rows = source.detach().double().reshape(source.shape[0], -1).cpu()
    count, dim = rows.shape
    spread = float((rows - rows.mean(0)).pow(2).sum(1).mean().sqrt()) / dim ** 0.5
    if count < 2 or spread == 0:
        return 1e-3 * max(float(rows.abs().max()), 1.0)
    held = torch.linspace(0, count - 1, min(count, BANDWIDTH_ROWS)).round().long()
    squared = torch.cdist(rows[held], rows).pow(2)
    squared[torch.arange(len(held)), held] = torch.inf
    candidates = spread * torch.logspace(-3, 0, BANDWIDTH_STEPS, dtype=torch.float64)
    scores = [float(torch.logsumexp(-squared / (2 * sigma ** 2), dim=1).mean()) - dim * float(sigma.log())
              for sigma in candidates]
    return float(candidates[max(range(len(scores)), key=scores.__getitem__)])


def source_pairs(data_rows: int, source_rows: int, max_pairs: int = MAX_PAIRS, seed: int = 0) -> torch.Tensor:
    """The source rows paired with each data row, a (data_rows, per) table of indices: all source rows while
    data_rows·source_rows <= max_pairs, else per = max(1, max_pairs // data_rows) rows drawn with replacement by a
    generator seeded with `seed`."""
    if data_rows * source_rows <= max_pairs:
        return torch.arange(source_rows).expand(data_rows, source_rows)
    per = max(1, max_pairs // data_rows)
    return torch.randint(source_rows, (data_rows, per), generator=torch.Generator().manual_seed(seed))


def _from_source(x: torch.Tensor, t: torch.Tensor, data: torch.Tensor, source: torch.Tensor, bandwidth: float | None,
                 chunk: int, max_pairs: int, seed: int, beta: torch.Tensor | None = None) -> torch.Tensor:
    """The field with x0 from the mixture of `source` rows: a softmax over (data, source) pairs per query.

    The logit −|x − t·x1_i − (1 − t)·s_j|²/(2(1 − t)²σ²) drops |x|² (the same for every pair of a query); the rest
    is a_i + b_j − t(1 − t)·x1_i·s_j with a_i = t·x·x1_i − t²|x1_i|²/2 and b_j = (1 − t)·x·s_j − (1 − t)²|s_j|²/2,
    so no (pairs × D) array is ever formed, and one (queries × pairs) buffer holds the logits, then the weights.
    Given `beta` (β_t), `t` is read as α_t and the posterior mean of x1 is returned instead of the linear field."""
    if source.dim() != 2 or source.shape[1] != data.shape[1] or source.shape[0] == 0:
        raise ValueError(f"exact_velocity: source must be (K >= 1, {data.shape[1]}) rows, got shape "
                         f"{tuple(source.shape)}")
    sigma = source_bandwidth(source) if bandwidth is None else float(bandwidth)
    if not sigma > 0:
        raise ValueError(f"exact_velocity: bandwidth must be > 0, got {bandwidth}")
    source = source.to(device=x.device, dtype=x.dtype)
    pairs = source_pairs(data.shape[0], source.shape[0], max_pairs, seed).to(x.device)
    rows, per = pairs.shape
    cross = (data @ source.T).gather(1, pairs)
    data_norms, source_norms = data.pow(2).sum(1), source.pow(2).sum(1)
    chunk = min(chunk, max(1, PAIR_BLOCK // pairs.numel()))
    out = torch.empty_like(x)
    for start in range(0, x.shape[0], chunk):
        queries, times = x[start:start + chunk], t[start:start + chunk, None]
        rest = 1 - times if beta is None else beta[start:start + chunk, None]
        to_data = times * (queries @ data.T) - 0.5 * times ** 2 * data_norms
        to_source = rest * (queries @ source.T) - 0.5 * rest ** 2 * source_norms
        logits = to_source[:, pairs.reshape(-1)].view(-1, rows, per)
        logits.add_(to_data[:, :, None]).sub_((times * rest)[:, :, None] * cross)
        logits.div_((rest ** 2 * sigma ** 2)[:, :, None])
        flat = logits.view(logits.shape[0], -1)
        flat.sub_(flat.amax(1, keepdim=True)).exp_()
        per_point = logits.sum(2)
        mean = per_point @ data / per_point.sum(1, keepdim=True)
        out[start:start + chunk] = mean if beta is not None else (mean - queries) / rest
    return out


def _affine(x: torch.Tensor, t: torch.Tensor, data: torch.Tensor, dtype: torch.dtype, chunk: int, data_chunk: int,
            source: torch.Tensor | None, bandwidth: float | None, max_pairs: int, seed: int, path: Any) -> torch.Tensor:
    """The field of an affine path: the posterior mean m of x1 under x_t = α·x1 + β·x0, then α̇·m + β̇·(x − α·m)/β."""
    alpha, beta = path.alpha(t), path.beta(t)
    if source is not None:
        mean = _from_source(x, alpha, data.to(device=x.device, dtype=dtype), source, bandwidth, chunk, max_pairs,
                            seed, beta=beta)
    else:
        norms = torch.cat([torch.linalg.vector_norm(data[i:i + data_chunk].to(dtype), dim=1) ** 2
                           for i in range(0, data.shape[0], data_chunk)])
        mean = torch.cat([_block(x[i:i + chunk], alpha[i:i + chunk], data, norms, data_chunk, dtype,
                                 rest=beta[i:i + chunk]) for i in range(0, x.shape[0], chunk)])
    column = (slice(None), None)
    return path.d_alpha(t)[column] * mean + path.d_beta(t)[column] * (x - alpha[column] * mean) / beta[column]
