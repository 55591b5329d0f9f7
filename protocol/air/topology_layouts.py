"""The built-in node layouts: line, grid, full mesh, random geometric and the default testbed.

Each function checks its arguments and returns a :data:`Layout` ``(positions_m, roles, prr)``
(float [n, 2] metres, one role per node, float [n, n] directed PRR); ``Topology``'s generator
classmethods build and validate the topology from it, with node 0 as the initiator.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from protocol.air.path_loss import PathLoss
from protocol.air.topology_base import TopologyError

Layout = tuple[np.ndarray, tuple[str, ...], np.ndarray]
"""``(positions_m float [n, 2], roles, prr float [n, n])`` of a generated topology."""


def check_count(n: int) -> None:
    """Raise :class:`TopologyError` unless ``n`` (a node, row or column count) is >= 1."""
    if int(n) < 1:
        raise TopologyError(f"node count must be >= 1, got {n}")


def check_prr(prr: float) -> None:
    """Raise :class:`TopologyError` unless ``prr`` lies in (0, 1]."""
    if not 0.0 < float(prr) <= 1.0:
        raise TopologyError(f"prr must lie in (0, 1], got {prr}")


def line_layout(n: int, prr: float, spacing_m: float) -> Layout:
    """``n`` compute nodes ``spacing_m`` apart on a line, links only between neighbours."""
    check_count(n)
    check_prr(prr)
    p = np.zeros((n, n))
    idx = np.arange(n - 1)
    p[idx, idx + 1] = prr
    p[idx + 1, idx] = prr
    pos = np.stack([np.arange(n) * spacing_m, np.zeros(n)], axis=1)
    return pos, ("compute",) * n, p


def grid_layout(rows: int, cols: int, prr: float, spacing_m: float, diagonal: bool) -> Layout:
    """``rows x cols`` compute nodes (row-major), links to the 4 (or 8) nearest cells."""
    check_count(rows)
    check_count(cols)
    check_prr(prr)
    n = rows * cols
    r, c = np.divmod(np.arange(n), cols)
    dr = np.abs(r[:, None] - r[None, :])
    dc = np.abs(c[:, None] - c[None, :])
    near = (dr + dc == 1) | (diagonal & (dr == 1) & (dc == 1))
    pos = np.stack([c * spacing_m, r * spacing_m], axis=1).astype(np.float64)
    return pos, ("compute",) * n, np.where(near, prr, 0.0)


def full_mesh_layout(n: int, prr: float) -> Layout:
    """``n`` compute nodes on a 1 m circle, every directed link with PRR ``prr``."""
    check_count(n)
    check_prr(prr)
    p = np.full((n, n), prr)
    np.fill_diagonal(p, 0.0)
    ang = 2 * np.pi * np.arange(n) / n
    pos = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    return pos, ("compute",) * n, p


def random_geometric_draws(n: int, seed: int, area_m: float, path_loss: PathLoss | None,
                           n_relays: int) -> Callable[[], Layout]:
    """Check the arguments, then return a function drawing one candidate layout per call.

    Nodes uniform in an ``area_m`` square (metres), PRR from ``path_loss`` (default: shadowing
    4 dB symmetric + 1 dB per direction); the last ``n_relays`` nodes are relays. Successive
    calls continue one generator seeded from ``(seed, n)``, so the sequence is deterministic.
    """
    check_count(n)
    if not 0 <= n_relays < n:
        raise TopologyError(f"n_relays must lie in [0, {n - 1}], got {n_relays}")
    model = path_loss or PathLoss(shadowing_db=4.0, asymmetry_db=1.0)
    rng = np.random.default_rng([int(seed), n])
    roles = ("compute",) * (n - n_relays) + ("relay",) * n_relays

    def draw() -> Layout:
        pos = rng.uniform(0.0, area_m, size=(n, 2))
        return pos, roles, model.prr_matrix(pos, rng)

    return draw


def default_testbed_layout(n_devices: int, n_relays: int, prr: float | None) -> Layout:
    """The office-floor grid of ``n_devices + n_relays`` nodes (see ``Topology.default_testbed``).

    Cells 10 m apart plus a fixed sub-metre jitter, about 2.3 columns per row, PRR from
    :class:`PathLoss` defaults (no shadowing) or ``prr`` on every existing link; relays take
    evenly spread cells and the last node indices.
    """
    check_count(n_devices)
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
        check_prr(prr)
        p = np.where(p > 0, prr, 0.0)
    roles = ("compute",) * n_devices + ("relay",) * n_relays
    return pos, roles, p
