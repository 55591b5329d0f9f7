"""One layout strategy per training mode: which round carries which item's series, partial
logits and ``g``, or which sync (see :mod:`protocol.stream.schedule` for the stream itself).

A layout turns the mode-independent items of a run (kinds, optimizer steps, batches) into
:class:`RoundTables`, so the :class:`~protocol.stream.schedule.Stream` answers every
"what travels in round r" question with one table lookup, whatever the mode, and lays out
one round's packets (:meth:`ModeLayout.round_packets`). :data:`LAYOUTS` maps each
:class:`~protocol.stream.training_mode.TrainingMode` to its layout.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from protocol.air.radio.firmware_round import firmware_round
from protocol.stream.packets import (
    DP_MAX_PACKETS_PER_ROUND,
    PRIVATE_SERIES_HEADER_BYTES,
    SERIES_HEADER_BYTES,
    RoundPackets,
    Sync,
    packets_for,
)
from protocol.stream.training_mode import TrainingMode



class _HasDevices(Protocol):
    @property
    def n_devices(self) -> int: ...

    @property
    def firmware_messages(self) -> bool: ...


class Stream(Protocol):
    """What a layout reads of the stream it lays out (``protocol.stream.schedule.Stream``;
    a protocol here, so that layouts need not import the stream that imports them)."""

    @property
    def config(self) -> _HasDevices: ...

    @property
    def kind(self) -> np.ndarray: ...

    @property
    def owner(self) -> np.ndarray: ...

    def series_item(self, round_no: int) -> int | None: ...

    def logits_item(self, round_no: int) -> int | None: ...

    def grad_item(self, round_no: int) -> int | None: ...

    def round_kind(self, round_no: int) -> int | None: ...

    def sync_of_round(self, round_no: int) -> Sync | None: ...

__all__ = [
    "KIND_CALIB",
    "KIND_EVAL",
    "KIND_TRAIN",
    "LAYOUTS",
    "DataParallelLayout",
    "ModeLayout",
    "PrivateLabelsLayout",
    "RocknetLayout",
    "RoundTables",
    "StreamItems",
]

KIND_CALIB = 0
KIND_TRAIN = 1
KIND_EVAL = 2

#: Marks "nothing" in every table below.
NONE = -1


@dataclass(frozen=True, eq=False)
class StreamItems:
    """The mode-independent part of a run's stream that a layout needs."""

    kind: np.ndarray  # int8 [n_items]: KIND_*
    step_after: np.ndarray  # bool [n_items]: optimizer step once this item is learnt from
    batches: tuple[tuple[int, int], ...]  # item ranges [a, b) that never mix kinds
    n_devices: int
    calibrate: bool

    @property
    def n_items(self) -> int:
        return int(self.kind.shape[0])


@dataclass(frozen=True, eq=False)
class RoundTables:
    """Where everything travels. Per item: ``series_round`` (int64, -1: its series never
    travels). Per round (int64 [n_rounds], -1: none): the item whose series, partial logits
    or ``g`` it carries, the item after whose payload the devices step, and the ``KIND_*``
    of what leads the round. ``syncs``: data-parallel syncs in round order."""

    series_round: np.ndarray
    series_item: np.ndarray
    logits_item: np.ndarray
    grad_item: np.ndarray
    step_item: np.ndarray
    kind: np.ndarray
    syncs: tuple[Sync, ...] = ()

    @property
    def n_rounds(self) -> int:
        return int(self.series_item.shape[0])


_ROUND_TABLES = ("series_item", "logits_item", "grad_item", "step_item", "kind")


def _empty_round_tables(n_rounds: int) -> dict[str, np.ndarray]:
    return {name: np.full(n_rounds, NONE, dtype=np.int64) for name in _ROUND_TABLES}


def _round_tables(series_round: np.ndarray, t: dict[str, np.ndarray],
                  syncs: tuple[Sync, ...] = ()) -> RoundTables:
    return RoundTables(series_round=series_round, series_item=t["series_item"],
                       logits_item=t["logits_item"], grad_item=t["grad_item"],
                       step_item=t["step_item"], kind=t["kind"], syncs=syncs)


class ModeLayout(ABC):
    """What one training mode sends in which round."""

    mode: ClassVar[TrainingMode]
    #: Per-item partial logits travel (every non-calibration item).
    carries_logits: ClassVar[bool]
    #: The owner floods ``g`` of every training item.
    carries_grad: ClassVar[bool] = False

    def check_sync_bytes(self, sync_bytes: tuple[int, int] | None) -> None:
        """``ValueError`` if this mode needs sync message sizes it was not given."""

    @abstractmethod
    def lay_out(self, items: StreamItems, sync_bytes: tuple[int, int] | None) -> RoundTables:
        """The round tables of ``items``."""

    @abstractmethod
    def round_packets(self, stream: Stream, round_no: int, series_length: int, n_classes: int,
                      initiator: int) -> RoundPackets:
        """Lay out round ``round_no``'s packets (sizes from series length and class count)."""


