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

The records live in :mod:`protocol.air.faults`, their plain-value forms in
:mod:`protocol.air.loss_state`, the chains in :mod:`protocol.air.gilbert_elliott` and the
radio's view in :mod:`protocol.air.round_loss`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from protocol.air.faults import Faults, Jam, LossError
from protocol.air.gilbert_elliott import (GEArrays, GEParams, ge_arrays_with_states,
                                          ge_chain_arrays, sample_links_kernel)
from protocol.air.loss_state import describe_faults, faults_from_state, faults_to_state
from protocol.air.rng import stream_seed
from protocol.air.round_loss import RoundLoss, effective_prr, stack_round_prrs
from protocol.air.topology_record import Topology


class LossModel:
    """Fault configuration plus Gilbert–Elliott state for one topology (see module doc)."""

    def __init__(self, topology: Topology) -> None:
        self._topo = topology
        self._n = topology.n_nodes
        self._base = np.array(topology.prr, dtype=np.float64)
        self._faults = Faults()
        self._cache: dict[Any, np.ndarray] = {}
        self._ge_cache: tuple[np.ndarray, ...] | None = None
        #: Bumped by every change of the model (faults, Gilbert–Elliott states committed):
        #: what was resolved ahead of time at one revision is valid only at the same one.
        self.revision = 0

    # ------------------------------------------------------------------ properties
    @property
    def topology(self) -> Topology:
        """The topology whose link PRRs this model degrades."""
        return self._topo

    @property
    def last_round(self) -> int | None:
        """Last round committed by the radio (None before the first)."""
        return None if self._faults.last_round < -(1 << 61) else self._faults.last_round

    @property
    def has_ge(self) -> bool:
        """Whether any link has Gilbert–Elliott bursts (globally or per link)."""
        return self._faults.ge_global is not None or bool(self._faults.ge_link)

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
        self.revision += 1

    # ------------------------------------------------------------------ commands
    def set_bernoulli(self, p: float, link: Sequence[int] | None = None, directed: bool = False) -> None:
        """Drop with probability ``p`` on every link (``link=None``) or on one link."""
        v = self._prob(p, "p")
        if link is None:
            self._faults.p_global = v
        else:
            for pair in self._directions(link, directed):
                if v == 0.0:
                    self._faults.p_link.pop(pair, None)
                else:
                    self._faults.p_link[pair] = v
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
        params = GEParams(pv, rv, self._prob(loss_good, "loss_good"), self._prob(loss_bad, "loss_bad"))
        if link is None:
            self._faults.ge_global = params
        else:
            for pair in self._directions(link, directed):
                self._faults.ge_link[pair] = params
        self._changed()

    def clear_gilbert_elliott(self, link: Sequence[int] | None = None, directed: bool = False) -> None:
        """Remove GE from every link (``None``) or from one link (its state is forgotten)."""
        f = self._faults
        if link is None:
            f.ge_global = None
            f.ge_link.clear()
            f.ge_state.clear()
        else:
            for pair in self._directions(link, directed):
                f.ge_link.pop(pair, None)
                f.ge_state.pop(pair, None)
        self._changed()

    def link_down(self, a: int, b: int, directed: bool = False) -> None:
        """Cut ``a -> b`` (and ``b -> a`` unless ``directed``)."""
        for pair in self._directions((a, b), directed):
            self._faults.down_links.add(pair)
        self._changed()

    def link_up(self, a: int, b: int, directed: bool = False) -> None:
        """Restore ``a -> b`` (and ``b -> a`` unless ``directed``)."""
        for pair in self._directions((a, b), directed):
            self._faults.down_links.discard(pair)
        self._changed()

    def node_down(self, node: int) -> None:
        """The node neither transmits nor receives until :meth:`node_up`."""
        self._faults.down_nodes.add(self._node(node))
        self._changed()

    def node_up(self, node: int) -> None:
        """Bring a node taken down by :meth:`node_down` back."""
        self._faults.down_nodes.discard(self._node(node))
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
        jam = Jam(self._faults.next_jam, node_tuple, reg, factor, f_round,
                  None if to_round is None else int(to_round))
        self._faults.next_jam += 1
        self._faults.jams.append(jam)
        self._changed()
        return jam.jam_id

    def unjam(self, jam_id: int | None = None) -> None:
        """Remove one jammer (by id) or all of them."""
        jams = self._faults.jams
        if jam_id is None:
            jams.clear()
        else:
            keep = [j for j in jams if j.jam_id != jam_id]
            if len(keep) == len(jams):
                raise LossError(f"no jammer with id {jam_id}; active: {[j.jam_id for j in jams]}")
            self._faults.jams = keep
        self._changed()

    def clear(self) -> None:
        """Remove every fault (Bernoulli, GE and its states, downs, jammers)."""
        f = self._faults
        f.p_global = 0.0
        f.p_link.clear()
        f.ge_global = None
        f.ge_link.clear()
        f.ge_state.clear()
        f.down_links.clear()
        f.down_nodes.clear()
        f.jams.clear()
        self._changed()

    def describe(self) -> list[dict[str, Any]]:
        """Active faults as plain dicts (msgpack-able), for status and the monitor."""
        return describe_faults(self._faults)

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> dict[str, Any]:
        """Every fault and every Gilbert–Elliott chain state, as plain values (checkpoints)."""
        return faults_to_state(self._faults)

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`to_state`'s output (all or nothing; raises :class:`LossError`)."""
        faults = faults_from_state(state, self._node)
        for a, b in list(faults.p_link) + list(faults.ge_link) + list(faults.down_links):
            self._node(a), self._node(b)
        self._faults = faults
        self._changed()

    # ------------------------------------------------------------------ realization
    def node_up_mask(self) -> np.ndarray:
        """bool [n]: False for nodes taken down."""
        up = np.ones(self._n, dtype=bool)
        up[list(self._faults.down_nodes)] = False
        return up

    def _static(self, round_no: int) -> np.ndarray:
        """Writable float64 [1, n, n] effective PRR (no GE) of ``round_no``, cached.

        Internal: the radio gets it as-is (one numba signature); callers use static_prr.
        """
        active = tuple(j.jam_id for j in self._faults.jams if j.active(round_no))
        hit = self._cache.get(active)
        if hit is not None:
            return hit
        p = effective_prr(self._base, self._faults, active, self._topo.positions)
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
            self._ge_cache = ge_chain_arrays(self._base, self._faults.ge_link, self._faults.ge_global)
        return ge_arrays_with_states(self._ge_cache, self._faults.ge_state)

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
        last_round = self._faults.last_round
        if self.has_ge and rounds[0] <= last_round:
            raise LossError(
                f"round {int(rounds[0])} is not after the last resolved round {last_round}: "
                "with Gilbert–Elliott links every round is resolved once, in increasing order "
                "(cache the AirResult instead of resolving again)"
            )
        stack, idx = stack_round_prrs(rounds, self._static)
        return RoundLoss(rounds, stack, idx, self.node_up_mask(), self._ge_arrays())

    def commit(self, view: RoundLoss, ge_bad_after: np.ndarray) -> None:
        """Store the GE states after the view's rounds were resolved (called by the radio)."""
        ge = view.ge
        for k, (a, b) in enumerate(zip(ge.src.tolist(), ge.dst.tolist())):
            self._faults.ge_state[(a, b)] = bool(ge_bad_after[k])
        self._faults.last_round = max(self._faults.last_round, int(view.round_nos[-1]))
        self.revision += 1

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
        out = sample_links_kernel(prr, ge.index, bad, ge.p_gb, ge.r_bg, ge.loss_good, ge.loss_bad,
                                  int(n_slots), np.uint64(stream_seed(seed, round_no, 0x5A)))
        self.commit(view, bad)
        return out
