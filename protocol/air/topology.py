"""Where the nodes are and which links they have: the static part of the emulated air.

A :class:`Topology` holds node positions (metres), roles (``"compute"`` nodes run a device
process, ``"relay"`` nodes only forward radio packets), the directed packet reception ratio
``prr[a, b]`` (probability that ``b`` receives a packet that ``a`` sends alone; 0 = no
link) and the initiator (the node that starts every round).

Devices are the compute nodes in node-index order: ``device_nodes[d]`` is the topology node
of device ``d`` (device 0 is the initiator in the default layouts).

Link quality from geometry (``random_geometric``, ``default_testbed``, files with a
``[path_loss]`` section) uses a log-distance path-loss model and a non-coherent FSK bit error
rate, see :class:`PathLoss`.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

ROLES = ("compute", "relay")


class TopologyError(ValueError):
    """A topology that cannot be used: malformed, inconsistent or not connected."""


@dataclass(frozen=True)
class PathLoss:
    """Log-distance path loss -> PRR model (units in the names).

    Received power ``P_rx = tx_power_dbm - (pl_d0_db + 10 * exponent * log10(d / d0_m)) + S``
    where ``S`` is a log-normal shadowing term (``shadowing_db`` standard deviation, equal in
    both directions of a pair, plus an independent ``asymmetry_db`` part per direction).
    The SNR over ``noise_floor_dbm`` gives the bit error rate of non-coherent FSK,
    ``BER = 0.5 * exp(-SNR / 2)`` (SNR linear), and the packet success is
    ``PRR = (1 - BER) ** (8 * frame_bytes)``. Links whose PRR falls below ``min_prr`` are
    dropped (PRR 0). Defaults: 0 dBm TX power, 40 dB at 1 m (2.4 GHz free space), indoor
    exponent 3.5 and a -100 dBm noise floor: ~100% PRR up to ~22 m, ~0 beyond ~27 m.
    """

    tx_power_dbm: float = 0.0
    pl_d0_db: float = 40.0
    d0_m: float = 1.0
    exponent: float = 3.5
    noise_floor_dbm: float = -100.0
    shadowing_db: float = 0.0
    asymmetry_db: float = 0.0
    frame_bytes: int = 121
    min_prr: float = 0.01

    def __post_init__(self) -> None:
        if self.exponent <= 0:
            raise TopologyError(f"path-loss exponent must be > 0, got {self.exponent}")
        if self.d0_m <= 0:
            raise TopologyError(f"path-loss reference distance d0_m must be > 0, got {self.d0_m}")
        if self.shadowing_db < 0 or self.asymmetry_db < 0:
            raise TopologyError("shadowing_db and asymmetry_db must be >= 0")
        if self.frame_bytes < 1:
            raise TopologyError(f"frame_bytes must be >= 1, got {self.frame_bytes}")
        if not 0.0 <= self.min_prr <= 1.0:
            raise TopologyError(f"min_prr must lie in [0, 1], got {self.min_prr}")

    def prr_of_distance(self, d_m: np.ndarray, extra_db: np.ndarray | float = 0.0) -> np.ndarray:
        """PRR for distances ``d_m`` (metres) with an extra gain ``extra_db`` (dB)."""
        d = np.maximum(np.asarray(d_m, dtype=np.float64), 1e-3)
        path_loss_db = self.pl_d0_db + 10.0 * self.exponent * np.log10(d / self.d0_m)
        snr_db = self.tx_power_dbm - path_loss_db + extra_db - self.noise_floor_dbm
        snr = 10.0 ** (snr_db / 10.0)
        ber = 0.5 * np.exp(-snr / 2.0)
        prr = np.exp(8.0 * self.frame_bytes * np.log1p(-ber))
        return np.where(prr < self.min_prr, 0.0, prr)

    def prr_matrix(self, positions: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Directed PRR matrix for ``positions`` (float [n, 2] metres); diagonal 0."""
        pos = np.asarray(positions, dtype=np.float64)
        n = pos.shape[0]
        d = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
        extra = np.zeros((n, n))
        if rng is not None and (self.shadowing_db > 0 or self.asymmetry_db > 0):
            sym = rng.normal(0.0, self.shadowing_db, size=(n, n))
            sym = np.triu(sym, 1)
            extra = sym + sym.T + rng.normal(0.0, self.asymmetry_db, size=(n, n))
        prr = self.prr_of_distance(d, extra)
        np.fill_diagonal(prr, 0.0)
        return prr

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> PathLoss:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise TopologyError(
                f"unknown path_loss keys {sorted(unknown)}; allowed: {sorted(known)}"
            )
        try:
            values: dict[str, Any] = {k: (int(v) if k == "frame_bytes" else float(v))
                                      for k, v in data.items()}
            return cls(**values)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, TopologyError):
                raise
            raise TopologyError(f"bad path_loss section: {exc}") from exc


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
        _check_count(n)
        _check_prr(prr)
        p = np.zeros((n, n))
        idx = np.arange(n - 1)
        p[idx, idx + 1] = prr
        p[idx + 1, idx] = prr
        pos = np.stack([np.arange(n) * spacing_m, np.zeros(n)], axis=1)
        return cls(pos, ("compute",) * n, p, 0).validate()

    @classmethod
    def grid(cls, rows: int, cols: int, prr: float = 1.0, spacing_m: float = 10.0,
             diagonal: bool = False) -> Topology:
        """``rows x cols`` compute nodes (row-major), links to the 4 (or 8) nearest cells."""
        _check_count(rows)
        _check_count(cols)
        _check_prr(prr)
        n = rows * cols
        r, c = np.divmod(np.arange(n), cols)
        dr = np.abs(r[:, None] - r[None, :])
        dc = np.abs(c[:, None] - c[None, :])
        near = (dr + dc == 1) | (diagonal & (dr == 1) & (dc == 1))
        pos = np.stack([c * spacing_m, r * spacing_m], axis=1).astype(np.float64)
        return cls(pos, ("compute",) * n, np.where(near, prr, 0.0), 0).validate()

    @classmethod
    def full_mesh(cls, n: int, prr: float = 1.0) -> Topology:
        """``n`` compute nodes, every directed link with PRR ``prr``, on a 1 m circle."""
        _check_count(n)
        _check_prr(prr)
        p = np.full((n, n), prr)
        np.fill_diagonal(p, 0.0)
        ang = 2 * np.pi * np.arange(n) / n
        pos = np.stack([np.cos(ang), np.sin(ang)], axis=1)
        return cls(pos, ("compute",) * n, p, 0).validate()

    @classmethod
    def random_geometric(cls, n: int, seed: int, area_m: float = 60.0,
                         path_loss: PathLoss | None = None, n_relays: int = 0,
                         max_tries: int = 100) -> Topology:
        """``n`` nodes uniform in an ``area_m`` square, PRR from ``path_loss``.

        Default shadowing 4 dB (symmetric) + 1 dB (per direction). Positions are redrawn
        (up to ``max_tries`` times, deterministically from ``seed``) until connected. The last
        ``n_relays`` nodes are relays.
        """
        _check_count(n)
        if not 0 <= n_relays < n:
            raise TopologyError(f"n_relays must lie in [0, {n - 1}], got {n_relays}")
        model = path_loss or PathLoss(shadowing_db=4.0, asymmetry_db=1.0)
        rng = np.random.default_rng([int(seed), n])
        roles = ("compute",) * (n - n_relays) + ("relay",) * n_relays
        last: Topology | None = None
        for _ in range(max_tries):
            pos = rng.uniform(0.0, area_m, size=(n, 2))
            last = cls(pos, roles, model.prr_matrix(pos, rng), 0)
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
        _check_count(n_devices)
        if n_relays < 0:
            raise TopologyError(f"n_relays must be >= 0, got {n_relays}")
        total = n_devices + n_relays
        rows = max(1, round(math.sqrt(total / 2.3)))
        cols = math.ceil(total / rows)
        r, c = np.divmod(np.arange(total), cols)
        jitter = np.random.default_rng(20251015).uniform(-0.5, 0.5, size=(total, 2))
        grid_pos = np.stack([c * 10.0, r * 10.0], axis=1) + jitter
        relay_cells: list[int] = []
        for k in range(n_relays):
            cell = min(max(round((k + 1) * total / (n_relays + 1)), 1), total - 1)
            while cell in relay_cells:
                cell = cell % (total - 1) + 1
            relay_cells.append(cell)
        compute_cells = [x for x in range(total) if x not in relay_cells]
        pos = grid_pos[compute_cells + sorted(relay_cells)]
        p = PathLoss().prr_matrix(pos)
        if prr is not None:
            _check_prr(prr)
            p = np.where(p > 0, prr, 0.0)
        roles = ("compute",) * n_devices + ("relay",) * n_relays
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
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise TopologyError(f"cannot read topology file {p}: {exc.strerror or exc}") from exc
        suffix = p.suffix.lower()
        try:
            if suffix == ".toml":
                import tomllib

                data = tomllib.loads(raw.decode("utf-8"))
            elif suffix == ".json":
                data = json.loads(raw.decode("utf-8"))
            else:
                raise TopologyError(f"topology file {p} must end in .toml or .json")
        except (ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, TopologyError):
                raise
            raise TopologyError(f"cannot parse topology file {p}: {exc}") from exc
        try:
            return _from_spec(data).validate()
        except TopologyError as exc:
            raise TopologyError(f"{p}: {exc}") from exc


