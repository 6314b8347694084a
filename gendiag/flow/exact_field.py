"""The exact marginal velocity field of an empirical data set for the linear path x_t = t·x1 + (1 − t)·x0, x0 ~ N(0, I).

Given data points x1_1 … x1_M, the marginal field is the posterior mean of the conditional velocity:

    u(x, t) = Σ_i w_i(x, t) · (x1_i − x) / (1 − t),   w = softmax_i( −|x − t·x1_i|² / (2 (1 − t)²) ).

It is what a perfectly trained flow-matching network on this data set would output, so it is the reference the
probes compare a learned field with. Computed in chunks of queries and of data points with a streaming
log-sum-exp (an online softmax), so memory stays bounded by chunk sizes, never by Q × M. The field is singular at
t = 1; times above 1 − `eps` are clipped to 1 − `eps` with a warning.
"""

from __future__ import annotations

import warnings

import torch

T_EPS = 1e-3


def exact_velocity(x: torch.Tensor, t: float | torch.Tensor, data: torch.Tensor, chunk: int = 1024,
                   data_chunk: int = 4096, dtype: torch.dtype | None = None, eps: float = T_EPS) -> torch.Tensor:
    """u(x, t) of the empirical data set `data` (M, D) at queries `x` (Q, D), times `t` (a float or shape (Q,)).

    Args:
        chunk: query rows per block; data_chunk: data rows per block. Working memory is about
            2·chunk·data_chunk + 2·chunk·D numbers (plus a cast copy of one data block when `dtype` differs
            from the data's), whatever Q and M are; the (Q, D) result comes on top.
        dtype: compute and result dtype (torch.float64 for accuracy near t = 1); default: x's and data's
            promoted floating dtype.
        eps: times are clipped to [0, 1 − eps] (the field is singular at t = 1); a clip issues a UserWarning.
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
           dtype: torch.dtype) -> torch.Tensor:
    """The field for one block of queries, streaming over data blocks with an online softmax.

    The logit −|x − t·x1|²/(2(1 − t)²) drops |x|², which is the same for every data point of a query, leaving
    (t·x·x1 − t²|x1|²/2)/(1 − t)²: no cancellation against a large constant. One (queries × data_chunk) buffer
    is reused in place for the logits and the weights."""
    scale = (t / (1 - t) ** 2)[:, None]
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
    return weighted.div_(weight_sum).sub_(x).div_((1 - t)[:, None])
