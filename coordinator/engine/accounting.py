"""The air's bookkeeping: per-device totals, and the rounds of an exchange accounted at once.

:func:`account_rounds` adds consecutive resolved rounds to :class:`Totals` and
:class:`~coordinator.engine.traffic.Traffic` with whole-array operations over the rounds
(energy per round and device as one [R, N] computation, running totals with
``np.add.accumulate``), instead of a dozen small numpy calls per round. It is bitwise the
round-by-round accounting: every per-round term is elementwise (the same IEEE operations on
the same operands, whatever the array's shape), and ``np.add.accumulate`` adds row after row
in order, exactly as ``total += row`` once per round did. It also returns each round's
:class:`RoundTally` (the totals right after that round), so a round's record shows the run as
it stood at that round, not at the end of its exchange.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from coordinator.engine.outcome import RoundOutcome
from coordinator.engine.traffic import Traffic, frame_bytes
from protocol.air.energy import EnergyConstants, node_energy_mj


@dataclass(frozen=True)
class NodeTotals:
    """One device's totals over the run (energy in mJ, times in seconds)."""

    energy_mj: float
    energy_parts_mj: dict[str, float]
    radio_on_s: float
    compute_s_modeled: float
    tx_slots: int
    rx_packets: int
    lost_packets: int


class Totals:
    """Per-device totals kept as arrays (one entry per device), summed round by round."""

    PARTS = ("cpu_mj", "tx_mj", "rx_mj", "low_power_mj")

    def __init__(self, n_devices: int) -> None:
        self.n = n_devices
        self.parts = {k: np.zeros(n_devices) for k in self.PARTS}
        self.radio_on_s = np.zeros(n_devices)
        self.compute_s_modeled = np.zeros(n_devices)
        self.tx_slots = np.zeros(n_devices, dtype=np.int64)
        self.rx_packets = np.zeros(n_devices, dtype=np.int64)
        self.lost_packets = np.zeros(n_devices, dtype=np.int64)

    @property
    def energy_mj(self) -> np.ndarray:
        return _energy_sum([self.parts[k] for k in self.PARTS])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, device: int) -> NodeTotals:
        return NodeTotals(
            energy_mj=float(self.energy_mj[device]),
            energy_parts_mj={k: float(v[device]) for k, v in self.parts.items()},
            radio_on_s=float(self.radio_on_s[device]),
            compute_s_modeled=float(self.compute_s_modeled[device]),
            tx_slots=int(self.tx_slots[device]),
            rx_packets=int(self.rx_packets[device]),
            lost_packets=int(self.lost_packets[device]),
        )

    def __iter__(self) -> Iterator[NodeTotals]:
        return (self[d] for d in range(self.n))


@dataclass(frozen=True, eq=False)
class RoundTally:
    """One round as the run's records show it: its deliveries and the totals right after it."""

    round_no: int
    virtual_time_s: float  # the run's virtual time at the end of the round, s
    received: np.ndarray  # int64 [N]: packets of other live sources the device decoded
    expected: np.ndarray  # int64 [N]: packets of other live sources in the round
    energy_mj: np.ndarray  # float64 [N]: each device's energy so far, mJ
    rx_packets: np.ndarray  # int64 [N], so far
    lost_packets: np.ndarray  # int64 [N], so far
    tx_slots: np.ndarray  # int64 [N], so far


def _energy_sum(parts: Sequence[np.ndarray]) -> np.ndarray:
    """``0 + p0 + p1 + ...`` in that order (the order every energy total is summed in)."""
    total: np.ndarray = np.asarray(0 + parts[0])
    for p in parts[1:]:
        total = total + p
    return total


