"""Flow-matching references: the exact marginal velocity field of a data set and the plane to draw fields on."""

from gendiag.flow.exact_field import exact_velocity, source_bandwidth
from gendiag.flow.projection import Plane, principal_plane

__all__ = ["Plane", "exact_velocity", "principal_plane", "source_bandwidth"]
