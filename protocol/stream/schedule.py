"""Which device sends what in which round: the run as one deterministic stream of samples.

The whole run is a global stream of *items* (samples). Item ``t`` has its series (int8 +
label + train/eval flag) flooded by its owner in round ``t``; every device floods its partial
logits of item ``t`` in round ``t + 1`` (the paper's pipelining). The stream is:

1. an optional calibration pass (``KIND_CALIB``): every training sample once, forward only
   (devices accumulate statistics of their own features; no logits travel for it);
2. per epoch ``e``: the training samples (``KIND_TRAIN``) in the order
   ``np.random.default_rng([seed, e]).permutation(n_train)``; an optimizer step follows the
   last item of each batch of ``batch_size`` consecutive training items of that epoch (the
   last, partial batch of an epoch steps too);
3. every ``eval_every`` epochs and after the last epoch: an evaluation pass (``KIND_EVAL``)
   over the test set in index order (forward only).

The *mode* (``build_stream(config, mode=...)``, see docs/modes.md) maps items to rounds:

- ``rocknet`` (the paper): series of item ``t`` in round ``t``, its partial logits in round
  ``t + 1``;
- ``private-labels``: the series travels without its label; the owner alone sums the partial
  logits and floods ``g = softmax(z) - onehot(y)`` one round after them: series in round
  ``s(t)``, logits in ``s(t) + 1``, ``g`` (training items only) in ``s(t) + 2``. Every
  optimizer step is followed by one *bubble* round without a series, so that the first item
  after a step computes its partial logits with the stepped weights:
  ``s(t) = t + (number of steps before item t)``;
- ``data-parallel``: no series and no logits travel. Each device trains its own samples on a
  whole replica of the model; at every optimizer step (and once after the calibration pass)
  every device floods one message (its gradient sum; its feature statistics) in a *sync*:
  each message is split into 100-byte packets and every round of the sync carries the next
  ``q = floor((DP_MAX_PACKETS_PER_ROUND - 1) / N)`` packets (at least one) of *every*
  device's message, so that Mixer sees many sources per round as it does with partial logits
  (one source holding all of a round's packets would need far more than ``3 G`` slots).

Everything here is pure and deterministic: coordinator, nodes and the centralized reference
derive the same stream from the same :class:`ScheduleConfig` and mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

KIND_CALIB = 0
KIND_TRAIN = 1
KIND_EVAL = 2
KIND_NAMES = {KIND_CALIB: "calib", KIND_TRAIN: "train", KIND_EVAL: "eval"}

#: Bytes of application payload per radio packet (the paper splits messages into 100 B).
PACKET_PAYLOAD_BYTES = 100
#: Bytes that travel with a series besides the samples: label (1 B) and train/eval flag (1 B).
SERIES_HEADER_BYTES = 2
#: Private labels: only the train/eval flag travels with a series.
PRIVATE_SERIES_HEADER_BYTES = 1

MODE_ROCKNET = "rocknet"
MODE_PRIVATE_LABELS = "private-labels"
MODE_DATA_PARALLEL = "data-parallel"
#: The training modes (docs/modes.md).
MODES = (MODE_ROCKNET, MODE_PRIVATE_LABELS, MODE_DATA_PARALLEL)
#: Data-parallel: most packets in one round, the initiator's packet included (Mixer's
#: generation size; a round of G = 64 has max(3G, 150) = 192 slots).
DP_MAX_PACKETS_PER_ROUND = 64


def contiguous_split(n: int, parts: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into ``parts`` contiguous ``(start, stop)`` ranges.

    The remainder goes to the first parts (sizes differ by at most one), as the paper's code
    does for kernels and samples. A part may be empty when ``parts > n``.
    """
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    base, extra = divmod(n, parts)
    ranges = []
    start = 0
    for i in range(parts):
        size = base + (1 if i < extra else 0)
        ranges.append((start, start + size))
        start += size
    return ranges


def owner_of(index: int, ranges: list[tuple[int, int]]) -> int:
    """The part whose ``(start, stop)`` range holds ``index``."""
    for part, (start, stop) in enumerate(ranges):
        if start <= index < stop:
            return part
    raise IndexError(f"index {index} is outside every range")


