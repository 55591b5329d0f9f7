"""The topology as the monitor draws it: link PRRs with the coordinator's faults applied."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def freeze(value: Any) -> Any:
    """A hashable copy of nested dicts and lists (for cache keys and de-duplication)."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


def active_jams(faults: list[dict[str, Any]], round_no: int) -> tuple[bool, ...]:
    """Per jam fault in ``faults``: whether its window covers ``round_no``."""
    out = []
    for f in faults:
        if f.get("kind") == "jam":
            start, stop = f.get("from_round") or 0, f.get("to_round")
            out.append(start <= round_no and (stop is None or round_no < stop))
    return tuple(out)


@dataclass(frozen=True)
class LinkView:
    """Topology links with the faults applied (PRR in [0, 1], ``prr[a, b]``: b hears a).

    The ``pair_*`` matrices are symmetric and describe the undirected pair ``{a, b}``:
    ``pair_prr`` the effective PRR of its worse existing direction (NaN: no link),
    ``pair_down`` whether it is cut (link-down in either direction, or an end node down),
    ``pair_degraded`` whether a fault lowered either direction.
    """

    base: np.ndarray  # float64 [n, n], the topology's PRRs
    prr: np.ndarray  # float64 [n, n], with every fault applied
    roles: tuple[str, ...]
    down_links: frozenset[tuple[int, int]]  # explicitly cut (link-down), directed
    down_nodes: frozenset[int]
    unknown_faults: tuple[dict[str, Any], ...]  # faults this monitor could not interpret
    pair_prr: np.ndarray = field(init=False, repr=False)
    pair_down: np.ndarray = field(init=False, repr=False)
    pair_degraded: np.ndarray = field(init=False, repr=False)
    cache: dict[Any, Any] = field(init=False, repr=False, compare=False)  # rendered pieces

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache", {})
        exists = self.base > 0
        directed = np.where(exists, self.prr, np.inf)
        pair = np.minimum(directed, directed.T)
        pair[np.isinf(pair)] = np.nan
        down = np.zeros(exists.shape, dtype=bool)
        for a, b in self.down_links:
            down[a, b] = down[b, a] = True
        for node in self.down_nodes:
            down[node, :] = down[:, node] = True
        down &= exists | exists.T
        lowered = exists & (self.prr < self.base - 1e-12)
        object.__setattr__(self, "pair_prr", pair)
        object.__setattr__(self, "pair_down", down)
        object.__setattr__(self, "pair_degraded", down | lowered | lowered.T)

    @property
    def n_nodes(self) -> int:
        return len(self.roles)

    def neighbours(self, i: int) -> list[int]:
        return [int(j) for j in np.flatnonzero(~np.isnan(self.pair_prr[i]))]

    def counts(self) -> tuple[int, int, int]:
        """Undirected ``(links, degraded but up, down or at PRR 0)``."""
        upper = np.triu(~np.isnan(self.pair_prr), 1)
        dead = upper & (self.pair_down | (np.nan_to_num(self.pair_prr, nan=1.0) <= 0))
        degraded = upper & self.pair_degraded & ~dead
        return int(upper.sum()), int(degraded.sum()), int(dead.sum())


def link_view(topology: dict[str, Any], faults: list[dict[str, Any]], round_no: int) -> LinkView | None:
    """Apply the coordinator's fault list (``LossModel.describe()``) to a topology dict.

    The faults are replayed on a :class:`protocol.air.loss.LossModel`, so the static PRRs are the
    ones the radio uses for ``round_no``; Gilbert–Elliott links are shown at their mean loss
    ``pi_bad * loss_bad + (1 - pi_bad) * loss_good`` with ``pi_bad = p / (p + r)``, and a node
    that is down loses all its links. None if the topology cannot be read.
    """
    # Imported here: protocol.air.loss pulls in numba (~0.5 s), which a monitor without a
    # topology never needs.
    from protocol.air.loss import LossError, LossModel
    from protocol.air.topology import Topology, TopologyError

    try:
        if "prr" not in topology and "links" in topology:  # sparse form: [[a, b, prr], ...]
            n = len(topology["roles"])
            dense = np.zeros((n, n))
            for a, b, p in topology["links"]:
                dense[int(a), int(b)] = float(p)
            topology = dict(topology, prr=dense)
        topo = Topology.from_dict(topology)
    except (TopologyError, TypeError, ValueError, KeyError, IndexError):
        return None
    model = LossModel(topo)
    ge: list[tuple[list[int] | None, float]] = []
    down_links: set[tuple[int, int]] = set()
    down_nodes: set[int] = set()
    unknown: list[dict[str, Any]] = []
    for fault in faults:
        kind, link = fault.get("kind"), fault.get("link")
        try:
            if kind == "bernoulli":
                model.set_bernoulli(fault["p"], link=link, directed=link is not None)
            elif kind == "link_down":
                a, b = (int(end) for end in fault["link"])
                model.link_down(a, b, directed=True)
                down_links.add((a, b))
            elif kind == "node_down":
                model.node_down(int(fault["node"]))
                down_nodes.add(int(fault["node"]))
            elif kind == "jam":
                model.jam(nodes=fault.get("nodes") or None, region=fault.get("region"),
                          prr_factor=fault.get("prr_factor", 0.0),
                          from_round=fault.get("from_round") or 0, to_round=fault.get("to_round"))
            elif kind == "gilbert_elliott":
                p, r = float(fault["p"]), float(fault["r"])
                bad = p / (p + r) if p + r > 0 else 0.0
                mean = bad * float(fault.get("loss_bad", 1.0)) + (1 - bad) * float(fault.get("loss_good", 0.0))
                ge.append((link, mean))
            else:
                unknown.append(fault)
        except (LossError, KeyError, TypeError, ValueError, IndexError):
            unknown.append(fault)
    prr = np.array(model.static_prr(round_no), dtype=np.float64)
    for link, mean in ge:
        if link is None:
            prr *= 1.0 - mean
        else:
            prr[int(link[0]), int(link[1])] *= 1.0 - mean
    for node in down_nodes:
        prr[node, :] = 0.0
        prr[:, node] = 0.0
    return LinkView(np.array(topo.prr), prr, topo.roles, frozenset(down_links),
                    frozenset(down_nodes), tuple(unknown))
