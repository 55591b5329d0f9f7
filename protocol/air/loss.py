"""Loss models on top of the topology's link PRRs: composable, seeded, changeable between rounds.

A :class:`LossModel` holds the fault configuration that the coordinator changes at runtime
(control commands) and the only state that outlives a round, the Gilbert–Elliott channel
states. Per link ``a -> b`` and slot the success probability is::

    prr[a, b] * (1 - p_global) * (1 - p_link[a, b]) * jam_factor(b, round)
              * (1 - loss_GE(state[a, b]))          # 0 if the link or a node is down

* **Bernoulli**: independent drop with probability ``p`` (global and/or per link).
* **Gilbert–Elliott** per directed link: a two-state Markov chain advanced once per slot of
  air time (``p``: good -> bad, ``r``: bad -> good; ``loss_good`` / ``loss_bad``: drop
  probability in each state). Stationary bad share ``p / (p + r)``, mean bad burst ``1 / r``
  slots. Links start in the good state; the state persists across slots and rounds (the
  chain does not advance between rounds).
* **link down/up** (one direction or both), **node down/up** (the node neither transmits nor
  receives), **jamming**: receivers in a node set or a circular region get their incoming
  PRR multiplied by ``prr_factor`` in rounds ``[from_round, to_round)``.

Randomness: the radio draws every success from a counter-based generator (SplitMix64) seeded
by ``(seed, round_no)``, so one round's realization is a pure function of the seed, the round
number, the configuration and the GE states at its start. Rounds must be resolved once, in
increasing order, while any GE link is active (enforced: :class:`LossError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from protocol.air.jit import njit

from protocol.air.topology import Topology

_MASK64 = (1 << 64) - 1


class LossError(ValueError):
    """A loss command with bad arguments (unknown node, missing link, p outside [0, 1])."""


# --------------------------------------------------------------------------- RNG (numba)
@njit(cache=True, inline="always")
def rng_next(state: np.ndarray) -> np.uint64:
    """SplitMix64 step on ``state`` (uint64[1], updated in place)."""
    state[0] += np.uint64(0x9E3779B97F4A7C15)
    z: np.uint64 = state[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def rng_uniform(state: np.ndarray) -> float:
    """Uniform float in [0, 1) with 53 random bits."""
    return float(rng_next(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


def _mix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def stream_seed(*parts: int) -> int:
    """A 64-bit seed from integers (e.g. ``(seed, round_no, protocol)``), well mixed."""
    h = 0x6A09E667F3BCC908
    for p in parts:
        h = _mix64(h ^ (int(p) & _MASK64))
    return h


# --------------------------------------------------------------------------- GE (numba)
@njit(cache=True, inline="always")
def ge_advance(bad: np.ndarray, p_gb: np.ndarray, r_bg: np.ndarray, rng: np.ndarray) -> None:
    """Advance every Gilbert–Elliott chain by one slot (one uniform draw per chain)."""
    for k in range(bad.shape[0]):
        u = rng_uniform(rng)
        if bad[k]:
            if u < r_bg[k]:
                bad[k] = False
        elif u < p_gb[k]:
            bad[k] = True


@njit(cache=True, inline="always")
def link_prob(a: int, b: int, prr: np.ndarray, ge_index: np.ndarray, ge_bad: np.ndarray,
              ge_loss_good: np.ndarray, ge_loss_bad: np.ndarray) -> float:
    """Success probability of ``a -> b`` in the current slot (static PRR x GE state)."""
    p: float = prr[a, b]
    k = ge_index[a, b]
    if k >= 0 and p > 0.0:
        p *= 1.0 - (ge_loss_bad[k] if ge_bad[k] else ge_loss_good[k])
    return p


@njit(cache=True)
def _sample_links(prr: np.ndarray, ge_index: np.ndarray, ge_bad: np.ndarray,
                  ge_p: np.ndarray, ge_r: np.ndarray, ge_lg: np.ndarray, ge_lb: np.ndarray,
                  n_slots: int, seed: np.uint64) -> np.ndarray:
    n = prr.shape[0]
    out = np.zeros((n_slots, n, n), dtype=np.bool_)
    rng = np.empty(1, dtype=np.uint64)
    rng[0] = seed
    for s in range(n_slots):
        for a in range(n):
            for b in range(n):
                if prr[a, b] > 0.0:
                    p = link_prob(a, b, prr, ge_index, ge_bad, ge_lg, ge_lb)
                    out[s, a, b] = rng_uniform(rng) < p
        ge_advance(ge_bad, ge_p, ge_r, rng)
    return out


# --------------------------------------------------------------------------- round views
@dataclass(frozen=True, eq=False)
class GEArrays:
    """The Gilbert–Elliott links of a round, compact: chain ``k`` is link ``src[k] -> dst[k]``."""

    index: np.ndarray  # int64 [n, n]: chain of link a->b, -1 if none
    src: np.ndarray  # int64 [K]
    dst: np.ndarray  # int64 [K]
    p_gb: np.ndarray  # float64 [K]
    r_bg: np.ndarray  # float64 [K]
    loss_good: np.ndarray  # float64 [K]
    loss_bad: np.ndarray  # float64 [K]
    bad: np.ndarray  # bool [K]: state at the start of the round (a copy; the radio mutates it)


@dataclass(frozen=True, eq=False)
class RoundLoss:
    """What the radio needs for a run of rounds: static PRRs, live nodes, GE chains.

    ``prr_stack[round_index[i]]`` is the effective PRR matrix (everything but GE) of the
    ``i``-th round; ``node_up`` is False for nodes taken down.
    """

    round_nos: np.ndarray  # int64 [R]
    prr_stack: np.ndarray  # float64 [K, n, n]
    round_index: np.ndarray  # int64 [R]
    node_up: np.ndarray  # bool [n]
    ge: GEArrays

    def prr(self, i: int = 0) -> np.ndarray:
        """Effective static PRR matrix of the ``i``-th round of this view."""
        prr: np.ndarray = self.prr_stack[self.round_index[i]]
        return prr


@dataclass(frozen=True)
class _GEParams:
    p: float
    r: float
    loss_good: float
    loss_bad: float


def _region(values: Any) -> tuple[float, float, float]:
    """A jam region ``(x_m, y_m, radius_m)`` read back from a saved state."""
    x_m, y_m, radius_m = (float(v) for v in values)
    return x_m, y_m, radius_m


@dataclass(frozen=True)
class Jam:
    """A jammer: receivers in ``nodes`` or within ``region`` get PRR x ``prr_factor``."""

    jam_id: int
    nodes: tuple[int, ...]
    region: tuple[float, float, float] | None  # (x_m, y_m, radius_m)
    prr_factor: float
    from_round: int
    to_round: int | None

    def active(self, round_no: int) -> bool:
        return self.from_round <= round_no and (self.to_round is None or round_no < self.to_round)


class LossModel:
    """Fault configuration plus Gilbert–Elliott state for one topology (see module doc)."""

    def __init__(self, topology: Topology) -> None:
        self._topo = topology
        self._n = topology.n_nodes
        self._base = np.array(topology.prr, dtype=np.float64)
        self._p_global = 0.0
        self._p_link: dict[tuple[int, int], float] = {}
        self._ge_global: _GEParams | None = None
        self._ge_link: dict[tuple[int, int], _GEParams] = {}
        self._ge_state: dict[tuple[int, int], bool] = {}
        self._down_links: set[tuple[int, int]] = set()
        self._down_nodes: set[int] = set()
        self._jams: list[Jam] = []
        self._next_jam = 0
        self._last_round = -(1 << 62)
        self._cache: dict[Any, np.ndarray] = {}
        self._ge_cache: tuple[np.ndarray, ...] | None = None

    # ------------------------------------------------------------------ properties
    @property
    def topology(self) -> Topology:
        return self._topo

    @property
    def last_round(self) -> int | None:
        """Last round committed by the radio (None before the first)."""
        return None if self._last_round < -(1 << 61) else self._last_round

    @property
    def has_ge(self) -> bool:
        return self._ge_global is not None or bool(self._ge_link)

    # ------------------------------------------------------------------ validation
    def _node(self, i: Any) -> int:
        try:
            v = int(i)
        except (TypeError, ValueError):
            raise LossError(f"node must be an integer, got {i!r}") from None
        if not 0 <= v < self._n:
            raise LossError(f"unknown node {i}: the topology has nodes 0..{self._n - 1}")
        return v

    def _link(self, a: Any, b: Any) -> tuple[int, int]:
        x, y = self._node(a), self._node(b)
        if self._base[x, y] <= 0 and self._base[y, x] <= 0:
            raise LossError(f"no link between {x} and {y} in the topology (see `links()`)")
        return x, y

    def _directions(self, link: Sequence[int], directed: bool) -> list[tuple[int, int]]:
        if len(link) != 2:
            raise LossError(f"a link is a pair (a, b), got {link!r}")
        a, b = self._link(link[0], link[1])
        pairs = [(a, b)] if directed else [(a, b), (b, a)]
        return [(x, y) for x, y in pairs if self._base[x, y] > 0] or [(a, b)]

    @staticmethod
    def _prob(p: Any, name: str) -> float:
        try:
            v = float(p)
        except (TypeError, ValueError):
            raise LossError(f"{name} must be a number in [0, 1], got {p!r}") from None
        if not 0.0 <= v <= 1.0:
            raise LossError(f"{name} must lie in [0, 1], got {p}")
        return v

    def _changed(self) -> None:
        self._cache.clear()
        self._ge_cache = None

    # ------------------------------------------------------------------ commands
    def set_bernoulli(self, p: float, link: Sequence[int] | None = None, directed: bool = False) -> None:
        """Drop with probability ``p`` on every link (``link=None``) or on one link."""
        v = self._prob(p, "p")
        if link is None:
            self._p_global = v
        else:
            for pair in self._directions(link, directed):
                if v == 0.0:
                    self._p_link.pop(pair, None)
                else:
                    self._p_link[pair] = v
        self._changed()

    def set_gilbert_elliott(self, p: float, r: float, link: Sequence[int] | None = None,
                            loss_good: float = 0.0, loss_bad: float = 1.0,
                            directed: bool = False) -> None:
        """Gilbert–Elliott bursts on every link (``link=None``) or on one link.

        ``p``: good -> bad per slot, ``r``: bad -> good per slot (``r > 0``), ``loss_good`` /
        ``loss_bad``: drop probability in each state. Existing chain states are kept.
        """
        pv, rv = self._prob(p, "p"), self._prob(r, "r")
        if rv == 0.0 and pv > 0.0:
            raise LossError("r (bad -> good) must be > 0, or a link would stay bad forever; "
                            "use link_down for a permanent cut")
        params = _GEParams(pv, rv, self._prob(loss_good, "loss_good"), self._prob(loss_bad, "loss_bad"))
        if link is None:
            self._ge_global = params
        else:
            for pair in self._directions(link, directed):
                self._ge_link[pair] = params
        self._changed()

    def clear_gilbert_elliott(self, link: Sequence[int] | None = None, directed: bool = False) -> None:
        """Remove GE from every link (``None``) or from one link (its state is forgotten)."""
        if link is None:
            self._ge_global = None
            self._ge_link.clear()
            self._ge_state.clear()
        else:
            for pair in self._directions(link, directed):
                self._ge_link.pop(pair, None)
                self._ge_state.pop(pair, None)
        self._changed()

    def link_down(self, a: int, b: int, directed: bool = False) -> None:
        """Cut ``a -> b`` (and ``b -> a`` unless ``directed``)."""
        for pair in self._directions((a, b), directed):
            self._down_links.add(pair)
        self._changed()

    def link_up(self, a: int, b: int, directed: bool = False) -> None:
        """Restore ``a -> b`` (and ``b -> a`` unless ``directed``)."""
        for pair in self._directions((a, b), directed):
            self._down_links.discard(pair)
        self._changed()

    def node_down(self, node: int) -> None:
        """The node neither transmits nor receives until :meth:`node_up`."""
        self._down_nodes.add(self._node(node))
        self._changed()

    def node_up(self, node: int) -> None:
        self._down_nodes.discard(self._node(node))
        self._changed()

    def jam(self, nodes: Sequence[int] | None = None, region: Sequence[float] | None = None,
            prr_factor: float = 0.0, from_round: int = 0, to_round: int | None = None) -> int:
        """Jam receivers in ``nodes`` and/or ``region=(x_m, y_m, radius_m)``; returns the jam id.

        Incoming PRR of a jammed receiver is multiplied by ``prr_factor`` (0 = nothing gets
        through) in rounds ``from_round <= r < to_round`` (``to_round=None``: no end).
        """
        if nodes is None and region is None:
            raise LossError("jam needs nodes=[...] or region=(x_m, y_m, radius_m)")
        node_tuple = tuple(sorted({self._node(x) for x in (nodes or ())}))
        reg: tuple[float, float, float] | None = None
        if region is not None:
            try:
                x, y, rad = (float(v) for v in region)
            except (TypeError, ValueError):
                raise LossError(f"region must be (x_m, y_m, radius_m), got {region!r}") from None
            if not rad > 0 or not np.isfinite([x, y, rad]).all():
                raise LossError(f"region radius must be a positive number, got {rad}")
            reg = (x, y, rad)
        factor = self._prob(prr_factor, "prr_factor")
        f_round = int(from_round)
        if to_round is not None and int(to_round) <= f_round:
            raise LossError(f"empty jam window [{from_round}, {to_round}): to_round must be > from_round")
        jam = Jam(self._next_jam, node_tuple, reg, factor, f_round,
                  None if to_round is None else int(to_round))
        self._next_jam += 1
        self._jams.append(jam)
        self._changed()
        return jam.jam_id

    def unjam(self, jam_id: int | None = None) -> None:
        """Remove one jammer (by id) or all of them."""
        if jam_id is None:
            self._jams.clear()
        else:
            keep = [j for j in self._jams if j.jam_id != jam_id]
            if len(keep) == len(self._jams):
                raise LossError(f"no jammer with id {jam_id}; active: {[j.jam_id for j in self._jams]}")
            self._jams = keep
        self._changed()

    def clear(self) -> None:
        """Remove every fault (Bernoulli, GE and its states, downs, jammers)."""
        self._p_global = 0.0
        self._p_link.clear()
        self._ge_global = None
        self._ge_link.clear()
        self._ge_state.clear()
        self._down_links.clear()
        self._down_nodes.clear()
        self._jams.clear()
        self._changed()

    def describe(self) -> list[dict[str, Any]]:
        """Active faults as plain dicts (msgpack-able), for status and the monitor."""
        out: list[dict[str, Any]] = []
        if self._p_global > 0:
            out.append({"kind": "bernoulli", "p": self._p_global, "link": None})
        for (a, b), p in sorted(self._p_link.items()):
            out.append({"kind": "bernoulli", "p": p, "link": [a, b]})
        if self._ge_global is not None:
            g = self._ge_global
            out.append({"kind": "gilbert_elliott", "link": None, "p": g.p, "r": g.r,
                        "loss_good": g.loss_good, "loss_bad": g.loss_bad})
        for (a, b), g in sorted(self._ge_link.items()):
            out.append({"kind": "gilbert_elliott", "link": [a, b], "p": g.p, "r": g.r,
                        "loss_good": g.loss_good, "loss_bad": g.loss_bad,
                        "bad": self._ge_state.get((a, b), False)})
        for a, b in sorted(self._down_links):
            out.append({"kind": "link_down", "link": [a, b]})
        for n in sorted(self._down_nodes):
            out.append({"kind": "node_down", "node": n})
        for j in self._jams:
            out.append({"kind": "jam", "id": j.jam_id, "nodes": list(j.nodes),
                        "region": None if j.region is None else list(j.region),
                        "prr_factor": j.prr_factor, "from_round": j.from_round,
                        "to_round": j.to_round})
        return out

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> dict[str, Any]:
        """Every fault and every Gilbert–Elliott chain state, as plain values (checkpoints)."""
        def ge(g: _GEParams | None) -> list[float] | None:
            return None if g is None else [g.p, g.r, g.loss_good, g.loss_bad]

        return {
            "p_global": self._p_global,
            "p_link": [[a, b, p] for (a, b), p in sorted(self._p_link.items())],
            "ge_global": ge(self._ge_global),
            "ge_link": [[a, b, *ge(g)] for (a, b), g in sorted(self._ge_link.items())],  # type: ignore[misc]
            "ge_state": [[a, b, bool(v)] for (a, b), v in sorted(self._ge_state.items())],
            "down_links": sorted([a, b] for a, b in self._down_links),
            "down_nodes": sorted(self._down_nodes),
            "jams": [[j.jam_id, list(j.nodes), None if j.region is None else list(j.region),
                      j.prr_factor, j.from_round, j.to_round] for j in self._jams],
            "next_jam": self._next_jam,
            "last_round": self._last_round,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`to_state`'s output (all or nothing; raises :class:`LossError`)."""
        try:
            p_link = {(int(a), int(b)): float(p) for a, b, p in state["p_link"]}
            ge_global = None if state["ge_global"] is None else _GEParams(*map(float, state["ge_global"]))
            ge_link = {(int(x[0]), int(x[1])): _GEParams(*map(float, x[2:6])) for x in state["ge_link"]}
            ge_state = {(int(a), int(b)): bool(v) for a, b, v in state["ge_state"]}
            down_links = {(int(a), int(b)) for a, b in state["down_links"]}
            down_nodes = {self._node(n) for n in state["down_nodes"]}
            jams = [Jam(int(i), tuple(int(n) for n in nodes), None if reg is None else _region(reg),
                        float(f), int(fr), None if to is None else int(to))
                    for i, nodes, reg, f, fr, to in state["jams"]]
            p_global = float(state["p_global"])
            next_jam, last_round = int(state["next_jam"]), int(state["last_round"])
        except (KeyError, TypeError, ValueError) as exc:
            raise LossError(f"loss state is malformed: {exc}") from exc
        for a, b in list(p_link) + list(ge_link) + list(down_links):
            self._node(a), self._node(b)
        self._p_global, self._p_link = p_global, p_link
        self._ge_global, self._ge_link, self._ge_state = ge_global, ge_link, ge_state
        self._down_links, self._down_nodes, self._jams = down_links, down_nodes, jams
        self._next_jam, self._last_round = next_jam, last_round
        self._changed()

    # ------------------------------------------------------------------ realization
    def node_up_mask(self) -> np.ndarray:
        """bool [n]: False for nodes taken down."""
        up = np.ones(self._n, dtype=bool)
        up[list(self._down_nodes)] = False
        return up

    def _jammed(self, jam: Jam) -> np.ndarray:
        mask = np.zeros(self._n, dtype=bool)
        mask[list(jam.nodes)] = True
        if jam.region is not None:
            x, y, rad = jam.region
            d2 = ((self._topo.positions - np.array([x, y])) ** 2).sum(axis=1)
            mask |= d2 <= rad * rad
        return mask

    def _static(self, round_no: int) -> np.ndarray:
        """Writable float64 [1, n, n] effective PRR (no GE) of ``round_no``, cached.

        Internal: the radio gets it as-is (one numba signature); callers use static_prr.
        """
        active = tuple(j.jam_id for j in self._jams if j.active(round_no))
        hit = self._cache.get(active)
        if hit is not None:
            return hit
        p = self._base * (1.0 - self._p_global)
        for (a, b), q in self._p_link.items():
            p[a, b] *= 1.0 - q
        for a, b in self._down_links:
            p[a, b] = 0.0
        for j in self._jams:
            if j.jam_id in active:
                p[:, self._jammed(j)] *= j.prr_factor
        stacked: np.ndarray = p[None, :, :].copy()
        self._cache[active] = stacked
        return stacked

    def static_prr(self, round_no: int) -> np.ndarray:
        """Effective PRR matrix of ``round_no`` without GE (a read-only view)."""
        view: np.ndarray = self._static(round_no)[0].view()
        view.setflags(write=False)
        return view

    def _ge_arrays(self) -> GEArrays:
        if self._ge_cache is None:
            pairs: list[tuple[int, int]] = []
            params: list[_GEParams] = []
            a_idx, b_idx = np.nonzero(self._base > 0)
            for a, b in zip(a_idx.tolist(), b_idx.tolist()):
                g = self._ge_link.get((a, b), self._ge_global)
                if g is not None:
                    pairs.append((a, b))
                    params.append(g)
            k = len(pairs)
            index = np.full((self._n, self._n), -1, dtype=np.int64)
            src = np.array([a for a, _ in pairs], dtype=np.int64)
            dst = np.array([b for _, b in pairs], dtype=np.int64)
            if k:
                index[src, dst] = np.arange(k)
            self._ge_cache = (
                index, src, dst,
                np.array([g.p for g in params], dtype=np.float64),
                np.array([g.r for g in params], dtype=np.float64),
                np.array([g.loss_good for g in params], dtype=np.float64),
                np.array([g.loss_bad for g in params], dtype=np.float64),
            )
        index, src, dst, p, r, lg, lb = self._ge_cache
        bad = np.array([self._ge_state.get((a, b), False) for a, b in zip(src.tolist(), dst.tolist())],
                       dtype=np.bool_)
        return GEArrays(index, src, dst, p, r, lg, lb, bad)

    def round_view(self, round_nos: int | Sequence[int] | np.ndarray) -> RoundLoss:
        """The loss of one round or of consecutive increasing rounds, for the radio.

        Raises :class:`LossError` if GE links are active and a round is not after the last
        committed one (each round's realization must be drawn once, in order).
        """
        rounds = np.atleast_1d(np.asarray(round_nos, dtype=np.int64))
        if rounds.ndim != 1 or rounds.size == 0:
            raise LossError("round_view needs at least one round number")
        if rounds.size > 1 and np.any(np.diff(rounds) <= 0):
            raise LossError("rounds of one view must be strictly increasing")
        if self.has_ge and rounds[0] <= self._last_round:
            raise LossError(
                f"round {int(rounds[0])} is not after the last resolved round {self._last_round}: "
                "with Gilbert–Elliott links every round is resolved once, in increasing order "
                "(cache the AirResult instead of resolving again)"
            )
        if rounds.size == 1:
            stack = self._static(int(rounds[0]))
            idx = np.zeros(1, dtype=np.int64)
        else:
            mats: list[np.ndarray] = []
            keys: dict[int, int] = {}
            idx = np.empty(rounds.size, dtype=np.int64)
            for i, r in enumerate(rounds.tolist()):
                m = self._static(r)
                k = keys.get(id(m))
                if k is None:
                    k = keys[id(m)] = len(mats)
                    mats.append(m[0])
                idx[i] = k
            stack = mats[0][None, :, :] if len(mats) == 1 else np.stack(mats)
        return RoundLoss(rounds, stack, idx, self.node_up_mask(), self._ge_arrays())

    def commit(self, view: RoundLoss, ge_bad_after: np.ndarray) -> None:
        """Store the GE states after the view's rounds were resolved (called by the radio)."""
        ge = view.ge
        for k, (a, b) in enumerate(zip(ge.src.tolist(), ge.dst.tolist())):
            self._ge_state[(a, b)] = bool(ge_bad_after[k])
        self._last_round = max(self._last_round, int(view.round_nos[-1]))

    def sample_links(self, round_no: int, n_slots: int, seed: int) -> np.ndarray:
        """Realize every link in every slot of a round: bool [n_slots, n, n] (and commit GE).

        Independent of any protocol; used to check the statistics and for plots. Draws come
        from ``stream_seed(seed, round_no, 0x5A)``. Node-down nodes have no links.
        """
        view = self.round_view(round_no)
        prr = view.prr().copy()
        up = view.node_up
        prr[~up, :] = 0.0
        prr[:, ~up] = 0.0
        ge = view.ge
        bad = ge.bad.copy()
        out = _sample_links(prr, ge.index, bad, ge.p_gb, ge.r_bg, ge.loss_good, ge.loss_bad,
                            int(n_slots), np.uint64(stream_seed(seed, round_no, 0x5A)))
        self.commit(view, bad)
        return out
