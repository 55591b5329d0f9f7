"""What fixes a run's sample stream (:class:`ScheduleConfig`) and the contiguous split of
samples and kernels over devices; re-exported by :mod:`protocol.stream.schedule`, which lays
the stream out from it."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.stream.placement import parse_split
from protocol.stream.validation import SELECTIONS, validation_split

__all__ = ["ScheduleConfig", "contiguous_split"]


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
    # Data placement (protocol.stream.placement): the run's sets are reordered by it at
    # setup, so the stream itself only records it (owners stay contiguous ranges).
    placement: str = "contiguous"
    # The validation rule (protocol.stream.validation): "none", "decay" or "epoch"; the
    # number of weight-decay candidates ("decay"); the held-out fraction of the training set.
    selection: str = "none"
    n_candidates: int = 1
    val_fraction: float = 0.2
    # The firmware's message sizes (--profile firmware, rocknet mode): series L + 4 B and
    # partial logits 4 C + 2 B, cut into the payload size (100..199 B) that gives the
    # shortest round, as protocol.air.radio.firmware_round; else ours (L + 2 and 4 C, 100 B).
    firmware_messages: bool = False
    # The ridge head (node/ml/ridge.py): samples per Gram block (protocol.config.model
    # gram_block_size: a partial Gram row fills a logit slot); 0: the SGD head. With it the
    # stream is: calibration, Gram passes, the weight pass, the test pass
    # (protocol.stream.schedule); ``epochs`` is not used, ``batch_size`` is the Gram items
    # per exchange.
    gram_block: int = 0

    @property
    def gram_passes(self) -> int:
        """The ridge head's Gram passes: one per block of ``gram_block`` training samples."""
        return -(-self.n_train // self.gram_block) if self.gram_block else 0

    @property
    def train_steps(self) -> int:
        """Optimizer steps of a run without a validation rule: ``epochs`` times one step per
        batch of ``batch_size`` (the last, partial batch of an epoch steps too); equal to
        ``protocol.config.model.total_steps`` for the model this schedule was made from,
        without running its training-length rule again (a few ms a device at setup); the
        ridge head's solve is its one step."""
        if self.gram_block:
            return 1
        return self.epochs * -(-self.n_train // self.batch_size)

    def __post_init__(self) -> None:
        parse_split(self.placement)  # raises with the allowed values
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if not isinstance(self.n_candidates, int) or self.n_candidates < 1:
            raise ValueError(f"n_candidates must be an int >= 1, got {self.n_candidates!r}")
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
        if not isinstance(self.gram_block, int) or self.gram_block < 0:
            raise ValueError(f"gram_block must be an int >= 0, got {self.gram_block!r}")
        if self.gram_block and (self.selection != "none" or not self.calibrate):
            raise ValueError("the ridge head (gram_block > 0) needs calibrate=True and selection='none'")
        if self.selection != "none":
            validation_split(self.n_train, self.val_fraction, self.seed)  # raises with the fix