@dataclass(frozen=True)
class ScheduleConfig:
    """What fixes the sample stream. Validated on construction."""

    n_train: int
    n_test: int
    n_devices: int
    epochs: int
    batch_size: int
    seed: int = 0
    eval_every: int = 0  # 0: evaluate only after the last epoch
    calibrate: bool = True

    def __post_init__(self) -> None:
        if self.n_train < 1:
            raise ValueError("the training set is empty: a dataset needs at least one training sample")
        if self.n_test < 0:
            raise ValueError(f"n_test must be >= 0, got {self.n_test}")
        if self.n_devices < 1:
            raise ValueError(f"n_devices must be >= 1, got {self.n_devices}")
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0, got {self.eval_every}")


@dataclass(frozen=True)
class Stream:
    """The run's items as parallel arrays, index = item number = round of its series."""

    config: ScheduleConfig
    kind: np.ndarray  # int8 [n_items]
    sample: np.ndarray  # int32 [n_items]: index into the train or test set
    owner: np.ndarray  # int16 [n_items]: device that holds the sample
    epoch: np.ndarray  # int32 [n_items]: -1 for calibration
    step_after: np.ndarray  # bool [n_items]: optimizer step once this item's logits are in
    batches: tuple[tuple[int, int], ...]  # item ranges [a, b) that never mix kinds
    mode: str = MODE_ROCKNET
    #: int64 [n_items]: round of each item's series (private labels; None: round = item)
    series_rounds: np.ndarray | None = None
    #: data-parallel: the syncs, in round order
    syncs: tuple[Sync, ...] = ()
    #: rounds of the run (-1: ``n_items + 1``, the rocknet layout)
    round_count: int = -1

    @property
    def n_items(self) -> int:
        return int(self.kind.shape[0])

    @property
    def n_rounds(self) -> int:
        """Rounds in the run (rocknet: one per item plus the last one, only logits)."""
        return self.round_count if self.round_count >= 0 else self.n_items + 1

    @property
    def private_labels(self) -> bool:
        return self.mode == MODE_PRIVATE_LABELS

    @property
    def data_parallel(self) -> bool:
        return self.mode == MODE_DATA_PARALLEL

    def needs_logits(self, item: int) -> bool:
        """Calibration items travel without partial logits (and nothing travels per item in
        data-parallel mode)."""
        return bool(self.kind[item] != KIND_CALIB) and not self.data_parallel

    def needs_grad(self, item: int) -> bool:
        """Private labels: the owner floods ``g`` of every training item."""
        return self.private_labels and bool(self.kind[item] == KIND_TRAIN)

    # ---------------------------------------------------------------- item -> round
    def series_round(self, item: int) -> int:
        """Round that carries ``item``'s series (-1 in data-parallel mode)."""
        if self.data_parallel:
            return -1
        if self.series_rounds is None:
            return int(item)
        return int(self.series_rounds[item])

    def logits_round(self, item: int) -> int:
        """Round that carries ``item``'s partial logits (the one after its series)."""
        return self.series_round(item) + 1

    def grad_round(self, item: int) -> int:
        """Private labels: round that carries ``item``'s ``g`` (the one after its logits)."""
        return self.series_round(item) + 2

    # ---------------------------------------------------------------- round -> item
    @cached_property
    def _round_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """int64 [n_rounds] each: series / logits / grad item of every round (-1: none)."""
        n = self.n_rounds
        series = np.full(n, -1, dtype=np.int64)
        logits = np.full(n, -1, dtype=np.int64)
        grad = np.full(n, -1, dtype=np.int64)
        if not self.data_parallel:
            items = np.arange(self.n_items, dtype=np.int64)
            rounds = items if self.series_rounds is None else self.series_rounds.astype(np.int64)
            series[rounds] = items
            need = self.kind != KIND_CALIB
            logits[rounds[need] + 1] = items[need]
            if self.private_labels:
                train = self.kind == KIND_TRAIN
                grad[rounds[train] + 2] = items[train]
        return series, logits, grad

    @staticmethod
    def _lookup(table: np.ndarray, round_no: int) -> int | None:
        if 0 <= round_no < table.shape[0] and table[round_no] >= 0:
            return int(table[round_no])
        return None

    def series_item(self, round_no: int) -> int | None:
        """Item whose series travels in ``round_no`` (None in the last round)."""
        if self.mode == MODE_ROCKNET:
            return round_no if 0 <= round_no < self.n_items else None
        return self._lookup(self._round_tables[0], round_no)

    def logits_item(self, round_no: int) -> int | None:
        """Item whose partial logits travel in ``round_no`` (None if there are none)."""
        if self.mode == MODE_ROCKNET:
            item = round_no - 1
            if 0 <= item < self.n_items and self.needs_logits(item):
                return item
            return None
        return self._lookup(self._round_tables[1], round_no)

    def grad_item(self, round_no: int) -> int | None:
        """Private labels: item whose ``g`` travels in ``round_no`` (None if none)."""
        if not self.private_labels:
            return None
        return self._lookup(self._round_tables[2], round_no)

    def step_item(self, round_no: int) -> int | None:
        """Item after whose last payload of ``round_no`` the devices take an optimizer step."""
        if self.data_parallel:
            sync = self.sync_of_round(round_no)
            if sync is not None and sync.kind == KIND_TRAIN and round_no == sync.stop_round - 1:
                return sync.local_to - 1
            return None
        item = self.grad_item(round_no) if self.private_labels else self.logits_item(round_no)
        if item is not None and self.step_after[item]:
            return item
        return None

    def round_kind(self, round_no: int) -> int | None:
        """The kind (``KIND_*``) of what leads ``round_no``: its series, else its logits,
        else its ``g``, else its sync (None for a round that carries nothing)."""
        if self.data_parallel:
            sync = self.sync_of_round(round_no)
            return None if sync is None else sync.kind
        for item in (self.series_item(round_no), self.logits_item(round_no), self.grad_item(round_no)):
            if item is not None:
                return int(self.kind[item])
        return None

    # ---------------------------------------------------------------- data-parallel syncs
    @cached_property
    def _sync_of_round(self) -> np.ndarray:
        table = np.full(self.n_rounds, -1, dtype=np.int64)
        for sync in self.syncs:
            table[sync.first_round:sync.stop_round] = sync.index
        return table

    def sync_of_round(self, round_no: int) -> Sync | None:
        """Data-parallel: the sync that round ``round_no`` belongs to."""
        if not self.syncs or not 0 <= round_no < self.n_rounds:
            return None
        index = int(self._sync_of_round[round_no])
        return self.syncs[index] if index >= 0 else None

    def local_counts(self, sync: Sync) -> np.ndarray:
        """int64 [N]: items each device processes locally before ``sync`` (its own ones)."""
        owners = self.owner[sync.local_from:sync.local_to].astype(np.int64)
        return np.bincount(owners, minlength=self.config.n_devices)

    @property
    def trailing_from(self) -> int:
        """Data-parallel: first item processed after the last sync (the final evaluation)."""
        return self.syncs[-1].local_to if self.syncs else 0

    @cached_property
    def steps(self) -> int:
        return int(self.step_after.sum())