def _check_count(n: int) -> None:
    if int(n) < 1:
        raise TopologyError(f"node count must be >= 1, got {n}")


def _check_prr(prr: float) -> None:
    if not 0.0 < float(prr) <= 1.0:
        raise TopologyError(f"prr must lie in (0, 1], got {prr}")


def _from_spec(data: Any) -> Topology:
    if not isinstance(data, dict):
        raise TopologyError("the top level must be a table/object")
    nodes = data.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise TopologyError("missing or empty 'nodes' list ([[nodes]] with id, role, position)")
    n = len(nodes)
    pos = np.zeros((n, 2))
    roles: list[str | None] = [None] * n
    for k, node in enumerate(nodes):
        if not isinstance(node, dict):
            raise TopologyError(f"nodes[{k}] must be a table with id, role, position")
        nid = node.get("id")
        if not isinstance(nid, int) or isinstance(nid, bool) or not 0 <= nid < n:
            raise TopologyError(f"nodes[{k}]: id must be an integer in 0..{n - 1}, got {nid!r}")
        if roles[nid] is not None:
            raise TopologyError(f"node id {nid} appears twice")
        role = node.get("role", "compute")
        if role not in ROLES:
            raise TopologyError(f"node {nid}: role must be 'compute' or 'relay', got {role!r}")
        roles[nid] = role
        xy = node.get("position")
        if (not isinstance(xy, list) or len(xy) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xy)):
            raise TopologyError(f"node {nid}: position must be [x_m, y_m], got {xy!r}")
        pos[nid] = xy
    unknown = set(data) - {"nodes", "links", "path_loss", "initiator"}
    if unknown:
        raise TopologyError(f"unknown top-level keys {sorted(unknown)}")
    links = data.get("links")
    pl = data.get("path_loss")
    if links is not None and pl is not None:
        raise TopologyError("give either [[links]] or [path_loss], not both")
    if links is None and pl is None:
        raise TopologyError("no links: add [[links]] (a, b, prr) or a [path_loss] section")
    if links is not None:
        prr = _links_to_matrix(links, n)
    else:
        if not isinstance(pl, dict):
            raise TopologyError("path_loss must be a table")
        pl = dict(pl)
        seed = pl.pop("seed", 0)
        prr = PathLoss.from_mapping(pl).prr_matrix(pos, np.random.default_rng(int(seed)))
    first_compute = next((i for i, r in enumerate(roles) if r == "compute"), None)
    if first_compute is None:
        raise TopologyError("no compute node: at least one node needs role 'compute'")
    init = data.get("initiator", first_compute)
    if not isinstance(init, int) or isinstance(init, bool):
        raise TopologyError(f"initiator must be a node id, got {init!r}")
    return Topology(pos, tuple(r for r in roles if r is not None), prr, init)


