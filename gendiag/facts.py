"""The facts a user can give the Monitor (`Monitor(..., schedule=abar, image_shape=(1, 28, 28))`): one registry of
their names, what each means, which probes read it, and the rule it must follow.

`check_facts` runs when the Monitor is built, so a misspelt or malformed fact stops the run at once with one line
naming it, instead of switching a probe off after training. Probes can then read `ctx.facts` without checking.
A fact given as None counts as not given.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch

Check = Callable[[Any, Mapping[str, Any]], "str | None"]


@dataclass(frozen=True)
class Fact:
    """A known fact: what it is (for the docs and the errors), the probes that read it, and its rule: `check(value,
    facts)` returns what is wrong in one line, or None."""

    meaning: str
    probes: tuple[str, ...]
    check: Check


def _shape(value: Any) -> str:
    return f"shape {tuple(value.shape)}" if hasattr(value, "shape") else type(value).__name__


def _array(value: Any) -> np.ndarray | None:
    """`value` as float64 numbers, or None where it holds none (a string, a function, ragged lists)."""
    if isinstance(value, (str, bytes)) or callable(value):
        return None
    try:
        if isinstance(value, torch.Tensor):
            return value.detach().to("cpu", torch.float64).numpy()
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _accepts(function: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """Whether `function` can be called with these arguments (True where Python cannot tell, as for builtins)."""
    try:
        inspect.signature(function).bind(*args, **kwargs)
    except TypeError:
        return False
    except ValueError:
        return True
    return True


def _schedule(value: Any, facts: Mapping[str, Any]) -> str | None:
    from gendiag.quantities.schedule import summarize_schedule

    try:
        summarize_schedule(value)
    except ValueError as error:
        return f"fact 'schedule' (ᾱ_t, alphas_cumprod): {str(error).removeprefix('schedule: ')}"
    return None


def _image_shape(value: Any, facts: Mapping[str, Any]) -> str | None:
    shape = tuple(value) if isinstance(value, (tuple, list, torch.Size)) else None
    if (shape is None or len(shape) not in (2, 3)
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in shape)):
        return f"fact 'image_shape' must be (C, H, W) or (H, W) of positive integers, got {value!r}"
    return None


def _likelihood(value: Any, facts: Mapping[str, Any]) -> str | None:
    if not isinstance(value, str):
        return f"fact 'likelihood' must be a string such as 'bernoulli' or 'gaussian', got {type(value).__name__}"
    return None


def _entropy(value: Any, facts: Mapping[str, Any]) -> str | None:
    values = _array(value)
    if values is None or values.ndim > 1 or values.size < 1 or not np.isfinite(values).all() or (values < 0).any():
        return (f"fact 'entropy' must be the data's entropy in nats per position, one number >= 0 or one per "
                f"position (P,), got {_shape(values if values is not None else value)}")
    return None


def _modes(value: Any, facts: Mapping[str, Any]) -> str | None:
    centers = _array(value)
    if centers is None or centers.ndim != 2 or len(centers) < 1 or not np.isfinite(centers).all():
        return (f"fact 'modes' must be the mode centers, finite numbers of shape (K, D), got "
                f"{_shape(centers if centers is not None else value)}")
    if facts.get("mode_std") is None:
        return "modes were given without mode_std (fact 'mode_std': one positive std, or one per mode)"
    return None


def _mode_std(value: Any, facts: Mapping[str, Any]) -> str | None:
    if facts.get("modes") is None:
        return "fact 'mode_std' was given without 'modes' (the (K, D) mode centers it belongs to)"
    stds, centers = _array(value), _array(facts["modes"])
    count = len(centers) if centers is not None and centers.ndim == 2 else None
    if (stds is None or stds.shape not in ((), (count,)) or not np.isfinite(stds).all()
            or not (stds > 0).all()):
        return f"fact 'mode_std' must be one positive number or one per mode ({count},), got {value!r}"
    return None


def _classifier(value: Any, facts: Mapping[str, Any]) -> str | None:
    if not callable(value):
        return f"fact 'classifier' must be callable(images) -> labels or logits, got {type(value).__name__}"
    n_classes = facts.get("n_classes")
    if n_classes is None and getattr(value, "n_classes", None) is None:
        return ("fact 'classifier' needs n_classes (an int >= 2) as the fact 'n_classes' or as the classifier's "
                "attribute, got neither")
    if n_classes is None:
        return _count(value.n_classes, "the classifier's attribute n_classes")
    return None


def _n_classes(value: Any, facts: Mapping[str, Any]) -> str | None:
    if facts.get("classifier") is None:
        return "fact 'n_classes' was given without 'classifier' (the callable whose labels it counts)"
    return _count(value, "fact 'n_classes'")


def _count(value: Any, what: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
        return f"{what} must be an int >= 2, got {value!r}"
    return None


def _reference(value: Any, facts: Mapping[str, Any]) -> str | None:
    if not isinstance(value, torch.Tensor) or value.dim() < 2 or len(value) < 2:
        return (f"fact 'reference' must be a tensor of held-out real samples (N, ...) with N >= 2, got "
                f"{_shape(value)}")
    return None


def _source(value: Any, facts: Mapping[str, Any]) -> str | None:
    if callable(value):
        return None if _accepts(value, 2) else "fact 'source' must be callable(n) -> a batch of n samples, got a " \
                                                  "callable that cannot take n"
    rows = _array(value)
    if rows is None or rows.ndim < 2 or len(rows) < 2:
        return f"fact 'source' must be callable(n) -> a batch, or a batch (N, ...) with N >= 2, got {_shape(value)}"
    return None


def _sampler(value: Any, facts: Mapping[str, Any]) -> str | None:
    if not callable(value) or not _accepts(value, None, None, 1):
        return ("fact 'sampler' must be callable(velocity_fn, x0, steps) -> x1, got "
                + (type(value).__name__ if not callable(value) else "a callable without three arguments"))
    return None


def _path(value: Any, facts: Mapping[str, Any]) -> str | None:
    methods = ("alpha", "beta", "d_alpha", "d_beta")
    if isinstance(value, str) or all(callable(getattr(value, m, None)) for m in methods):
        return None
    return (f"fact 'path' must be a path's name such as 'linear' or 'sqrt', or an object with {', '.join(methods)} "
            f"(t) -> tensor, got {type(value).__name__}")


def _guidance(value: Any, facts: Mapping[str, Any]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
        return f"fact 'guidance' must be the classifier-free guidance scale, a number > 0, got {value!r}"
    return None


def _null_cond(value: Any, facts: Mapping[str, Any]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        return (f"fact 'null_cond' must be the integer label that stands for no condition (e.g. the extra class K), "
                f"got {value!r}")
    return None


FACTS: dict[str, Fact] = {
    "schedule": Fact("a diffusion model's ᾱ_t (alphas_cumprod), one number per timestep, non-increasing in [0, 1]",
                     ("schedule", "loss_by_t", "forward_process", "diffusion_sampler"), _schedule),
    "image_shape": Fact("(C, H, W) or (H, W): how one flattened sample reads as an image", ("data_repr",),
                        _image_shape),
    "likelihood": Fact("the model's likelihood, a string; 'bernoulli' says binary pixels are expected",
                       ("data_repr",), _likelihood),
    "entropy": Fact("the data's entropy in nats per position (an autoregressive model's floor): one number, or one "
                    "per position (P,)", ("autoregressive",), _entropy),
    "modes": Fact("the centers of the data's modes, (K, D); needs mode_std", ("mode-collapse",), _modes),
    "mode_std": Fact("the modes' standard deviation: one positive number, or one per mode (K,); needs modes",
                     ("mode-collapse",), _mode_std),
    "classifier": Fact("callable(images) -> labels (B,) or logits (B, n_classes); needs n_classes (fact or attribute)",
                       ("mode-collapse",), _classifier),
    "n_classes": Fact("the classifier's number of classes, an int >= 2; needs classifier", ("mode-collapse",),
                      _n_classes),
    "reference": Fact("held-out real samples, a tensor (N, ...) with N >= 2", ("memorization",), _reference),
    "source": Fact("callable(n) (optionally with generator=) -> n samples of the distribution sampling starts from, or "
                   "a batch of them", ("sampler", "data_repr", "velocity"),
                   _source),
    "sampler": Fact("callable(velocity_fn, x0, steps) -> x1: the user's own sampler", ("sampler",), _sampler),
    "guidance": Fact("the classifier-free guidance scale the sampler uses (a number > 0): sampling is guided",
                     ("inputs", "conditioning"), _guidance),
    "null_cond": Fact("the integer label that stands for no condition in guided sampling and label dropout",
                      ("conditioning",), _null_cond),
    "path": Fact("a flow's probability path x_t = α_t·x1 + β_t·x0: 'linear' (the default), 'sqrt', or an object with "
                 "alpha, beta, d_alpha, d_beta (as reference_models.paths.AffinePath)", ("velocity",), _path),
}


def check_facts(facts: Mapping[str, Any], keywords: tuple[str, ...] = ()) -> None:
    """Raise ValueError, in one line, at the first unknown or malformed fact. `keywords` are the caller's own
    argument names, offered as corrections too (a misspelt `strict=` lands among the facts)."""
    for name in facts:
        if name not in FACTS:
            close = difflib.get_close_matches(name, [*FACTS, *keywords], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            raise ValueError(f"Monitor: unknown fact {name!r}{hint} Known facts: {', '.join(FACTS)}")
    for name, value in facts.items():
        if value is not None and (problem := FACTS[name].check(value, facts)) is not None:
            raise ValueError(f"Monitor: {problem}")
