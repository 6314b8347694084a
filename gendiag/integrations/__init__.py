"""Integrations with the libraries people train with: one module per library, each imported on its own (`import
gendiag.integrations.lightning`), each needing its library, installed with the extra of the same name
(`pip install 'gendiag[lightning]'`). `import gendiag` imports none of them."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, integration: str, extra: str) -> ModuleType:
    """Import `module` for `integration`, or raise one ImportError line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"gendiag.integrations.{integration} needs {module.split('.')[0]!r}, which cannot be "
                          f"imported ({error}); install it with: pip install 'gendiag[{extra}]'") from None