def _links_to_matrix(links: Any, n: int) -> np.ndarray:
    if not isinstance(links, list):
        raise TopologyError("links must be a list of tables (a, b, prr)")
    prr = np.zeros((n, n))

    def number(v: Any, what: str) -> float:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
            raise TopologyError(f"{what} must be a number in [0, 1], got {v!r}")
        return float(v)

    for k, link in enumerate(links):
        if not isinstance(link, dict):
            raise TopologyError(f"links[{k}] must be a table")
        a, b = link.get("a"), link.get("b")
        for v in (a, b):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < n:
                raise TopologyError(f"links[{k}]: unknown node {v!r} (ids are 0..{n - 1})")
        if a == b:
            raise TopologyError(f"links[{k}]: a link needs two different nodes, got {a}-{b}")
        extra = set(link) - {"a", "b", "prr", "prr_ab", "prr_ba"}
        if extra:
            raise TopologyError(f"links[{k}]: unknown keys {sorted(extra)}")
        if "prr" in link:
            if "prr_ab" in link or "prr_ba" in link:
                raise TopologyError(f"links[{k}]: give prr or prr_ab/prr_ba, not both")
            ab = ba = number(link["prr"], f"links[{k}].prr")
        else:
            if "prr_ab" not in link and "prr_ba" not in link:
                raise TopologyError(f"links[{k}]: missing prr (or prr_ab / prr_ba)")
            ab = number(link.get("prr_ab", 0.0), f"links[{k}].prr_ab")
            ba = number(link.get("prr_ba", 0.0), f"links[{k}].prr_ba")
        prr[a, b] = ab
        prr[b, a] = ba
    return prr

