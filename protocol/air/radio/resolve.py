"""The air: resolve a round's slots with Mixer or Glossy under a loss model.

:func:`resolve` resolves one round, :func:`resolve_batch` many consecutive rounds in one
numba call (the air never depends on packet contents, only on who sources which packet).
Both return :class:`AirResult` per round with the same shape for either protocol.

Randomness: round ``r`` draws from ``stream_seed(seed, r, protocol)``, so a round's
realization is a pure function of (seed, round number, topology, sources, alive, loss
configuration, Gilbert–Elliott states at its start); a batch gives the same results as the
same rounds resolved one by one.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Callable, ParamSpec, Sequence

import numpy as np

from protocol.air import timing
from protocol.air.energy import DEFAULT_CONSTANTS, EnergyBreakdown, EnergyConstants, radio_energy_mj
from protocol.air.gilbert_elliott import GEArrays
from protocol.air.loss_model import LossModel
from protocol.air.radio.capture import DEFAULT_CAPTURE, CaptureModel, check_power, link_power_mw
from protocol.air.radio.glossy import glossy_batch_kernel
from protocol.air.radio.mixer import _DEBRUIJN_TABLE, mixer_batch_kernel
from protocol.air.rng import stream_seed
from protocol.air.round_loss import RoundLoss
from protocol.air.topology_record import Topology

PROTOCOLS = ("mixer", "glossy", "mixer-coordinated")
_P = ParamSpec("_P")
_PROTOCOL_CODE = {"mixer": 1, "glossy": 2, "mixer-coordinated": 3}
#: Glossy PHY payload besides the application payload (header with the relay counter).
GLOSSY_HEADER_BYTES = 4
#: Synced listening slots in a row without a reception after which a coordinated Mixer node
#: loses its sync: (RX_WINDOW_MAX - RX_WINDOW_MIN) / RX_WINDOW_INCREMENT in Mixer's
#: ``mixer_transport_ble.c`` (20 unless the slot caps RX_WINDOW_MAX; not for our slots).
RESYNC_AFTER_SLOTS = 20


@dataclass(frozen=True, eq=False)
class AirResult:
    """What the air did in one round (per node arrays are indexed by topology node).

    ``tx_slots + rx_slots + off_slots == n_slots`` for every node; ``rx_ok_slots`` (a subset
    of ``rx_slots``) counts listening slots in which a packet arrived, ``rx_listen_slots``
    (a subset of the others, Mixer only) those the node listened through unsynchronized. ``full_rank_slot``:
    slots after which the node held every packet (0: from the start, -1: never);
    ``completion_slot``: the same for the last alive node (-1 if some alive node missed
    something). ``first_rx_slot`` (Glossy only, else None): int [G, n] first reception slot
    of each node within each packet's flood.
    """

    protocol: str
    round_no: int
    decoded: np.ndarray  # bool [n_nodes, G]
    tx_slots: np.ndarray  # int32 [n_nodes]
    rx_slots: np.ndarray  # int32 [n_nodes]
    rx_ok_slots: np.ndarray  # int32 [n_nodes]
    off_slots: np.ndarray  # int32 [n_nodes]
    full_rank_slot: np.ndarray  # int32 [n_nodes]
    n_slots: int
    slot_s: float
    air_s: float
    completion_slot: int
    first_rx_slot: np.ndarray | None = None
    rx_listen_slots: np.ndarray | None = None  # int32 [n_nodes]; None: zeros

    @property
    def n_packets(self) -> int:
        return int(self.decoded.shape[1])

    @property
    def complete(self) -> bool:
        """Every alive node got every packet."""
        return self.completion_slot >= 0

    def energy_mj(self, consts: EnergyConstants = DEFAULT_CONSTANTS) -> EnergyBreakdown:
        """Radio energy per node (see protocol/air/energy.py)."""
        return radio_energy_mj(self.tx_slots, self.rx_slots, self.off_slots, self.slot_s,
                               self.air_s, consts, self.rx_ok_slots, self.rx_listen_slots)


@dataclass(frozen=True, eq=False)
class _Static:
    """Per-topology kernel inputs (writable C arrays: numba compiles one signature)."""

    in_ptr: np.ndarray
    in_idx: np.ndarray
    no_loss_prr: np.ndarray  # float64 [1, n, n]
    no_ge: GEArrays
    flood_diameter: int
    rx_mw: np.ndarray  # float64 [n, n] received power from the positions (capture.link_power_mw)


_STATIC: weakref.WeakKeyDictionary[Topology, _Static] = weakref.WeakKeyDictionary()


def _static(topology: Topology) -> _Static:
    hit = _STATIC.get(topology)
    if hit is None:
        n = topology.n_nodes
        ptr, idx = topology.in_csr
        e = np.zeros(0, dtype=np.int64)
        f = np.zeros(0, dtype=np.float64)
        ge = GEArrays(np.full((n, n), -1, dtype=np.int64), e, e, f, f, f, f,
                      np.zeros(0, dtype=np.bool_))
        hops = topology.hop_matrix()
        hit = _Static(np.array(ptr), np.array(idx), np.array(topology.prr)[None, :, :].copy(), ge,
                      max(1, int(hops.max())), link_power_mw(topology))
        _STATIC[topology] = hit
    return hit


def _no_loss_view(topology: Topology, round_nos: np.ndarray) -> RoundLoss:
    st = _static(topology)
    return RoundLoss(round_nos, st.no_loss_prr, np.zeros(round_nos.size, dtype=np.int64),
                     np.ones(topology.n_nodes, dtype=bool), st.no_ge)


def _check_sources(topology: Topology, sources: np.ndarray) -> np.ndarray:
    src = np.asarray(sources)
    if src.ndim != 1 or src.size == 0:
        raise ValueError(f"sources must be a non-empty 1-d array of node indices, got shape {src.shape}")
    if not np.issubdtype(src.dtype, np.integer):
        raise ValueError(f"sources must hold integers (topology node indices), got {src.dtype}")
    if src.min() < 0 or src.max() >= topology.n_nodes:
        raise ValueError(f"sources must be topology node indices in 0..{topology.n_nodes - 1}, "
                         f"got {int(src.min())}..{int(src.max())} (map device ids with device_nodes)")
    return src.astype(np.int64)


def resolve_batch_deferred(
    protocol: str,
    topology: Topology,
    sources: Sequence[np.ndarray],
    round_nos: Sequence[int],
    loss: LossModel | None = None,
    seed: int = 0,
    alive: np.ndarray | None = None,
    payload_bytes: int = 100,
    phy: str = "2M",
    n_tx: int = 3,
    tx_prob: float = 0.5,
    n_slots: int | None = None,
    final_tx: int = 2,
    idle_off: int = 8,
    capture: CaptureModel = DEFAULT_CAPTURE,
    rx_power_dbm: np.ndarray | None = None,
    smart_shutdown: bool = True,
    resync_after: int = RESYNC_AFTER_SLOTS,
) -> tuple[list[AirResult], Callable[[], None]]:
    """Resolve consecutive rounds ``round_nos`` (strictly increasing) in one call.

    ``sources[i]``: topology node of each packet of round ``round_nos[i]``. ``alive``:
    bool [n_nodes] (default all), combined with the loss model's node-down set; the loss
    configuration is the same for every round of the batch (jam windows still apply per
    round). ``n_slots`` overrides the slots per round (Mixer: ``max(3G, 150)``) or per flood
    (Glossy: ``diameter + 2 n_tx``). ``tx_prob``: Mixer's transmit probability, ``final_tx``: Mixer's
    transmissions after a node learns the round is complete, ``idle_off``: silent slots
    after which a full-rank Mixer node turns off (these three: ``mixer`` only); ``n_tx``:
    Glossy's transmissions per node and flood. ``mixer-coordinated`` only: ``capture`` (the
    threshold), ``rx_power_dbm`` (float [n, n] received power of a at b, dBm; default from the
    positions, :func:`~protocol.air.radio.capture.link_power_mw`), ``smart_shutdown`` (mode 2;
    False: nodes stay on all round), ``resync_after`` (silent synced listening slots before a
    sync loss; 0: never).

    Returns the rounds' results and a function that commits the Gilbert–Elliott states after
    them to ``loss`` (the one side effect): a caller that resolves ahead of time (the engine
    while the devices compute) calls it only if the results are used, and only while
    ``loss`` has not changed since (``LossModel.revision``).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use 'mixer', 'mixer-coordinated' or 'glossy'")
    rounds = np.asarray(list(round_nos), dtype=np.int64)
    if len(sources) != rounds.size:
        raise ValueError(f"got {len(sources)} source arrays for {rounds.size} rounds")
    if rounds.size == 0:
        return [], _nothing
    if not 0.0 < tx_prob <= 1.0:
        raise ValueError(f"tx_prob must lie in (0, 1], got {tx_prob}")
    if n_tx < 1:
        raise ValueError(f"n_tx must be >= 1, got {n_tx}")
    if n_slots is not None and n_slots < 1:
        raise ValueError(f"n_slots must be >= 1, got {n_slots}")
    if resync_after < 0:
        raise ValueError(f"resync_after must be >= 0 (0: never), got {resync_after}")
    n = topology.n_nodes
    if alive is None:
        alive_arr = np.ones(n, dtype=np.bool_)
    else:
        alive_arr = np.asarray(alive, dtype=np.bool_)
        if alive_arr.shape != (n,):
            raise ValueError(f"alive must be bool [{n}], got shape {alive_arr.shape}")
    if loss is not None and loss.topology is not topology:
        if loss.topology.n_nodes != n or not np.array_equal(loss.topology.prr, topology.prr):
            raise ValueError("the loss model was built for another topology")
    srcs = [_check_sources(topology, s) for s in sources]
    view = _no_loss_view(topology, rounds) if loss is None else loss.round_view(rounds)
    alive_eff = alive_arr & view.node_up
    g = np.array([s.size for s in srcs], dtype=np.int64)
    g_ptr = np.zeros(rounds.size + 1, dtype=np.int64)
    g_ptr[1:] = np.cumsum(g)
    src_flat = np.concatenate(srcs)
    d_ptr = np.zeros(rounds.size + 1, dtype=np.int64)
    d_ptr[1:] = np.cumsum(g * n)
    decoded_flat = np.zeros(int(d_ptr[-1]), dtype=np.bool_)
    counts = np.zeros((rounds.size, 5, n), dtype=np.int32)
    full_rank = np.zeros((rounds.size, n), dtype=np.int32)
    completion = np.zeros(rounds.size, dtype=np.int32)
    code = _PROTOCOL_CODE[protocol]
    seeds = np.array([stream_seed(seed, r, code) for r in rounds.tolist()], dtype=np.uint64)
    st = _static(topology)
    in_ptr, in_idx = st.in_ptr, st.in_idx
    ge = view.ge
    ge_bad = ge.bad.copy()
    first_rx = None
    rx_mw = st.rx_mw if rx_power_dbm is None else check_power(topology, rx_power_dbm)
    if protocol in ("mixer", "mixer-coordinated"):
        slots = np.array([n_slots or timing.mixer_slots(int(x)) for x in g], dtype=np.int64)
        mixer_batch_kernel(in_ptr, in_idx, view.prr_stack, view.round_index, ge.index, ge_bad,
                           ge.p_gb, ge.r_bg, ge.loss_good, ge.loss_bad, alive_eff,
                           int(topology.initiator), src_flat, g_ptr, slots, seeds, float(tx_prob),
                           int(final_tx), int(idle_off), int(protocol == "mixer-coordinated"),
                           rx_mw, float(capture.ratio), int(smart_shutdown), int(resync_after),
                           _DEBRUIJN_TABLE, decoded_flat, d_ptr, counts, full_rank, completion)
        phy_bytes = [timing.phy_payload_bytes(int(x), payload_bytes) for x in g]
    else:
        flood = n_slots or timing.glossy_flood_slots(st.flood_diameter, n_tx)
        slots = g * flood
        first_rx = np.zeros((int(g_ptr[-1]), n), dtype=np.int64)
        glossy_batch_kernel(in_ptr, in_idx, view.prr_stack, view.round_index, ge.index, ge_bad,
                            ge.p_gb, ge.r_bg, ge.loss_good, ge.loss_bad, alive_eff,
                            src_flat, g_ptr, int(flood), int(n_tx), seeds,
                            decoded_flat, d_ptr, counts, full_rank, completion, first_rx)
        phy_bytes = [GLOSSY_HEADER_BYTES + payload_bytes] * rounds.size
    for arr in (decoded_flat, counts, full_rank):
        arr.setflags(write=False)
    if first_rx is not None:
        first_rx.setflags(write=False)
    out: list[AirResult] = []
    for i in range(rounds.size):
        air = timing.air_time_s(phy_bytes[i], phy)
        dec = decoded_flat[d_ptr[i]:d_ptr[i + 1]].reshape(n, int(g[i]))
        fr = None if first_rx is None else first_rx[g_ptr[i]:g_ptr[i + 1]]
        out.append(AirResult(
            protocol=protocol, round_no=int(rounds[i]), decoded=dec,
            tx_slots=counts[i, 0], rx_slots=counts[i, 1], rx_ok_slots=counts[i, 2],
            off_slots=counts[i, 3], full_rank_slot=full_rank[i], n_slots=int(slots[i]),
            slot_s=air + timing.SLOT_GUARD_S, air_s=air, completion_slot=int(completion[i]),
            first_rx_slot=fr, rx_listen_slots=counts[i, 4],
        ))
    if loss is None:
        return out, _nothing
    ge_bad.setflags(write=False)
    return out, lambda: loss.commit(view, ge_bad)


