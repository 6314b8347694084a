"""gendiag: diagnose why a generative model will not train."""

__version__ = "0.1.0"