@dataclass(frozen=True)
class Sync:
    """Data-parallel: one all-to-all exchange of a message from every device.

    Before it, every device processes its own items of ``[local_from, local_to)``
    (calibration: feature statistics; training: the gradient of a batch; evaluation items
    of a preceding pass are scored locally). ``kind`` is ``KIND_CALIB`` (the message is the
    device's feature statistics) or ``KIND_TRAIN`` (its gradient sum; every device then
    steps). Each device's message is ``k = packets_per_device`` packets; rounds
    ``[first_round, stop_round)`` carry them in order, the same slice of every device's
    message per round (:meth:`round_packet_range`).
    """

    index: int
    kind: int
    local_from: int
    local_to: int
    message_bytes: int
    packets_per_device: int
    first_round: int
    n_rounds: int
    n_devices: int

    @property
    def stop_round(self) -> int:
        return self.first_round + self.n_rounds

    def round_packet_range(self, round_no: int) -> tuple[int, int]:
        """The range of every device's packets that round ``round_no`` of the sync carries
        (:func:`contiguous_split` of ``packets_per_device`` over the sync's rounds)."""
        j = round_no - self.first_round
        if not 0 <= j < self.n_rounds:
            raise IndexError(f"round {round_no} is not in sync {self.index}")
        base, extra = divmod(self.packets_per_device, self.n_rounds)
        lo = j * base + min(j, extra)
        return lo, lo + base + (1 if j < extra else 0)


