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

from coordinator.engine.accounting import RoundTally, Totals, account_rounds, foreign_counts
from coordinator.engine.outcome import RoundOutcome
from coordinator.engine.records import AirRoundRecord
from coordinator.engine.traffic import Traffic, frame_bytes
from protocol.air.energy import EnergyConstants
from protocol.air.timing import compute_window_s
from protocol.air.loss import LossModel
from protocol.air.radio.firmware_round import firmware_round
from protocol.air.radio.resolve import AirResult, resolve_batch_deferred
from protocol.stream.schedule import PACKET_PAYLOAD_BYTES, RoundPackets, Stream, round_packets
from protocol.air.topology import Topology


def _message_ok(decoded: np.ndarray, packet_ids: tuple[int, ...]) -> np.ndarray:
    """bool [rows]: every packet of a message decoded (False for a message with no packets)."""
    if not packet_ids:
        return np.zeros(decoded.shape[0], dtype=bool)
    return np.asarray(decoded[:, list(packet_ids)].all(axis=1), dtype=bool)


@dataclass(frozen=True, eq=False)
class _Radio:
    """What the radio did in consecutive rounds, for devices ``alive_devices``, with the loss
    model at ``revision``; ``commit`` stores its Gilbert–Elliott states (call it once, when
    the results are used)."""

    rounds: list[int]
    alive_devices: np.ndarray
    revision: int
    packets: list[RoundPackets]
    airs: list[AirResult]
    commit: Callable[[], None]


