"""The topology file format: TOML (``.toml``) or JSON (``.json``), see docs/radio.md.

Format: ``initiator`` (node id, default the first compute node), ``[[nodes]]`` with ``id``
(0..n-1, each once), ``role`` and ``position = [x_m, y_m]`` (metres); then either
``[[links]]`` (``a``, ``b`` and ``prr`` for both directions, or ``prr_ab`` / ``prr_ba``) or a
``[path_loss]`` table (:class:`~protocol.air.path_loss.PathLoss` fields plus ``seed``).
:func:`read_topology_file` parses a file, :func:`topology_fields` turns the parsed table
into the fields of a ``Topology`` (``Topology.from_file`` does both and validates).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from protocol.air.path_loss import PathLoss
from protocol.air.topology_base import ROLES, TopologyError

TopologyFields = tuple[np.ndarray, tuple[str, ...], np.ndarray, int]
"""``(positions_m float [n, 2], roles, prr float [n, n], initiator)``; the initiator is the
file's node id as given (``Topology`` checks that it is a compute node)."""


def read_topology_file(path: Path) -> Any:
    """The parsed contents of a ``.toml`` or ``.json`` topology file (not yet checked).

    Raises :class:`TopologyError` if the file cannot be read, has another suffix or does not
    parse.
    """
    p = path
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise TopologyError(f"cannot read topology file {p}: {exc.strerror or exc}") from exc
    suffix = p.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            return tomllib.loads(raw.decode("utf-8"))
        elif suffix == ".json":
            return json.loads(raw.decode("utf-8"))
        else:
            raise TopologyError(f"topology file {p} must end in .toml or .json")
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, TopologyError):
            raise
        raise TopologyError(f"cannot parse topology file {p}: {exc}") from exc


def topology_fields(data: Any) -> TopologyFields:
    """``(positions_m, roles, prr, initiator)`` of a parsed topology file (see module doc).

    Checks the file's own structure (ids, roles, positions, links, keys); the fields still
    go through ``Topology``'s checks and :meth:`~Topology.validate`.
    """
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
    return pos, tuple(r for r in roles if r is not None), prr, init


def _links_to_matrix(links: Any, n: int) -> np.ndarray:
    """float [n, n] directed PRR from the ``[[links]]`` list (``prr`` or ``prr_ab`` / ``prr_ba``)."""
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
