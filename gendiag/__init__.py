"""gendiag: diagnose why a generative model will not train.

Attach a `Monitor` to your own training loop; at the end it names what went wrong, with the numbers and
figures that show it and what to change."""

from gendiag.findings import Finding
from gendiag.monitor import Monitor
from gendiag.report import Report

__version__ = "0.1.0"
__all__ = ["Finding", "Monitor", "Report", "__version__"]
