"""Integrations with the libraries people train with: one module per library, each imported on its own (`import
gendiag.integrations.lightning`), each needing its library, installed with the extra of the same name
(`pip install 'gendiag[lightning]'`). `import gendiag` imports none of them."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Callable


def require(module: str, integration: str, extra: str) -> ModuleType:
    """Import `module` for `integration`, or raise one ImportError line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"gendiag.integrations.{integration} needs {module.split('.')[0]!r}, which cannot be "
                          f"imported ({error}); install it with: pip install 'gendiag[{extra}]'") from None


def wrap_method(owner: Any, name: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Callable[[], None]:
    """Put `wrap(owner.name)` in place of the method `name` on this one object (its class is untouched), and return
    the function that gives the object its own method back; calling that again does nothing."""
    own = name in vars(owner)
    original = getattr(owner, name)
    setattr(owner, name, wrap(original))
    done = False

    def restore() -> None:
        nonlocal done
        if done:
            return
        done = True
        if own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)

    return restore


def x_and_t(x_name: str, t_name: str) -> Callable[[tuple, dict], tuple[Any, Any]]:
    """The `inputs` reader (for `Monitor.watch`) of a network called as `net(x, t, ...)`, each of the two positional
    or by its keyword (`x_name`, `t_name`)."""

    def inputs(args: tuple, kwargs: dict) -> tuple[Any, Any]:
        return (args[0] if args else kwargs.get(x_name), args[1] if len(args) > 1 else kwargs.get(t_name))

    return inputs
