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

Everything here is pure and deterministic: coordinator, nodes and the centralized reference
derive the same stream from the same :class:`ScheduleConfig`.
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

    @property
    def n_items(self) -> int:
        return int(self.kind.shape[0])

    @property
    def n_rounds(self) -> int:
        """Rounds in the run: one per item plus the last round that carries only logits."""
        return self.n_items + 1

    def needs_logits(self, item: int) -> bool:
        """Calibration items travel without partial logits."""
        return bool(self.kind[item] != KIND_CALIB)

    def series_item(self, round_no: int) -> int | None:
        """Item whose series travels in ``round_no`` (None in the last round)."""
        return round_no if 0 <= round_no < self.n_items else None

    def logits_item(self, round_no: int) -> int | None:
        """Item whose partial logits travel in ``round_no`` (None if there are none)."""
        item = round_no - 1
        if 0 <= item < self.n_items and self.needs_logits(item):
            return item
        return None

    @cached_property
    def steps(self) -> int:
        return int(self.step_after.sum())


def build_stream(config: ScheduleConfig) -> Stream:
    """Lay out the run's sample stream (see the module docstring)."""
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

    return Stream(
        config=config,
        kind=cat(kinds, np.int8),
        sample=cat(samples, np.int32),
        owner=cat(owners, np.int16),
        epoch=cat(epochs, np.int32),
        step_after=cat(steps, bool),
        batches=tuple(batches),
    )


def packets_for(n_bytes: int) -> int:
    """Radio packets needed for a message of ``n_bytes`` (100-byte packets, at least one)."""
    return max(1, math.ceil(n_bytes / PACKET_PAYLOAD_BYTES))


@dataclass(frozen=True)
class RoundPackets:
    """The packets of one round: packet 0 is the initiator's, then the series, then logits.

    ``source[g]`` is the device that originates packet ``g``; ``series_packets`` and
    ``logits_packets`` give the packet indices of each message so a receiver's decoded mask
    tells what it got: a message is delivered only if all its packets are decoded.
    """

    source: np.ndarray  # int16 [G]
    series_packets: tuple[int, ...]
    logits_packets: tuple[tuple[int, ...], ...]  # per device; empty tuple if no logits

    @property
    def n_packets(self) -> int:
        return int(self.source.shape[0])


def round_packets(
    stream: Stream, round_no: int, series_length: int, n_classes: int, initiator: int = 0
) -> RoundPackets:
    """Lay out round ``round_no``'s packets (sizes from series length and class count)."""
    sources = [initiator]
    series: tuple[int, ...] = ()
    s_item = stream.series_item(round_no)
    if s_item is not None:
        k = packets_for(series_length + SERIES_HEADER_BYTES)
        series = tuple(range(len(sources), len(sources) + k))
        sources.extend([int(stream.owner[s_item])] * k)
    logits: list[tuple[int, ...]] = []
    if stream.logits_item(round_no) is not None:
        k = packets_for(4 * n_classes)
        for device in range(stream.config.n_devices):
            logits.append(tuple(range(len(sources), len(sources) + k)))
            sources.extend([device] * k)
    else:
        logits = [() for _ in range(stream.config.n_devices)]
    return RoundPackets(np.asarray(sources, dtype=np.int16), series, tuple(logits))
