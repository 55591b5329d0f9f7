"""Where the nodes are and which links they have: the static part of the emulated air.

A :class:`Topology` holds node positions (metres), roles (``"compute"`` nodes run a device
process, ``"relay"`` nodes only forward radio packets), the directed packet reception ratio
``prr[a, b]`` (probability that ``b`` receives a packet that ``a`` sends alone; 0 = no
link) and the initiator (the node that starts every round).

Devices are the compute nodes in node-index order: ``device_nodes[d]`` is the topology node
of device ``d`` (device 0 is the initiator in the default layouts).

The generator classmethods build on :mod:`protocol.air.topology_layouts`, :meth:`Topology.from_file`
on :mod:`protocol.air.topology_file`; link quality from geometry uses
:class:`~protocol.air.path_loss.PathLoss`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from protocol.air.path_loss import PathLoss
from protocol.air.topology_base import ROLES, TopologyError
from protocol.air.topology_file import read_topology_file, topology_fields
from protocol.air.topology_layouts import (default_testbed_layout, full_mesh_layout, grid_layout,
                                           line_layout, random_geometric_draws)


@dataclass(frozen=True, eq=False)
class Topology:
    """Nodes, roles, directed link PRRs and the initiator. Arrays are read-only copies.

    Construction checks the structure (shapes, roles, PRR range, diagonal); connectivity is
    checked by :meth:`validate` (the generators and :meth:`from_file` call it).
    """

    positions: np.ndarray  # float64 [n, 2], metres
    roles: tuple[str, ...]
    prr: np.ndarray  # float64 [n, n], prr[a, b]: b receives a's packet
    initiator: int = 0

    def __post_init__(self) -> None:
        pos = np.array(self.positions, dtype=np.float64)
        prr = np.array(self.prr, dtype=np.float64)
        roles = tuple(str(r) for r in self.roles)
        n = len(roles)
        if n < 1:
            raise TopologyError("a topology needs at least one node")
        if pos.shape != (n, 2):
            raise TopologyError(f"positions must have shape ({n}, 2), got {pos.shape}")
        if prr.shape != (n, n):
            raise TopologyError(f"prr must have shape ({n}, {n}), got {prr.shape}")
        if not np.all(np.isfinite(pos)):
            raise TopologyError("positions must be finite numbers")
        if not np.all(np.isfinite(prr)) or prr.min() < 0.0 or prr.max() > 1.0:
            raise TopologyError("every link PRR must lie in [0, 1]")
        if np.any(np.diag(prr) != 0.0):
            raise TopologyError("prr[i, i] must be 0 (a node has no link to itself)")
        bad = [r for r in roles if r not in ROLES]
        if bad:
            raise TopologyError(f"unknown role(s) {sorted(set(bad))}; use 'compute' or 'relay'")
        init = int(self.initiator)
        if not 0 <= init < n:
            raise TopologyError(f"initiator {init} is not a node (0..{n - 1})")
        if roles[init] != "compute":
            raise TopologyError(f"the initiator (node {init}) must be a compute node")
        pos.setflags(write=False)
        prr.setflags(write=False)
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "prr", prr)
        object.__setattr__(self, "roles", roles)
        object.__setattr__(self, "initiator", init)

    # ------------------------------------------------------------------ queries
    @property
    def n_nodes(self) -> int:
        return len(self.roles)

    @cached_property
    def device_nodes(self) -> np.ndarray:
        """int64 [n_devices]: topology node index of each device (compute nodes in order)."""
        out = np.array([i for i, r in enumerate(self.roles) if r == "compute"], dtype=np.int64)
        out.setflags(write=False)
        return out

    @property
    def n_devices(self) -> int:
        return int(self.device_nodes.shape[0])

    def neighbours(self, i: int) -> np.ndarray:
        """Nodes that hear ``i`` or that ``i`` hears (either direction has PRR > 0)."""
        self._check_node(i)
        return np.flatnonzero((self.prr[i] > 0) | (self.prr[:, i] > 0))

    @cached_property
    def in_csr(self) -> tuple[np.ndarray, np.ndarray]:
        """Incoming links as CSR: senders of node b are ``idx[ptr[b]:ptr[b + 1]]`` (int64)."""
        ptr = np.zeros(self.n_nodes + 1, dtype=np.int64)
        idx_parts = [np.flatnonzero(self.prr[:, b] > 0) for b in range(self.n_nodes)]
        ptr[1:] = np.cumsum([len(x) for x in idx_parts])
        idx = np.concatenate(idx_parts).astype(np.int64) if idx_parts else np.zeros(0, np.int64)
        ptr.setflags(write=False)
        idx.setflags(write=False)
        return ptr, idx

    def links(self) -> list[tuple[int, int, float]]:
        """Directed links ``(a, b, prr)`` with PRR > 0, sorted by ``(a, b)``."""
        a, b = np.nonzero(self.prr > 0)
        return [(int(x), int(y), float(self.prr[x, y])) for x, y in zip(a, b)]

    @cached_property
    def _hops(self) -> np.ndarray:
        n = self.n_nodes
        adj = [np.flatnonzero(self.prr[i] > 0) for i in range(n)]
        hops = np.full((n, n), -1, dtype=np.int64)
        for s in range(n):
            hops[s, s] = 0
            queue = deque([s])
            while queue:
                u = queue.popleft()
                for v in adj[u]:
                    if hops[s, v] < 0:
                        hops[s, v] = hops[s, u] + 1
                        queue.append(v)
        hops.setflags(write=False)
        return hops

    def hop_matrix(self) -> np.ndarray:
        """int64 [n, n]: hops from a to b over links with PRR > 0 (BFS), -1 if unreachable."""
        return self._hops

    def diameter(self) -> int:
        """Largest hop count between any two nodes; raises if the graph is disconnected."""
        self.validate()
        return int(self._hops.max())

    def unreachable(self) -> list[int]:
        """Nodes that cannot receive from the initiator or cannot reach it, sorted."""
        h = self._hops
        bad = (h[self.initiator] < 0) | (h[:, self.initiator] < 0)
        return [int(i) for i in np.flatnonzero(bad)]

    def validate(self) -> Topology:
        """Raise :class:`TopologyError` naming the unreachable nodes; return self if fine."""
        bad = self.unreachable()
        if bad:
            raise TopologyError(
                f"topology is not connected: node(s) {bad} cannot exchange packets with the "
                f"initiator (node {self.initiator}); add links or move them closer"
            )
        if not np.all(self._hops >= 0):
            pairs = np.argwhere(self._hops < 0)
            raise TopologyError(f"topology is not strongly connected, e.g. no path {tuple(pairs[0])}")
        return self

    def with_prr(self, prr: float) -> Topology:
        """Same nodes and links, every existing link set to ``prr``."""
        if not 0.0 < prr <= 1.0:
            raise TopologyError(f"prr must lie in (0, 1], got {prr}")
        return Topology(self.positions, self.roles, np.where(self.prr > 0, prr, 0.0), self.initiator)

    def _check_node(self, i: int) -> None:
        if not 0 <= int(i) < self.n_nodes:
            raise TopologyError(f"node {i} does not exist (0..{self.n_nodes - 1})")

    # ------------------------------------------------------------------ wire form
    def to_dict(self) -> dict[str, Any]:
        """Plain (msgpack-able) form: lists of floats/strings and ints."""
        return {
            "positions": self.positions.tolist(),
            "roles": list(self.roles),
            "prr": self.prr.tolist(),
            "initiator": int(self.initiator),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Topology:
        """Inverse of :meth:`to_dict` (structure checked, connectivity not)."""
        try:
            return cls(
                positions=np.asarray(data["positions"], dtype=np.float64).reshape(-1, 2),
                roles=tuple(data["roles"]),
                prr=np.asarray(data["prr"], dtype=np.float64),
                initiator=int(data.get("initiator", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, TopologyError):
                raise
            raise TopologyError(f"bad topology dict: {exc!r}") from exc

    # ------------------------------------------------------------------ generators
    @classmethod
    def line(cls, n: int, prr: float = 1.0, spacing_m: float = 10.0) -> Topology:
        """``n`` compute nodes on a line, links only between neighbours (hop i -> i+1)."""
        pos, roles, p = line_layout(n, prr, spacing_m)
        return cls(pos, roles, p, 0).validate()

    @classmethod
    def grid(cls, rows: int, cols: int, prr: float = 1.0, spacing_m: float = 10.0,
             diagonal: bool = False) -> Topology:
        """``rows x cols`` compute nodes (row-major), links to the 4 (or 8) nearest cells."""
        pos, roles, p = grid_layout(rows, cols, prr, spacing_m, diagonal)
        return cls(pos, roles, p, 0).validate()

    @classmethod
    def full_mesh(cls, n: int, prr: float = 1.0) -> Topology:
        """``n`` compute nodes, every directed link with PRR ``prr``, on a 1 m circle."""
        pos, roles, p = full_mesh_layout(n, prr)
        return cls(pos, roles, p, 0).validate()

    @classmethod
    def random_geometric(cls, n: int, seed: int, area_m: float = 60.0,
                         path_loss: PathLoss | None = None, n_relays: int = 0,
                         max_tries: int = 100) -> Topology:
        """``n`` nodes uniform in an ``area_m`` square, PRR from ``path_loss``.

        Default shadowing 4 dB (symmetric) + 1 dB (per direction). Positions are redrawn
        (up to ``max_tries`` times, deterministically from ``seed``) until connected. The last
        ``n_relays`` nodes are relays.
        """
        draw = random_geometric_draws(n, seed, area_m, path_loss, n_relays)
        last: Topology | None = None
        for _ in range(max_tries):
            pos, roles, p = draw()
            last = cls(pos, roles, p, 0)
            if not last.unreachable() and np.all(last._hops >= 0):
                return last
        assert last is not None
        last.validate()  # raises with the unreachable nodes named
        return last  # pragma: no cover

    @classmethod
    def default_testbed(cls, n_devices: int = 20, n_relays: int = 1,
                        prr: float | None = None) -> Topology:
        """The default office-floor layout: a grid of ``n_devices + n_relays`` nodes.

        Cells 10 m apart (plus a fixed sub-metre jitter), about 2.3 columns per row (21 nodes:
        3 rows x 7 columns). Link PRR comes from :class:`PathLoss` defaults without shadowing
        (deterministic): a node reaches the cells up to two columns away, so the 21-node
        layout is 3 hops across. Node 0 (a corner) is the initiator; relays sit at evenly
        spread cells and take the last node indices. ``prr`` set: every link gets that PRR
        instead of the path-loss value.
        """
        pos, roles, p = default_testbed_layout(n_devices, n_relays, prr)
        return cls(pos, roles, p, 0).validate()

    @classmethod
    def from_file(cls, path: str | Path) -> Topology:
        """Load a topology from TOML (``.toml``) or JSON (``.json``); see docs/radio.md.

        Format: ``initiator`` (node id, default the first compute node), ``[[nodes]]`` with
        ``id`` (0..n-1, each once), ``role`` and ``position = [x_m, y_m]``; then either
        ``[[links]]`` (``a``, ``b`` and ``prr`` for both directions, or ``prr_ab`` /
        ``prr_ba``) or a ``[path_loss]`` table (:class:`PathLoss` fields plus ``seed``).
        """
        p = Path(path)
        data = read_topology_file(p)
        try:
            positions, roles, prr, initiator = topology_fields(data)
            return Topology(positions, roles, prr, initiator).validate()
        except TopologyError as exc:
            raise TopologyError(f"{p}: {exc}") from exc
