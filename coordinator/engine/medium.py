"""The air: one realization per round, who received which payload, time and energy.

Each round is resolved exactly once, in increasing order, when the first exchange that touches
it has its TXs (so a fault injected now takes effect from the first round not yet resolved);
the realization is cached and reused for every payload of that round (series and partial
logits may travel in the same round but be asked for in different exchanges in batch mode).
The air does not depend on packet contents, only on who transmits: a device's liveness for a
round is taken when the round is resolved.

The stream's mode (protocol/stream/schedule.py, docs/modes.md) fixes each round's packets: series
and partial logits (rocknet), plus the owner's ``g`` (private labels), or a slice of a sync's
gradient messages (data-parallel). :attr:`Air.traffic` splits what went over the air by kind
(calibration, training, evaluation) for the per-sample comparison of the modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from coordinator.engine.records import AirRoundRecord
from coordinator.engine.traffic import Traffic, frame_bytes
from protocol.air.energy import EnergyConstants, node_energy_mj
from protocol.air.timing import compute_window_s
from protocol.air.loss import LossModel
from protocol.air.radio.firmware_round import firmware_round
from protocol.air.radio.resolve import AirResult, resolve_batch
from protocol.stream.schedule import PACKET_PAYLOAD_BYTES, RoundPackets, Stream, round_packets
from protocol.air.topology import Topology


@dataclass(frozen=True)
class RoundOutcome:
    """A resolved round: its packets, the radio result and its modeled timing."""

    round_no: int
    packets: RoundPackets
    air: AirResult
    alive_devices: np.ndarray  # bool [N]
    compute_s: float  # modeled compute window (slowest device), seconds
    latency_s: float  # compute window + slots x slot length, seconds
    series_ok: np.ndarray  # bool [N]: device decoded every packet of the round's series
    logits_ok: np.ndarray  # bool [N receivers, N sources]: ... of that source's partial logits
    grad_ok: np.ndarray | None = None  # bool [N]: ... of the owner's g (private labels)
    # bool [N receivers, N sources]: ... of that source's part of a sync in this round
    # (True where the source has no packet in the round; data-parallel)
    sync_ok: np.ndarray | None = None


def _message_ok(decoded: np.ndarray, packet_ids: tuple[int, ...]) -> np.ndarray:
    """bool [rows]: every packet of a message decoded (False for a message with no packets)."""
    if not packet_ids:
        return np.zeros(decoded.shape[0], dtype=bool)
    return np.asarray(decoded[:, list(packet_ids)].all(axis=1), dtype=bool)


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
        return sum(self.parts.values())  # type: ignore[return-value]

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

    def __iter__(self):  # type: ignore[no-untyped-def]
        return (self[d] for d in range(self.n))


class Air:
    """Resolves rounds for a stream over a topology with a (mutable) loss model."""

    def __init__(
        self,
        stream: Stream,
        topology: Topology,
        loss: LossModel,
        protocol: str,
        seed: int,
        series_length: int,
        n_classes: int,
        energy: EnergyConstants | None = None,
        profile: str = "tuned",
    ) -> None:
        self.stream = stream
        self.topology = topology
        self.loss = loss
        self.protocol = protocol
        self.seed = seed
        self.series_length = series_length
        self.n_classes = n_classes
        self.energy = energy or EnergyConstants()
        self.fixed_window = profile == "firmware"  # the firmware's fixed compute window
        #: Application bytes per radio packet: the firmware's choice under its message sizes.
        self.payload_bytes = (
            firmware_round(stream.config.n_devices, series_length, n_classes).payload_bytes
            if stream.config.firmware_messages else PACKET_PAYLOAD_BYTES)
        self.device_nodes = np.asarray(topology.device_nodes, dtype=np.int64)
        self.n_devices = len(self.device_nodes)
        self._cache: dict[int, RoundOutcome] = {}
        #: Called with a round number right before that round is resolved.
        self.before_round: Callable[[int], None] | None = None
        #: Whether timed events wait for :attr:`before_round` (None: assume they may).
        self.events_pending: Callable[[], bool] | None = None
        self.next_round = 0  # first round not yet resolved
        self.totals = Totals(self.n_devices)
        self.virtual_time_s = 0.0
        # Modeled per-device MCU time per sample and per optimizer step (reported by nodes).
        self.sample_s = np.zeros(self.n_devices)
        self.step_s = np.zeros(self.n_devices)
        #: What went over the air, by kind (not in coordinator checkpoints: after a resume it
        #: counts from the resumed round on).
        self.traffic = Traffic(self.n_devices)

    def outcome(self, round_no: int) -> RoundOutcome | None:
        return self._cache.get(round_no)

    def cached(self) -> list[RoundOutcome]:
        """Resolved rounds a later exchange may still need, in round order (checkpoints)."""
        return [self._cache[r] for r in sorted(self._cache)]

    def restore(self, outcomes: list[RoundOutcome], totals: Totals, next_round: int,
                virtual_time_s: float, sample_s: np.ndarray, step_s: np.ndarray) -> None:
        """Put back what a checkpoint saved (see :meth:`cached`)."""
        self._cache = {o.round_no: o for o in outcomes}
        self.totals = totals
        self.next_round = next_round
        self.virtual_time_s = virtual_time_s
        self.sample_s = sample_s
        self.step_s = step_s

    def replay(self, outcome: RoundOutcome) -> None:
        """Take back a round resolved before a restart (the coordinator's replay log): cached
        and accounted exactly as :meth:`resolve_until` did, with the same ``sample_s`` and
        ``step_s``, so the totals come out bitwise the same."""
        self._cache[outcome.round_no] = outcome
        self._account(outcome)
        self.next_round = outcome.round_no + 1

    def resolve_until(self, stop_round: int, alive_devices: np.ndarray) -> list[RoundOutcome]:
        """Resolve every round below ``stop_round`` not yet resolved, in order.

        Rounds go to the radio in one batch (bitwise the same as one at a time: every round
        has its own seed and the Gilbert–Elliott states carry over in order) unless timed
        scenario events wait: those fire between rounds, so each round is then resolved alone.
        """
        stop = min(stop_round, self.stream.n_rounds)
        events = self.before_round is not None and (self.events_pending is None or self.events_pending())
        if not events:
            return self._resolve_rounds(list(range(self.next_round, stop)), alive_devices)
        new: list[RoundOutcome] = []
        while self.next_round < stop:
            assert self.before_round is not None
            self.before_round(self.next_round)  # timed scenario events, exactly per round
            new += self._resolve_rounds([self.next_round], alive_devices)
        return new

    def forget_before(self, round_no: int) -> None:
        """Drop cached rounds no exchange can ask for again."""
        for r in [r for r in self._cache if r < round_no]:
            del self._cache[r]

    def _resolve_rounds(self, rounds: list[int], alive_devices: np.ndarray) -> list[RoundOutcome]:
        """Resolve consecutive ``rounds`` (from ``next_round`` on), account them, cache them."""
        if not rounds:
            return []
        packets = [round_packets(self.stream, r, self.series_length, self.n_classes, initiator=0)
                   for r in rounds]
        alive = self.loss.node_up_mask().copy()
        alive[self.device_nodes[~alive_devices]] = False
        airs = resolve_batch(
            self.protocol,
            self.topology,
            [self.device_nodes[p.source.astype(np.int64)].astype(np.int16) for p in packets],
            rounds,
            loss=self.loss,
            seed=self.seed,
            alive=alive,
            payload_bytes=self.payload_bytes,
        )
        out: list[RoundOutcome] = []
        for round_no, round_packets_, air in zip(rounds, packets, airs):
            compute_s = self._compute_window_s(round_no, alive_devices)
            latency_s = compute_s + air.n_slots * air.slot_s
            outcome = self.make_outcome(round_no, round_packets_, air, alive_devices.copy(),
                                        compute_s, latency_s)
            self._cache[round_no] = outcome
            self._account(outcome)
            self.next_round = round_no + 1
            out.append(outcome)
        return out

    def make_outcome(self, round_no: int, packets: RoundPackets, air: AirResult,
                     alive_devices: np.ndarray, compute_s: float, latency_s: float) -> RoundOutcome:
        """A :class:`RoundOutcome` with its per-message delivery masks."""
        at_devices = air.decoded[self.device_nodes]  # [N, G]
        series_ok = _message_ok(at_devices, packets.series_packets)
        lengths = {len(ids) for ids in packets.logits_packets}
        if len(lengths) == 1 and 0 not in lengths:  # every source k packets: one gather
            table = np.asarray(packets.logits_packets, dtype=np.int64)  # [sources, k]
            logits_ok: np.ndarray = np.asarray(at_devices[:, table].all(axis=2), dtype=bool)
        elif packets.logits_packets:
            logits_ok = np.stack([_message_ok(at_devices, ids) for ids in packets.logits_packets], axis=1)
        else:
            logits_ok = np.zeros((self.n_devices, 0), dtype=bool)
        grad_ok = _message_ok(at_devices, packets.grad_packets)
        sync_ok = np.ones((self.n_devices, self.n_devices), dtype=bool)
        for source, ids in enumerate(packets.sync_packets):
            if ids:
                sync_ok[:, source] = _message_ok(at_devices, ids)
        return RoundOutcome(round_no, packets, air, alive_devices, compute_s, latency_s,
                            series_ok, logits_ok, grad_ok, sync_ok)

    def _compute_window_s(self, round_no: int, alive_devices: np.ndarray) -> float:
        """The round's compute window: the slowest device's modeled work for it."""
        per_device = self._device_compute_s(round_no)
        live = per_device[alive_devices] if alive_devices.any() else per_device
        modeled = float(live.max()) if live.size else 0.0
        return compute_window_s(self.n_devices, self.n_classes, modeled) if self.fixed_window else modeled

    def _device_compute_s(self, round_no: int) -> np.ndarray:
        """Per device, modeled MCU seconds of the work that round ``round_no`` waits for."""
        work = np.zeros(self.n_devices)
        stream = self.stream
        if stream.data_parallel:
            sync = stream.sync_of_round(round_no)
            if sync is not None and round_no == sync.first_round:
                # every sample processed locally since the last sync, on the whole model
                work += stream.local_counts(sync) * self.sample_s
        elif stream.series_item(round_no) is not None:
            work += self.sample_s  # transform (+ partial logits) of the series just received
        if stream.step_item(round_no) is not None:
            work += self.step_s
        return work

    def _account(self, outcome: RoundOutcome) -> None:
        """Add the round's energy, radio-on time and packet counts to every live device."""
        air = outcome.air
        self.virtual_time_s += outcome.latency_s
        compute = self._device_compute_s(outcome.round_no)
        nodes = self.device_nodes
        parts = node_energy_mj(
            tx_slots=air.tx_slots[nodes],
            rx_slots=air.rx_slots[nodes],
            off_slots=air.off_slots[nodes],
            slot_s=air.slot_s,
            air_s=air.air_s,
            cpu_s=compute,
            idle_s=np.maximum(0.0, outcome.compute_s - compute),
            consts=self.energy,
            rx_ok_slots=air.rx_ok_slots[nodes],
            rx_listen_slots=None if air.rx_listen_slots is None else air.rx_listen_slots[nodes],
        ).as_dict()
        received, expected = self._foreign_counts(outcome)
        live = outcome.alive_devices.astype(np.float64)
        t = self.totals
        for key in Totals.PARTS:
            t.parts[key] += np.broadcast_to(np.asarray(parts[key], dtype=np.float64), live.shape) * live
        t.radio_on_s += (air.tx_slots[nodes] + air.rx_slots[nodes]) * air.slot_s * live
        t.compute_s_modeled += compute * live
        live_i = outcome.alive_devices.astype(np.int64)
        t.tx_slots += air.tx_slots[nodes] * live_i
        t.rx_packets += received * live_i
        t.lost_packets += (expected - received) * live_i
        energy = sum(np.broadcast_to(np.asarray(parts[k], dtype=np.float64), live.shape)
                     for k in Totals.PARTS) * live
        kinds = outcome.packets.kind
        if kinds is None:
            kinds = np.full(outcome.packets.n_packets, -1, dtype=np.int8)
        self.traffic.add(
            kinds, int(air.n_slots), outcome.latency_s, int(air.tx_slots.sum()),
            frame_bytes(air.air_s), energy)

    def _foreign_counts(self, outcome: RoundOutcome) -> tuple[np.ndarray, np.ndarray]:
        """Per device: packets of other live sources it decoded, and how many there were."""
        source = outcome.packets.source.astype(np.int64)
        source_alive = outcome.alive_devices[source]  # [G]
        foreign = (source[None, :] != np.arange(self.n_devices)[:, None]) & source_alive[None, :]
        decoded = outcome.air.decoded[self.device_nodes]  # [N, G]
        return (decoded & foreign).sum(axis=1), foreign.sum(axis=1)

    def round_record(self, outcome: RoundOutcome) -> AirRoundRecord:
        """The air's part of a round's record (what the monitor and the report read)."""
        air = outcome.air
        received, expected = self._foreign_counts(outcome)
        decoded_ratio = np.where(expected > 0, received / np.maximum(expected, 1), 1.0).tolist()
        kind, epoch = self._round_kind_epoch(outcome.round_no)
        return AirRoundRecord(
            round_no=outcome.round_no,
            kind=kind,
            epoch=epoch,
            packets=outcome.packets.n_packets,
            slots=int(air.n_slots),
            slot_s=float(air.slot_s),
            latency_s=float(outcome.latency_s),
            virtual_time_s=float(self.virtual_time_s),
            alive=outcome.alive_devices.astype(int).tolist(),
            decoded_ratio=[round(x, 4) for x in decoded_ratio],
            loss=self.loss.describe(),
            bytes_on_air=frame_bytes(air.air_s) * int(air.tx_slots.sum()),
        )

    def _round_kind_epoch(self, round_no: int) -> tuple[str | None, int | None]:
        """The round's leading kind name and its epoch (rocknet: those of its series)."""
        stream = self.stream
        if stream.data_parallel:
            sync = stream.sync_of_round(round_no)
            if sync is None:
                return None, None
            return ["calib", "train", "eval"][sync.kind], int(stream.epoch[sync.local_to - 1])
        if stream.mode == "rocknet":
            item = stream.series_item(round_no)
        else:
            item = next((t for t in (stream.series_item(round_no), stream.logits_item(round_no),
                                     stream.grad_item(round_no)) if t is not None), None)
        if item is None:
            return None, None
        return ["calib", "train", "eval"][int(stream.kind[item])], int(stream.epoch[item])