def _running(total: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """[R, ...]: ``total`` after each of ``rows`` was added in turn (``total`` updated)."""
    stacked = np.concatenate([total[None], rows.astype(total.dtype, copy=False)])
    running = np.add.accumulate(stacked, axis=0)[1:]
    total[...] = running[-1]
    return running


def foreign_counts(outcomes: Sequence[RoundOutcome], device_nodes: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """int64 [R, N] twice: per round and device, packets of other live sources it decoded,
    and how many such packets the round had."""
    n = len(device_nodes)
    me = np.arange(n)[:, None]
    decoded, foreign = [], []
    for o in outcomes:
        source = o.packets.source.astype(np.int64)
        foreign_g = (source[None, :] != me) & o.alive_devices[source][None, :]  # [N, G]
        foreign.append(foreign_g)
        decoded.append(o.air.decoded[device_nodes] & foreign_g)
    widths = np.array([f.shape[1] for f in foreign], dtype=np.int64)
    ends = np.cumsum(widths)
    starts = ends - widths

    def per_round(masks: list[np.ndarray]) -> np.ndarray:
        flat = np.concatenate(masks, axis=1) if masks else np.zeros((n, 0), dtype=bool)
        cum = np.zeros((n, flat.shape[1] + 1), dtype=np.int64)
        np.cumsum(flat, axis=1, out=cum[:, 1:])
        return np.asarray((cum[:, ends] - cum[:, starts]).T)

    return per_round(decoded), per_round(foreign)


def account_rounds(outcomes: Sequence[RoundOutcome], compute_s: np.ndarray, totals: Totals,
                   traffic: Traffic, device_nodes: np.ndarray, energy: EnergyConstants,
                   virtual_time_s: float) -> tuple[list[RoundTally], float]:
    """Add consecutive rounds to ``totals`` and ``traffic``; returns each round's tally and
    the virtual time after the last (s).

    ``compute_s``: float [R, N], each device's modeled MCU seconds in each round. Only live
    devices (``RoundOutcome.alive_devices``) are charged.
    """
    if not outcomes:
        return [], virtual_time_s
    nodes = device_nodes
    airs = [o.air for o in outcomes]

    def rows(name: str) -> np.ndarray:
        return np.stack([getattr(a, name)[nodes] for a in airs])

    tx, rx, off, rx_ok = rows("tx_slots"), rows("rx_slots"), rows("off_slots"), rows("rx_ok_slots")
    listen = None if any(a.rx_listen_slots is None for a in airs) else rows("rx_listen_slots")
    slot_s = np.array([[a.slot_s] for a in airs], dtype=np.float64)  # [R, 1]
    air_s = np.array([[a.air_s] for a in airs], dtype=np.float64)
    window_s = np.array([[o.compute_s] for o in outcomes], dtype=np.float64)
    parts = node_energy_mj(tx_slots=tx, rx_slots=rx, off_slots=off, slot_s=slot_s, air_s=air_s,
                           cpu_s=compute_s, idle_s=np.maximum(0.0, window_s - compute_s),
                           consts=energy, rx_ok_slots=rx_ok, rx_listen_slots=listen)
    live_b = np.stack([o.alive_devices for o in outcomes])
    live, live_i = live_b.astype(np.float64), live_b.astype(np.int64)
    charged = {k: np.broadcast_to(np.asarray(getattr(parts, k), dtype=np.float64), live.shape) * live
               for k in Totals.PARTS}
    running_parts = [_running(totals.parts[k], charged[k]) for k in Totals.PARTS]
    _running(totals.radio_on_s, (tx + rx) * slot_s * live)
    _running(totals.compute_s_modeled, compute_s * live)
    received, expected = foreign_counts(outcomes, nodes)
    running_tx = _running(totals.tx_slots, tx * live_i)
    running_rx = _running(totals.rx_packets, received * live_i)
    running_lost = _running(totals.lost_packets, (expected - received) * live_i)
    running_energy = _energy_sum(running_parts)
    round_energy = _energy_sum([np.broadcast_to(np.asarray(getattr(parts, k), dtype=np.float64), live.shape)
                                for k in Totals.PARTS]) * live
    tallies = []
    for i, o in enumerate(outcomes):
        virtual_time_s += o.latency_s
        tallies.append(RoundTally(o.round_no, virtual_time_s, received[i], expected[i],
                                  running_energy[i], running_rx[i], running_lost[i], running_tx[i]))
    traffic.add_rounds(
        [o.packets.kind if o.packets.kind is not None else np.full(o.packets.n_packets, -1, dtype=np.int8)
         for o in outcomes],
        np.array([a.n_slots for a in airs], dtype=np.int64),
        np.array([o.latency_s for o in outcomes], dtype=np.float64),
        np.array([int(a.tx_slots.sum()) for a in airs], dtype=np.int64),
        np.array([frame_bytes(a.air_s) for a in airs], dtype=np.int64),
        round_energy)
    return tallies, virtual_time_s