class Air:
    """Resolves rounds for a stream over a topology with a (mutable) loss model.

    ``n_classes``: the floats of a device's vector in a logit slot (``RunConfig.logit_width``:
    C, or the ridge head's Gram block), which sizes the logit packets and the RX arrays.
    """

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
        self._tallies: dict[int, RoundTally] = {}
        #: Called with a round number right before that round is resolved.
        self.before_round: Callable[[int], None] | None = None
        #: Whether timed events wait for :attr:`before_round` (None: assume they may).
        self.events_pending: Callable[[], bool] | None = None
        self.next_round = 0  # first round not yet resolved
        #: Resolve the radio while the devices compute (:meth:`speculate`); False: only when
        #: the TXs are in (the same results, later).
        self.speculative = True
        self._speculation: _Radio | None = None
        self.speculation_hits = 0  # exchanges whose radio was resolved ahead of time and used
        self.speculation_misses = 0  # ... resolved ahead, then dropped (a device silent, a fault)
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
        self._speculation = None
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
        self._account([outcome], self._device_compute_s(outcome.round_no)[None, :])
        self.next_round = outcome.round_no + 1

    def resolve_until(self, stop_round: int, alive_devices: np.ndarray) -> list[RoundOutcome]:
        """Resolve every round below ``stop_round`` not yet resolved, in order.

        Rounds go to the radio in one batch (bitwise the same as one at a time: every round
        has its own seed and the Gilbert–Elliott states carry over in order) unless timed
        scenario events wait: those fire between rounds, so each round is then resolved alone.
        """
        stop = min(stop_round, self.stream.n_rounds)
        if not self._events_wait():
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
        for r in [r for r in self._tallies if r < round_no]:
            del self._tallies[r]

    def speculate(self, stop_round: int, alive_devices: np.ndarray) -> None:
        """Resolve the radio part of the rounds below ``stop_round`` ahead of time, assuming
        ``alive_devices`` will answer (the engine calls this right after its ROUNDs left, so
        the radio runs while the devices compute). Nothing changes until :meth:`resolve_until`
        asks for exactly these rounds with the same devices and an unchanged loss model
        (``LossModel.revision``); otherwise the guess is dropped and the rounds are resolved
        then. The guess is the same computation on the same inputs, so using it is bitwise
        resolving then. Not with timed scenario events (they fire between rounds)."""
        self._speculation = None
        if not self.speculative or self._events_wait():
            return
        rounds = list(range(self.next_round, min(stop_round, self.stream.n_rounds)))
        if rounds:
            self._speculation = self._radio(rounds, alive_devices)

    def _events_wait(self) -> bool:
        return self.before_round is not None and (self.events_pending is None or self.events_pending())

    def _radio(self, rounds: list[int], alive_devices: np.ndarray) -> _Radio:
        """The radio's results for ``rounds`` (uncommitted: see :class:`_Radio`)."""
        packets = [round_packets(self.stream, r, self.series_length, self.n_classes, initiator=0)
                   for r in rounds]
        alive = self.loss.node_up_mask().copy()
        alive[self.device_nodes[~alive_devices]] = False
        revision = self.loss.revision
        airs, commit = resolve_batch_deferred(
            self.protocol,
            self.topology,
            [self.device_nodes[p.source.astype(np.int64)].astype(np.int16) for p in packets],
            rounds,
            loss=self.loss,
            seed=self.seed,
            alive=alive,
            payload_bytes=self.payload_bytes,
        )
        return _Radio(rounds, alive_devices.copy(), revision, packets, airs, commit)

    def _take_speculation(self, rounds: list[int], alive_devices: np.ndarray) -> _Radio | None:
        spec, self._speculation = self._speculation, None
        if (spec is not None and spec.rounds == rounds and spec.revision == self.loss.revision
                and np.array_equal(spec.alive_devices, alive_devices)):
            self.speculation_hits += 1
            return spec
        if spec is not None:
            self.speculation_misses += 1
        return None

    def _resolve_rounds(self, rounds: list[int], alive_devices: np.ndarray) -> list[RoundOutcome]:
        """Resolve consecutive ``rounds`` (from ``next_round`` on), account them, cache them."""
        if not rounds:
            return []
        radio = self._take_speculation(rounds, alive_devices) or self._radio(rounds, alive_devices)
        radio.commit()
        packets, airs = radio.packets, radio.airs
        out: list[RoundOutcome] = []
        work = np.stack([self._device_compute_s(r) for r in rounds])  # [R, N] modeled MCU s
        for round_no, round_packets_, air, device_s in zip(rounds, packets, airs, work):
            compute_s = self._compute_window_s(device_s, alive_devices)
            latency_s = compute_s + air.n_slots * air.slot_s
            outcome = self.make_outcome(round_no, round_packets_, air, alive_devices.copy(),
                                        compute_s, latency_s)
            self._cache[round_no] = outcome
            out.append(outcome)
        self._account(out, work)
        self.next_round = rounds[-1] + 1
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

    def _compute_window_s(self, per_device: np.ndarray, alive_devices: np.ndarray) -> float:
        """The round's compute window: the slowest device's modeled work for it
        (``per_device``: :meth:`_device_compute_s` of the round)."""
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

    def _account(self, outcomes: list[RoundOutcome], compute_s: np.ndarray) -> None:
        """Add consecutive rounds' energy, radio-on time and packet counts to every live
        device (``compute_s``: float [R, N], :meth:`_device_compute_s` of each round), all
        at once and bitwise as one round at a time (coordinator/engine/accounting.py)."""
        tallies, self.virtual_time_s = account_rounds(
            outcomes, compute_s, self.totals, self.traffic, self.device_nodes, self.energy,
            self.virtual_time_s)
        for tally in tallies:
            self._tallies[tally.round_no] = tally

    def tally(self, round_no: int) -> RoundTally | None:
        """The run as it stood right after round ``round_no`` (None once forgotten, or for
        rounds resolved before a restart)."""
        return self._tallies.get(round_no)

    def round_record(self, outcome: RoundOutcome) -> AirRoundRecord:
        """The air's part of a round's record (what the monitor and the report read): the
        virtual time at the end of that round."""
        air = outcome.air
        tally = self.tally(outcome.round_no)
        if tally is None:
            r, e = foreign_counts([outcome], self.device_nodes)
            received, expected, virtual_time_s = r[0], e[0], self.virtual_time_s
        else:
            received, expected, virtual_time_s = tally.received, tally.expected, tally.virtual_time_s
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
            virtual_time_s=float(virtual_time_s),
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