def _nothing() -> None:
    """The commit of a batch that changes no loss state."""


def _committed(resolve_deferred: Callable[_P, tuple[list[AirResult], Callable[[], None]]]
               ) -> Callable[_P, list[AirResult]]:
    def resolve_batch(*args: _P.args, **kwargs: _P.kwargs) -> list[AirResult]:
        airs, commit = resolve_deferred(*args, **kwargs)
        commit()
        return airs

    resolve_batch.__doc__ = (
        "Resolve consecutive rounds ``round_nos`` (strictly increasing) in one call and commit "
        "the Gilbert–Elliott states to ``loss`` (the arguments: :func:`resolve_batch_deferred`).")
    return resolve_batch


#: :func:`resolve_batch_deferred` with the Gilbert–Elliott states committed at once: the same
#: arguments (checked by the type checker through the ParamSpec), a list of results.
resolve_batch = _committed(resolve_batch_deferred)


def resolve(
    protocol: str,
    topology: Topology,
    sources: np.ndarray,
    round_no: int,
    loss: LossModel | None = None,
    seed: int = 0,
    alive: np.ndarray | None = None,
    payload_bytes: int = 100,
    phy: str = "2M",
    n_tx: int = 3,
    tx_prob: float = 0.5,
    n_slots: int | None = None,
    final_tx: int = 2,
    idle_off: int = 8,
    capture: CaptureModel = DEFAULT_CAPTURE,
    rx_power_dbm: np.ndarray | None = None,
    smart_shutdown: bool = True,
    resync_after: int = RESYNC_AFTER_SLOTS,
) -> AirResult:
    """Resolve one round (see :func:`resolve_batch` for the arguments)."""
    return resolve_batch(protocol, topology, [sources], [round_no], loss, seed, alive,
                         payload_bytes, phy, n_tx, tx_prob, n_slots, final_tx, idle_off,
                         capture, rx_power_dbm, smart_shutdown, resync_after)[0]
