"""Imports every probe module once, so that each registers itself in `gendiag.probes.PROBES`."""