class PerItemLayout(ModeLayout):
    """Modes where every item's series and partial logits travel (logits one round after
    the series), optionally followed by the owner's ``g`` one round later."""

    carries_logits = True
    #: Bytes travelling with a series besides its samples.
    series_header_bytes: ClassVar[int]

    @abstractmethod
    def series_rounds(self, items: StreamItems) -> tuple[np.ndarray, int]:
        """int64 [n_items]: the round of each item's series; and the run's round count."""

    def lay_out(self, items: StreamItems, sync_bytes: tuple[int, int] | None) -> RoundTables:
        rounds, n_rounds = self.series_rounds(items)
        t = _empty_round_tables(n_rounds)
        index = np.arange(items.n_items, dtype=np.int64)
        kind = items.kind.astype(np.int64)
        t["series_item"][rounds] = index
        need = items.kind != KIND_CALIB
        t["logits_item"][rounds[need] + 1] = index[need]
        last_payload = rounds + 1  # the step follows the last payload an item needs
        if self.carries_grad:
            train = items.kind == KIND_TRAIN
            t["grad_item"][rounds[train] + 2] = index[train]
            last_payload = rounds + 2
        t["step_item"][last_payload[items.step_after]] = index[items.step_after]
        # The leading kind: the series' if any, else the logits', else the g's.
        for table in ("grad_item", "logits_item", "series_item"):
            carried = t[table] >= 0
            t["kind"][carried] = kind[t[table][carried]]
        return _round_tables(rounds, t)

    def _packets_per_message(self, stream: Stream, series_length: int, n_classes: int
                             ) -> tuple[int, int]:
        """Packets of a series and of one device's partial logits."""
        if stream.config.firmware_messages and self.mode is TrainingMode.ROCKNET:
            fw = firmware_round(stream.config.n_devices, series_length, n_classes)
            return (math.ceil(fw.series_message_bytes / fw.payload_bytes),
                    math.ceil(fw.logits_message_bytes / fw.payload_bytes))
        return packets_for(series_length + self.series_header_bytes), packets_for(4 * n_classes)

    def round_packets(self, stream: Stream, round_no: int, series_length: int, n_classes: int,
                      initiator: int) -> RoundPackets:
        sources = [initiator]
        kinds = [NONE]
        series: tuple[int, ...] = ()
        k_series, k_logits = self._packets_per_message(stream, series_length, n_classes)
        s_item = stream.series_item(round_no)
        if s_item is not None:
            k = k_series
            series = tuple(range(len(sources), len(sources) + k))
            sources.extend([int(stream.owner[s_item])] * k)
            kinds.extend([int(stream.kind[s_item])] * k)
        logits: list[tuple[int, ...]] = []
        l_item = stream.logits_item(round_no)
        if l_item is not None:
            k = k_logits
            for device in range(stream.config.n_devices):
                logits.append(tuple(range(len(sources), len(sources) + k)))
                sources.extend([device] * k)
                kinds.extend([int(stream.kind[l_item])] * k)
        else:
            logits = [() for _ in range(stream.config.n_devices)]
        grad: tuple[int, ...] = ()
        g_item = stream.grad_item(round_no)
        if g_item is not None:
            k = packets_for(4 * n_classes)
            grad = tuple(range(len(sources), len(sources) + k))
            sources.extend([int(stream.owner[g_item])] * k)
            kinds.extend([int(stream.kind[g_item])] * k)
        lead = stream.round_kind(round_no)
        kinds[0] = NONE if lead is None else lead
        return RoundPackets(np.asarray(sources, dtype=np.int16), series, tuple(logits), grad,
                            kind=np.asarray(kinds, dtype=np.int8))


class RocknetLayout(PerItemLayout):
    """The paper: series of item ``t`` in round ``t``, its partial logits in ``t + 1``."""

    mode = TrainingMode.ROCKNET
    series_header_bytes = SERIES_HEADER_BYTES

    def series_rounds(self, items: StreamItems) -> tuple[np.ndarray, int]:
        return np.arange(items.n_items, dtype=np.int64), items.n_items + 1


