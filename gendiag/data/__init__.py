"""Data for cases and probes: 2D toy samplers, the point-cloud rasterizer, and offline image datasets."""

from gendiag.data.images import load_digits, load_mnist
from gendiag.data.raster import Raster, rasterize
from gendiag.data.toy import DISTRIBUTIONS, Distribution, make_distribution

__all__ = ["DISTRIBUTIONS", "Distribution", "Raster", "load_digits", "load_mnist", "make_distribution", "rasterize"]
