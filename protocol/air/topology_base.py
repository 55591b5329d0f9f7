"""What every topology module shares: the node roles and :class:`TopologyError`.

A leaf module (no project imports), so the record, its file format, the layouts and the
path-loss model can all raise the same error without importing one another.
"""

from __future__ import annotations

ROLES = ("compute", "relay")
"""Node roles: ``"compute"`` nodes run a device process, ``"relay"`` nodes only forward."""


class TopologyError(ValueError):
    """A topology that cannot be used: malformed, inconsistent or not connected."""