class PrivateLabelsLayout(PerItemLayout):
    """Series in ``s(t)`` (no label), logits in ``s(t) + 1``, the owner's ``g`` (training
    items) in ``s(t) + 2``; one bubble round after every optimizer step, so the first item
    after a step computes its logits with the stepped weights: ``s(t) = t + steps before t``."""

    mode = TrainingMode.PRIVATE_LABELS
    carries_grad = True
    series_header_bytes = PRIVATE_SERIES_HEADER_BYTES

    def series_rounds(self, items: StreamItems) -> tuple[np.ndarray, int]:
        n = items.n_items
        if not n:
            return np.zeros(0, dtype=np.int64), 1
        before = np.concatenate([[0], np.cumsum(items.step_after[:-1])])
        rounds = np.arange(n, dtype=np.int64) + before.astype(np.int64)
        # rounds an item occupies after its series: g (training), logits (eval), none (calib)
        tail = np.where(items.kind == KIND_TRAIN, 2, np.where(items.kind == KIND_EVAL, 1, 0))
        return rounds, int((rounds + tail).max()) + 1


class DataParallelLayout(ModeLayout):
    """No series and no logits: one sync after the calibration pass and one per optimizer
    step; every round of a sync carries the next ``q = floor((DP_MAX_PACKETS_PER_ROUND - 1)
    / N)`` packets (at least one) of *every* device's message."""

    mode = TrainingMode.DATA_PARALLEL
    carries_logits = False

    def check_sync_bytes(self, sync_bytes: tuple[int, int] | None) -> None:
        if sync_bytes is None or min(sync_bytes) < 1:
            raise ValueError("data-parallel mode needs sync_bytes=(statistics bytes, gradient bytes) >= 1")

    def lay_out(self, items: StreamItems, sync_bytes: tuple[int, int] | None) -> RoundTables:
        self.check_sync_bytes(sync_bytes)
        assert sync_bytes is not None  # checked above
        syncs = self._syncs(items, sync_bytes)
        t = _empty_round_tables(syncs[-1].stop_round if syncs else 0)
        for sync in syncs:
            t["kind"][sync.first_round:sync.stop_round] = sync.kind
            if sync.kind == KIND_TRAIN:
                t["step_item"][sync.stop_round - 1] = sync.local_to - 1
        return _round_tables(np.full(items.n_items, NONE, dtype=np.int64), t, syncs)

    @staticmethod
    def _syncs(items: StreamItems, sync_bytes: tuple[int, int]) -> tuple[Sync, ...]:
        n = items.n_devices
        per_device = max(1, (DP_MAX_PACKETS_PER_ROUND - 1) // n)  # packet 0: the initiator's
        syncs: list[Sync] = []
        cursor_item = 0
        cursor_round = 0

        def add(sync_kind: int, local_to: int, message_bytes: int) -> None:
            nonlocal cursor_item, cursor_round
            k = packets_for(message_bytes)
            n_rounds = math.ceil(k / per_device)
            syncs.append(Sync(len(syncs), sync_kind, cursor_item, local_to, message_bytes, k,
                              cursor_round, n_rounds, n))
            cursor_item, cursor_round = local_to, cursor_round + n_rounds

        kind = items.kind
        if items.calibrate and kind.shape[0] and kind[0] == KIND_CALIB:
            add(KIND_CALIB, int(np.count_nonzero(kind == KIND_CALIB)), sync_bytes[0])
        for a, b in items.batches:
            if kind[a] == KIND_TRAIN and items.step_after[b - 1]:
                add(KIND_TRAIN, b, sync_bytes[1])
        return tuple(syncs)

    def round_packets(self, stream: Stream, round_no: int, series_length: int, n_classes: int,
                      initiator: int) -> RoundPackets:
        """This round's slice of every device's sync message."""
        n = stream.config.n_devices
        sync = stream.sync_of_round(round_no)
        sources = [initiator]
        per_device: list[tuple[int, ...]] = [() for _ in range(n)]
        if sync is not None:
            lo, hi = sync.round_packet_range(round_no)
            for device in range(n):
                per_device[device] = tuple(range(len(sources), len(sources) + hi - lo))
                sources.extend([device] * (hi - lo))
        kind = NONE if sync is None else sync.kind
        return RoundPackets(np.asarray(sources, dtype=np.int16), (), tuple(() for _ in range(n)),
                            sync_packets=tuple(per_device),
                            kind=np.full(len(sources), kind, dtype=np.int8))


#: The layout of every training mode.
LAYOUTS: dict[TrainingMode, ModeLayout] = {
    layout.mode: layout for layout in (RocknetLayout(), PrivateLabelsLayout(), DataParallelLayout())
}
