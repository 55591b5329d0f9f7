"""Where the nodes are and which links they have: the import point for the topology names.

A facade (no code of its own): the parts live in

* :mod:`protocol.air.topology_record` -- :class:`Topology` (structure, queries, wire form,
  generator classmethods, ``from_file``),
* :mod:`protocol.air.topology_layouts` -- the built-in layouts the generators use,
* :mod:`protocol.air.topology_file` -- the TOML/JSON file format,
* :mod:`protocol.air.path_loss` -- :class:`PathLoss`, link PRR from geometry,
* :mod:`protocol.air.topology_base` -- :data:`ROLES` and :class:`TopologyError`.
"""

from __future__ import annotations

from protocol.air.path_loss import PathLoss
from protocol.air.topology_base import ROLES, TopologyError
from protocol.air.topology_record import Topology

__all__ = ["ROLES", "PathLoss", "Topology", "TopologyError"]
