"""Per-item tables of one device's stream, computed once at boot.

The exchange path asks the same questions of every item, every exchange: is it mine, is it
a calibration item, which sample slot does it use, where is my copy of its series, does a
new run of one pass start here? Answered item by item through ``stream.kind[t]`` (a numpy
scalar a time) and dicts, that was most of a node's Python per exchange; as arrays indexed
by item, the device answers them for a whole range with one slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from protocol.stream.schedule import KIND_CALIB, KIND_EVAL, KIND_TRAIN, Stream


class Shard(Protocol):
    """What the tables read of a device's shard (:class:`node.device.base.DeviceData`)."""

    x_train: np.ndarray
    y_train: np.ndarray
    train_start: int
    x_test: np.ndarray
    y_test: np.ndarray
    test_start: int


@dataclass(frozen=True)
class ItemTables:
    """What :class:`node.device.base.DeviceBase` looks up per item (all arrays are
    ``[n_items]`` unless said otherwise)."""

    owned: np.ndarray  # bool: this device owns the item (its series is in the shard)
    calib: np.ndarray  # bool: calibration item
    train: np.ndarray  # bool: training item
    #: intp: the item's sample slot, ``sample`` for training-split samples, ``n_train +
    #: sample`` for test-split ones (the old cache key ``(is_test, sample)`` as one int).
    slot: np.ndarray
    n_slots: int
    own_items: np.ndarray  # int64 [k]: the owned items, ascending
    #: intp: row of :attr:`own_series` of an owned item (0 for the others, -1 for an owned
    #: item whose sample is not in the shard: reading it raises, as indexing the shard did)
    own_row: np.ndarray
    own_series: np.ndarray  # int8 [n_i + m_i, L]: the shard's training then test series
    own_labels: np.ndarray  # int64 [n_i + m_i]: their labels
    #: bool: item ``t`` starts a new run of one pass after ``t - 1`` (``t - 1`` ends an
    #: optimizer batch, or kind or epoch change): where a batch of consumed items is cut.
    run_starts: np.ndarray

    @classmethod
    def of(cls, stream: Stream, device: int, data: Shard) -> ItemTables:
        kind, sample = stream.kind, stream.sample.astype(np.intp)
        owned = stream.owner == device
        is_test = (kind == KIND_EVAL) & ~stream.validation
        n_train = int(sample[~is_test].max()) + 1 if bool((~is_test).any()) else 0
        slot = np.where(is_test, sample + n_train, sample)
        n_slots = int(slot.max()) + 1 if len(slot) else 0
        # The shard's row of each owned item, wrapped as indexing x_train / x_test was.
        n_tr, n_te = len(data.x_train), len(data.x_test)
        local = np.where(is_test, sample - data.test_start, sample - data.train_start)
        size = np.where(is_test, n_te, n_tr)
        valid = (local >= -size) & (local < size)
        local = np.where(local < 0, local + size, local) + np.where(is_test, n_tr, 0)
        own_row = np.where(owned, np.where(valid, local, -1), 0).astype(np.intp)
        run_starts = np.ones(len(kind), dtype=bool)
        run_starts[1:] = (stream.step_after[:-1] | (kind[1:] != kind[:-1])
                          | (stream.epoch[1:] != stream.epoch[:-1]))
        for arr in (owned, slot, own_row, run_starts):
            arr.flags.writeable = False
        return cls(
            owned=owned, calib=kind == KIND_CALIB, train=kind == KIND_TRAIN, slot=slot,
            n_slots=n_slots, own_items=np.flatnonzero(owned), own_row=own_row,
            own_series=np.concatenate([data.x_train, data.x_test]).astype(np.int8),
            own_labels=np.concatenate([data.y_train, data.y_test]).astype(np.int64),
            run_starts=run_starts,
        )

    def own_rows(self, items: np.ndarray) -> np.ndarray:
        """Rows of :attr:`own_series` of owned ``items`` (IndexError for a sample the shard
        lacks)."""
        rows = self.own_row[items]
        if len(rows) and int(rows.min()) < 0:
            raise IndexError(f"items {items[rows < 0].tolist()} are not in this device's shard")
        return rows