def build_stream(
    config: ScheduleConfig, mode: str = MODE_ROCKNET, sync_bytes: tuple[int, int] | None = None
) -> Stream:
    """Lay out the run's sample stream and its rounds (see the module docstring).

    ``sync_bytes`` (data-parallel only): bytes of a device's message in a calibration sync
    (feature statistics) and in a training sync (gradient).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == MODE_DATA_PARALLEL and (sync_bytes is None or min(sync_bytes) < 1):
        raise ValueError("data-parallel mode needs sync_bytes=(statistics bytes, gradient bytes) >= 1")
    train_ranges = contiguous_split(config.n_train, config.n_devices)
    test_ranges = contiguous_split(config.n_test, config.n_devices)
    train_owner = np.empty(config.n_train, dtype=np.int16)
    for device, (start, stop) in enumerate(train_ranges):
        train_owner[start:stop] = device
    test_owner = np.empty(config.n_test, dtype=np.int16)
    for device, (start, stop) in enumerate(test_ranges):
        test_owner[start:stop] = device

    kinds: list[np.ndarray] = []
    samples: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    epochs: list[np.ndarray] = []
    steps: list[np.ndarray] = []
    batches: list[tuple[int, int]] = []
    cursor = 0

    def add_pass(kind: int, order: np.ndarray, owner_table: np.ndarray, epoch: int) -> None:
        nonlocal cursor
        n = order.shape[0]
        kinds.append(np.full(n, kind, dtype=np.int8))
        samples.append(order.astype(np.int32))
        owners.append(owner_table[order])
        epochs.append(np.full(n, epoch, dtype=np.int32))
        step = np.zeros(n, dtype=bool)
        for a in range(0, n, config.batch_size):
            b = min(a + config.batch_size, n)
            batches.append((cursor + a, cursor + b))
            if kind == KIND_TRAIN:
                step[b - 1] = True
        steps.append(step)
        cursor += n

    if config.calibrate:
        add_pass(KIND_CALIB, np.arange(config.n_train), train_owner, -1)
    for epoch in range(config.epochs):
        order = np.random.default_rng([config.seed, epoch]).permutation(config.n_train)
        add_pass(KIND_TRAIN, order, train_owner, epoch)
        last = epoch == config.epochs - 1
        periodic = config.eval_every > 0 and (epoch + 1) % config.eval_every == 0
        if config.n_test > 0 and (last or periodic):
            add_pass(KIND_EVAL, np.arange(config.n_test), test_owner, epoch)

    def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    kind = cat(kinds, np.int8)
    step_after = cat(steps, bool)
    n_items = int(kind.shape[0])
    series_rounds: np.ndarray | None = None
    sync_list: tuple[Sync, ...] = ()
    round_count = -1
    if mode == MODE_PRIVATE_LABELS:
        # One bubble round after every optimizer step: s(t) = t + steps before t.
        before = np.concatenate([[0], np.cumsum(step_after[:-1])]) if n_items else np.zeros(0)
        series_rounds = np.arange(n_items, dtype=np.int64) + before.astype(np.int64)
        tail = np.where(kind == KIND_TRAIN, 2, np.where(kind == KIND_EVAL, 1, 0))
        round_count = int((series_rounds + tail).max()) + 1 if n_items else 1
    elif mode == MODE_DATA_PARALLEL:
        assert sync_bytes is not None
        sync_list = _lay_out_syncs(config, kind, step_after, batches, sync_bytes)
        round_count = sync_list[-1].stop_round if sync_list else 0
    return Stream(
        config=config,
        kind=kind,
        sample=cat(samples, np.int32),
        owner=cat(owners, np.int16),
        epoch=cat(epochs, np.int32),
        step_after=step_after,
        batches=tuple(batches),
        mode=mode,
        series_rounds=series_rounds,
        syncs=sync_list,
        round_count=round_count,
    )


def _lay_out_syncs(
    config: ScheduleConfig, kind: np.ndarray, step_after: np.ndarray,
    batches: list[tuple[int, int]], sync_bytes: tuple[int, int],
) -> tuple[Sync, ...]:
    """Data-parallel: one sync after the calibration pass, one per optimizer step."""
    n = config.n_devices
    # packets of every device's message per round (packet 0 is the initiator's)
    per_device = max(1, (DP_MAX_PACKETS_PER_ROUND - 1) // n)
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

    if config.calibrate and kind.shape[0] and kind[0] == KIND_CALIB:
        add(KIND_CALIB, int(np.count_nonzero(kind == KIND_CALIB)), sync_bytes[0])
    for a, b in batches:
        if kind[a] == KIND_TRAIN and step_after[b - 1]:
            add(KIND_TRAIN, b, sync_bytes[1])
    return tuple(syncs)


def packets_for(n_bytes: int) -> int:
    """Radio packets needed for a message of ``n_bytes`` (100-byte packets, at least one)."""
    return max(1, math.ceil(n_bytes / PACKET_PAYLOAD_BYTES))


@dataclass(frozen=True)
class RoundPackets:
    """The packets of one round: packet 0 is the initiator's, then the series, then logits,
    then (private labels) the owner's ``g``; or (data-parallel) the sync's packets.

    ``source[g]`` is the device that originates packet ``g``; ``series_packets``,
    ``logits_packets``, ``grad_packets`` and ``sync_packets`` give the packet indices of each
    message so a receiver's decoded mask tells what it got: a message is delivered only if
    all its packets are decoded. ``kind[g]`` is the ``KIND_*`` of the item (or sync) packet
    ``g`` carries (the initiator's packet takes the round's leading kind; -1: none).
    """

    source: np.ndarray  # int16 [G]
    series_packets: tuple[int, ...]
    logits_packets: tuple[tuple[int, ...], ...]  # per device; empty tuple if no logits
    grad_packets: tuple[int, ...] = ()
    sync_packets: tuple[tuple[int, ...], ...] = ()  # per device; this round's part of its message
    kind: np.ndarray | None = None  # int8 [G]

    @property
    def n_packets(self) -> int:
        return int(self.source.shape[0])


def round_packets(
    stream: Stream, round_no: int, series_length: int, n_classes: int, initiator: int = 0
) -> RoundPackets:
    """Lay out round ``round_no``'s packets (sizes from series length and class count)."""
    if stream.data_parallel:
        return _sync_round_packets(stream, round_no, initiator)
    sources = [initiator]
    kinds = [-1]
    series: tuple[int, ...] = ()
    s_item = stream.series_item(round_no)
    if s_item is not None:
        header = PRIVATE_SERIES_HEADER_BYTES if stream.private_labels else SERIES_HEADER_BYTES
        k = packets_for(series_length + header)
        series = tuple(range(len(sources), len(sources) + k))
        sources.extend([int(stream.owner[s_item])] * k)
        kinds.extend([int(stream.kind[s_item])] * k)
    logits: list[tuple[int, ...]] = []
    l_item = stream.logits_item(round_no)
    if l_item is not None:
        k = packets_for(4 * n_classes)
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
    kinds[0] = -1 if lead is None else lead
    return RoundPackets(np.asarray(sources, dtype=np.int16), series, tuple(logits), grad,
                        kind=np.asarray(kinds, dtype=np.int8))


def _sync_round_packets(stream: Stream, round_no: int, initiator: int) -> RoundPackets:
    """Data-parallel: this round's slice of every device's sync message."""
    n = stream.config.n_devices
    sync = stream.sync_of_round(round_no)
    sources = [initiator]
    per_device: list[tuple[int, ...]] = [() for _ in range(n)]
    if sync is not None:
        lo, hi = sync.round_packet_range(round_no)
        for device in range(n):
            per_device[device] = tuple(range(len(sources), len(sources) + hi - lo))
            sources.extend([device] * (hi - lo))
    kind = -1 if sync is None else sync.kind
    return RoundPackets(np.asarray(sources, dtype=np.int16), (), tuple(() for _ in range(n)),
                        sync_packets=tuple(per_device),
                        kind=np.full(len(sources), kind, dtype=np.int8))
