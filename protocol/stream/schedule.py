"""Which device sends what in which round: the run as one deterministic stream of samples.

The whole run is a global stream of *items* (samples). Item ``t`` has its series (int8 +
label + train/eval flag) flooded by its owner in round ``t``; every device floods its partial
logits of item ``t`` in round ``t + 1`` (the paper's pipelining). The stream is:

1. an optional calibration pass (``KIND_CALIB``): every training sample once, forward only
   (devices accumulate statistics of their own features; no logits travel for it);
2. per epoch ``e``: the training samples (``KIND_TRAIN``) in the order
   ``np.random.default_rng([seed, e]).permutation(n_train)``; an optimizer step follows the
   last item of each batch of ``batch_size`` consecutive training items of that epoch (the
   last, partial batch of an epoch steps too); a calibration or evaluation pass is one batch
   (no step waits on it, so batch mode exchanges it in one pair);
3. every ``eval_every`` epochs and after the last epoch: an evaluation pass (``KIND_EVAL``)
   over the test set in index order (forward only).

With the ridge head (``ScheduleConfig.gram_block = B > 0``, node/ml/ridge.py) 2 and 3 are
instead: Gram passes ``p = 0 .. ceil(n_train / B) - 1`` (``KIND_TRAIN``, ``epoch = p``,
samples ``pB .. n_train - 1`` in index order, in batches of ``batch_size`` (= C, so that a
lost exchange costs at most C samples the solve); the solve is the one step, after the
last); the weight pass (``KIND_CALIB`` with ``epoch = ceil(n_train / B)``: series
only, every training sample in index order); one test pass.

With a validation rule (``ScheduleConfig.selection``, :mod:`protocol.stream.validation`) a
seeded fifth of the training split is held out; its items travel as evaluation items
(``KIND_EVAL``, forward only) flagged ``Stream.validation`` (their ``sample`` indexes the
training split), and ``Stream.phase`` numbers the head each item is computed with:

- ``"decay"``: phases ``0 .. K-1`` train candidate ``k`` for ``epochs`` epochs on the fit
  items (order ``fit[default_rng([seed, e]).permutation(n_fit)]``), then one validation
  pass (its ``epoch`` field is ``k``); phase ``K`` is the plain run above (all training
  items, the test passes) with the chosen weight decay;
- ``"epoch"``: phase 0 trains on the fit items with a validation pass after every epoch
  (periodic test passes on the current weights as ``eval_every`` says); the last test pass
  is phase 1, computed on the weights of the best validation epoch.

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

Each mode's layout is a strategy in :mod:`protocol.stream.layout` (``LAYOUTS``); the stream
delegates every per-round question to its tables. Everything here is pure and deterministic: coordinator, nodes and the centralized reference
derive the same stream from the same :class:`ScheduleConfig` and mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from protocol.stream.layout import (
    KIND_CALIB,
    KIND_EVAL,
    KIND_TRAIN,
    LAYOUTS,
    ModeLayout,
    RoundTables,
    StreamItems,
)
from protocol.stream.packets import (
    DP_MAX_PACKETS_PER_ROUND,
    PACKET_PAYLOAD_BYTES,
    PRIVATE_SERIES_HEADER_BYTES,
    SERIES_HEADER_BYTES,
    RoundPackets,
    Sync,
    packets_for,
)
from protocol.stream.schedule_config import ScheduleConfig, contiguous_split
from protocol.stream.training_mode import MODES, TrainingMode
from protocol.stream.validation import validation_split

__all__ = [
    "DP_MAX_PACKETS_PER_ROUND",
    "KIND_CALIB",
    "KIND_EVAL",
    "KIND_TRAIN",
    "MODES",
    "MODE_DATA_PARALLEL",
    "MODE_PRIVATE_LABELS",
    "MODE_ROCKNET",
    "PACKET_PAYLOAD_BYTES",
    "PRIVATE_SERIES_HEADER_BYTES",
    "SERIES_HEADER_BYTES",
    "RoundPackets",
    "ScheduleConfig",
    "Stream",
    "Sync",
    "build_stream",
    "contiguous_split",
    "packets_for",
    "round_packets",
]

# The modes as constants (coordinator code compares ``config.mode`` with them).
MODE_ROCKNET = TrainingMode.ROCKNET
MODE_PRIVATE_LABELS = TrainingMode.PRIVATE_LABELS
MODE_DATA_PARALLEL = TrainingMode.DATA_PARALLEL


@dataclass(frozen=True, eq=False)
class Stream:
    """The run's items as parallel arrays (index = item number) and where they travel
    (``rounds``, laid out by the mode's :class:`~protocol.stream.layout.ModeLayout`)."""

    config: ScheduleConfig
    kind: np.ndarray  # int8 [n_items]
    sample: np.ndarray  # int32 [n_items]: index into the train or test set
    owner: np.ndarray  # int16 [n_items]: device that holds the sample
    epoch: np.ndarray  # int32 [n_items]: -1 for calibration
    step_after: np.ndarray  # bool [n_items]: optimizer step once this item's logits are in
    batches: tuple[tuple[int, int], ...]  # item ranges [a, b) that never mix kinds
    mode: TrainingMode = TrainingMode.ROCKNET
    #: None: laid out from the items by the mode's layout (data-parallel needs
    #: :func:`build_stream` and its sync sizes).
    round_tables: RoundTables | None = None
    #: bool [n_items]: a validation item (an evaluation item drawn from the training split);
    #: None: none (all False).
    val_flags: np.ndarray | None = None
    #: int16 [n_items]: the phase (head) each item is computed with; None: all 0.
    phases: np.ndarray | None = None

    def __post_init__(self) -> None:
        # frozen: fields are set once here, through object.__setattr__.
        object.__setattr__(self, "mode", TrainingMode(self.mode))
        if self.val_flags is None:
            object.__setattr__(self, "val_flags", np.zeros(self.kind.shape[0], dtype=bool))
        if self.phases is None:
            object.__setattr__(self, "phases", np.zeros(self.kind.shape[0], dtype=np.int16))
        if self.round_tables is None:
            items = StreamItems(kind=self.kind, step_after=self.step_after, batches=self.batches,
                                n_devices=self.config.n_devices, calibrate=self.config.calibrate)
            object.__setattr__(self, "round_tables", self.layout.lay_out(items, None))

    @property
    def layout(self) -> ModeLayout:
        return LAYOUTS[self.mode]

    @property
    def rounds(self) -> RoundTables:
        """Where everything travels (:class:`~protocol.stream.layout.RoundTables`)."""
        assert self.round_tables is not None  # set by __post_init__
        return self.round_tables

    @property
    def validation(self) -> np.ndarray:
        """bool [n_items]: validation items (``KIND_EVAL``, ``sample`` indexes the training split)."""
        assert self.val_flags is not None  # set by __post_init__
        return self.val_flags

    @property
    def phase(self) -> np.ndarray:
        """int16 [n_items]: which head computes each item (module docstring)."""
        assert self.phases is not None  # set by __post_init__
        return self.phases

    def phase_steps(self, phase: int) -> int:
        """Optimizer steps of phase ``phase`` (the cosine schedule of its head spans them)."""
        return int(self.step_after[self.phase == phase].sum())

    @property
    def ridge(self) -> bool:
        """The ridge head's stream (Gram passes, a weight pass; module docstring)."""
        return self.config.gram_block > 0

    @cached_property
    def weight_items(self) -> np.ndarray:
        """bool [n_items]: the ridge head's weight pass (calibration kind, epoch >= 0)."""
        return np.asarray((self.kind == KIND_CALIB) & (self.epoch >= 0), dtype=bool)

    def is_test(self, item: int) -> bool:
        """``item``'s sample is in the test split (a non-validation evaluation item)."""
        return bool(self.kind[item] == KIND_EVAL) and not bool(self.validation[item])

    @property
    def n_items(self) -> int:
        return int(self.kind.shape[0])

    @property
    def n_rounds(self) -> int:
        """Rounds in the run (rocknet: one per item plus the last one, only logits)."""
        return self.rounds.n_rounds

    @property
    def syncs(self) -> tuple[Sync, ...]:
        """Data-parallel: the syncs, in round order (empty in the other modes)."""
        return self.rounds.syncs

    @property
    def private_labels(self) -> bool:
        return self.mode is TrainingMode.PRIVATE_LABELS

    @property
    def data_parallel(self) -> bool:
        return self.mode is TrainingMode.DATA_PARALLEL

    def needs_logits(self, item: int) -> bool:
        """Calibration items travel without partial logits (and nothing travels per item in
        data-parallel mode)."""
        return self.layout.carries_logits and bool(self.kind[item] != KIND_CALIB)

    def needs_grad(self, item: int) -> bool:
        """Private labels: the owner floods ``g`` of every training item."""
        return self.layout.carries_grad and bool(self.kind[item] == KIND_TRAIN)

    # ---------------------------------------------------------------- item -> round
    def series_round(self, item: int) -> int:
        """Round that carries ``item``'s series (-1 in data-parallel mode)."""
        return int(self.rounds.series_round[item])

    def logits_round(self, item: int) -> int:
        """Round that carries ``item``'s partial logits (the one after its series)."""
        return self.series_round(item) + 1

    def grad_round(self, item: int) -> int:
        """Private labels: round that carries ``item``'s ``g`` (the one after its logits)."""
        return self.series_round(item) + 2

    # ---------------------------------------------------------------- round -> item
    @staticmethod
    def _lookup(table: np.ndarray, round_no: int) -> int | None:
        if 0 <= round_no < table.shape[0] and table[round_no] >= 0:
            return int(table[round_no])
        return None

    def series_item(self, round_no: int) -> int | None:
        """Item whose series travels in ``round_no`` (None in the last round)."""
        return self._lookup(self.rounds.series_item, round_no)

    def logits_item(self, round_no: int) -> int | None:
        """Item whose partial logits travel in ``round_no`` (None if there are none)."""
        return self._lookup(self.rounds.logits_item, round_no)

    def grad_item(self, round_no: int) -> int | None:
        """Private labels: item whose ``g`` travels in ``round_no`` (None if none)."""
        return self._lookup(self.rounds.grad_item, round_no)

    def step_item(self, round_no: int) -> int | None:
        """Item after whose last payload of ``round_no`` the devices take an optimizer step."""
        return self._lookup(self.rounds.step_item, round_no)

    def round_kind(self, round_no: int) -> int | None:
        """The kind (``KIND_*``) of what leads ``round_no``: its series, else its logits,
        else its ``g``, else its sync (None for a round that carries nothing)."""
        return self._lookup(self.rounds.kind, round_no)

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


def build_stream(
    config: ScheduleConfig, mode: str = TrainingMode.ROCKNET,
    sync_bytes: tuple[int, int] | None = None,
) -> Stream:
    """Lay out the run's sample stream and its rounds (see the module docstring).

    ``sync_bytes`` (data-parallel only): bytes of a device's message in a calibration sync
    (feature statistics) and in a training sync (gradient).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if config.selection != "none" and mode != TrainingMode.ROCKNET:
        raise ValueError(
            f"the validation rule (selection={config.selection!r}) runs in rocknet mode only: "
            "use --mode rocknet or selection='none'"
        )
    if config.gram_block and mode != TrainingMode.ROCKNET:
        raise ValueError("the ridge head (--head ridge) runs in rocknet mode only: use --mode rocknet or --head sgd")
    layout = LAYOUTS[TrainingMode(mode)]
    layout.check_sync_bytes(sync_bytes)
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
    vals: list[np.ndarray] = []
    phases: list[np.ndarray] = []
    batches: list[tuple[int, int]] = []
    cursor = 0

    def add_pass(kind: int, order: np.ndarray, owner_table: np.ndarray, epoch: int,
                 phase: int = 0, validation: bool = False, gram: str = "") -> None:
        """``gram``: ``"pass"`` a ridge Gram pass (training items in batches of
        ``batch_size``, no step), ``"last"`` the last one (the solve is its step, after its
        last item)."""
        nonlocal cursor
        n = order.shape[0]
        kinds.append(np.full(n, kind, dtype=np.int8))
        samples.append(order.astype(np.int32))
        owners.append(owner_table[order])
        epochs.append(np.full(n, epoch, dtype=np.int32))
        vals.append(np.full(n, validation, dtype=bool))
        phases.append(np.full(n, phase, dtype=np.int16))
        step = np.zeros(n, dtype=bool)
        # A training pass goes in optimizer batches; a forward-only pass (calibration,
        # evaluation) has no step to wait for, so it travels as one batch (one exchange pair).
        span = config.batch_size if kind == KIND_TRAIN else max(n, 1)
        for a in range(0, n, span):
            b = min(a + span, n)
            batches.append((cursor + a, cursor + b))
            if kind == KIND_TRAIN and (not gram or (gram == "last" and b == n)):
                step[b - 1] = True
        steps.append(step)
        cursor += n

    def train_order(epoch: int, pool: np.ndarray) -> np.ndarray:
        return pool[np.random.default_rng([config.seed, epoch]).permutation(pool.shape[0])]

    def test_pass_after(epoch: int) -> bool:
        """A test pass follows ``epoch``: the last one, and every ``eval_every``-th."""
        last = epoch == config.epochs - 1
        periodic = config.eval_every > 0 and (epoch + 1) % config.eval_every == 0
        return config.n_test > 0 and (last or periodic)

    def plain_epochs(phase: int) -> None:
        for epoch in range(config.epochs):
            add_pass(KIND_TRAIN, train_order(epoch, everything), train_owner, epoch, phase)
            if test_pass_after(epoch):
                add_pass(KIND_EVAL, np.arange(config.n_test), test_owner, epoch, phase)

    everything = np.arange(config.n_train)
    if config.calibrate:
        add_pass(KIND_CALIB, everything, train_owner, -1)
    if config.gram_block:
        # The ridge head (node/ml/ridge.py): Gram pass p holds samples pB .. n_train-1 in
        # index order, the block pB .. pB+B-1 first; the solve follows the last one; then
        # the weight pass (series only, every training sample in index order: each device
        # forms W_d = A^T X_d) and the test pass.
        block, n_passes = config.gram_block, config.gram_passes
        for p in range(n_passes):
            add_pass(KIND_TRAIN, np.arange(p * block, config.n_train), train_owner, p,
                     gram="last" if p == n_passes - 1 else "pass")
        add_pass(KIND_CALIB, everything, train_owner, n_passes)
        if config.n_test:
            add_pass(KIND_EVAL, np.arange(config.n_test), test_owner, n_passes)
    elif config.selection == "none":
        plain_epochs(0)
    else:
        fit, val = validation_split(config.n_train, config.val_fraction, config.seed)
        if config.selection == "decay":
            for k in range(config.n_candidates):
                for epoch in range(config.epochs):
                    add_pass(KIND_TRAIN, train_order(epoch, fit), train_owner, epoch, k)
                add_pass(KIND_EVAL, val, train_owner, k, k, validation=True)
            plain_epochs(config.n_candidates)
        else:  # "epoch": the paper's best-validation epoch, no retraining
            for epoch in range(config.epochs):
                add_pass(KIND_TRAIN, train_order(epoch, fit), train_owner, epoch, 0)
                add_pass(KIND_EVAL, val, train_owner, epoch, 0, validation=True)
                if test_pass_after(epoch):
                    last = epoch == config.epochs - 1
                    add_pass(KIND_EVAL, np.arange(config.n_test), test_owner, epoch, 1 if last else 0)

    def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    kind = cat(kinds, np.int8)
    step_after = cat(steps, bool)
    batch_ranges = tuple(batches)
    items = StreamItems(kind=kind, step_after=step_after, batches=batch_ranges,
                        n_devices=config.n_devices, calibrate=config.calibrate)
    return Stream(
        config=config,
        kind=kind,
        sample=cat(samples, np.int32),
        owner=cat(owners, np.int16),
        epoch=cat(epochs, np.int32),
        step_after=step_after,
        batches=batch_ranges,
        mode=layout.mode,
        round_tables=layout.lay_out(items, sync_bytes),
        val_flags=cat(vals, bool),
        phases=cat(phases, np.int16),
    )


def round_packets(
    stream: Stream, round_no: int, series_length: int, n_classes: int, initiator: int = 0
) -> RoundPackets:
    """Lay out round ``round_no``'s packets (sizes from series length and class count)."""
    return stream.layout.round_packets(stream, round_no, series_length, n_classes, initiator)
