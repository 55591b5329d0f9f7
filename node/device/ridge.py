"""A RockNet device with the ridge head (``ModelConfig.head="ridge"``, node/ml/ridge.py).

The same series and logit traffic as :class:`~node.device.rocknet.Device`; what the logit
slots carry and what the device does with them differ by pass (protocol/stream/schedule.py):

* **Gram passes** (training items): the device floods its partial Gram rows
  (:meth:`RidgeHead.gram_partial_rows`) instead of partial logits, sums what arrives in
  device order into its Gram matrix (an entry with a part that did not arrive is NaN, not
  known, whatever ``missing_policy`` says: a Gram entry has no "last value" to reuse), and
  after the last Gram item takes its one step, the leave-one-out solve on the samples whose
  entries are all known (:meth:`RidgeHead.complete_samples`);
* **the weight pass** (series only): in item order, ``W_d += A[i] x_{d,i}`` for every
  training series it has once its round is over (a lost one is left out);
* **the test pass**: the parent's partial logits, scoring and missing-data policies.

A device's work per item is about that of the SGD head: one feature vector, ``B x F_d``
multiply-adds for the row (where partial logits are ``C x F_d``; the slot is ``B`` wide,
``RunConfig.logit_width``) and ``C x F_d`` for the weights (as for the gradient); the solve is costed by :func:`node.mcu.ridge_costs.ridge_solve_cycles`, its RAM by
:func:`protocol.config.ridge_ram.ridge_ledger`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from node.device.rocknet import Device
from node.mcu import cycles
from node.mcu.ridge_costs import ridge_solve_cycles
from node.ml.head import ShardHead, sum_partial_logits
from node.ml.ridge_head import RidgeHead
from protocol.config.ram_ledger import Ledger
from protocol.config.ridge_ram import check_ridge, ridge_ledger
from protocol.stream.schedule import KIND_TRAIN
from protocol.wire.stats import FinalMetrics
from protocol.wire.frames import Round, Rx

__all__ = ["RidgeDevice"]


@dataclass
class RidgeDevice(Device):
    """The paper's device with the ridge head (module docstring)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._weight_items = np.flatnonzero(self.stream.weight_items)
        self._batch_starts = np.array([a for a, _ in self.stream.batches], dtype=np.int64)
        self.gram_rows_missing = 0  # Gram items whose row this device could not complete
        # Own partial Gram rows per item (float32 [n_items, B]) and whether they are pending:
        # as the parent's own logits, but B wide (the test pass keeps the parent's, C wide).
        self._own_rows = np.zeros((self.stream.n_items, self.config.logit_width), dtype=np.float32)
        self._rows_pending = np.zeros(self.stream.n_items, dtype=bool)

    @property
    def ridge(self) -> RidgeHead:
        assert isinstance(self.head, RidgeHead)
        return self.head

    # ---------------------------------------------------------------- mode hooks
    def _ram_ledger(self) -> Ledger:
        cfg = self.config
        return ridge_ledger(cfg.model, cfg.n_devices, cfg.series_length, cfg.n_classes,
                            cfg.schedule.n_train, device=self.device, block_size=cfg.schedule.gram_block)

    def _check_ram(self, ledger: Ledger) -> None:
        check_ridge(ledger, self.config.schedule.n_train, self.config.ram_budget_bytes)

    def _model_costs(self) -> tuple[float, float]:
        transform_s, _ = super()._model_costs()
        cfg = self.config
        # A partial Gram row is B dot products where partial logits are C (the same kernel).
        self._row_s = self._logits_s * cfg.schedule.gram_block / cfg.n_classes
        return transform_s, ridge_solve_cycles(cfg.schedule.n_train, cfg.n_classes) / cycles.CPU_HZ

    def _model_sample_s(self) -> float:
        # a Gram round's sample: its features, its B-wide row, its weights update
        return self._features_s + self._row_s + self._grad_s

    def _phase_head(self, phase: int) -> ShardHead:
        """The ridge head (one phase: the ridge head takes no validation rule)."""
        cfg = self.config
        head = RidgeHead(cfg.n_classes, self.feature_stop - self.feature_start, self.device == 0, cfg.model,
                         self.device, cfg.n_devices, n_train=cfg.schedule.n_train,
                         total_features=self.n_features_total, block_size=cfg.schedule.gram_block)
        self._phase_head_obj = head
        return head

    #: Save at every batch of the stream, not at most once per checkpoint interval: a
    #: restarted device cannot get back the Gram rows it lost (every device sums its own),
    #: so it should lose at most the exchange in flight (C rows; a checkpoint is ~n^2 floats).
    checkpoint_every_progress = True

    @property
    def progress(self) -> int:
        """Checkpoint-worthy progress (node/agent.py): the batches of the stream done."""
        done = self.processed_item
        if done < 0:
            return self.steps_taken
        return self.steps_taken + int(np.searchsorted(self._batch_starts, done, side="right"))

    def final_record(self) -> FinalMetrics:
        """The parent's, with what the solve kept: its samples and its alpha."""
        head = self.ridge
        return replace(super().final_record(), ridge_samples=head.samples_used if head.solved else None,
                       ridge_alpha=head.alpha)

    # ---------------------------------------------------------------- one exchange
    def on_rx(self, msg: Round, rx: Rx) -> None:
        super().on_rx(msg, rx)
        self._advance_weights(msg.series_to)

    def logits_payload(self, first_item: int, stop_item: int) -> tuple[np.ndarray, np.ndarray]:
        """Partial Gram rows of Gram items (B wide), partial logits of test items (their C
        first, then zeros: one slot width on the wire), in item order."""
        a, b = max(first_item, 0), min(stop_item, self.stream.n_items)
        gram = np.flatnonzero(self.stream.kind[a:b] == KIND_TRAIN) + a if b > a else np.zeros(0, np.intp)
        if not len(gram):
            self._advance_weights(a)  # every weight-pass series is in or lost by now
            items, logits = super().logits_payload(first_item, stop_item)
            wide = np.zeros((len(items), self.config.logit_width), dtype=np.float32)
            wide[:, :logits.shape[1]] = logits
            return items, wide
        started = time.perf_counter()
        tables = self.tables
        usable = gram[tables.owned[gram] | self._have[gram]]
        if len(usable) and not self._scaler_done:
            self._finish_calibration()
        rows = np.zeros((len(usable), self.config.logit_width), dtype=np.float32)
        stream = self.stream
        for p in np.unique(stream.epoch[usable]).tolist():  # one Gram pass at a time
            sel = np.flatnonzero(stream.epoch[usable] == p)
            feats = self._scaled(self._features_of(usable[sel]))
            rows[sel] = self.ridge.gram_partial_rows(feats, stream.sample[usable[sel]], int(p))
        self.stats.compute_modeled_s += len(usable) * self._row_s
        self._own_rows[usable] = rows
        self._rows_pending[usable] = True
        self.stats.compute_wall_s += time.perf_counter() - started
        return usable.astype(np.int32), rows

    def receive_logits(self, items: np.ndarray, logits: np.ndarray, mask: np.ndarray) -> None:
        """Gram rows into the Gram matrix (then the solve); test logits as the parent does."""
        kind = self.stream.kind
        inside = (items >= 0) & (items < self.stream.n_items)
        gram = np.zeros(len(items), dtype=bool)
        gram[inside] = kind[items[inside]] == KIND_TRAIN
        if (~gram).any():  # test logits: the first C of the slot
            super().receive_logits(items[~gram], logits[~gram][:, :, :self.config.n_classes], mask[~gram])
        if gram.any():
            started = time.perf_counter()
            for row in np.flatnonzero(gram).tolist():
                self._consume_gram(int(items[row]), logits[row], mask[row])
            self.stats.compute_wall_s += time.perf_counter() - started

    def skip_items(self, first_item: int, stop_item: int) -> None:
        a, b = max(first_item, 0, self.processed_item + 1), min(stop_item, self.stream.n_items)
        for item in (np.flatnonzero(self.stream.kind[a:b] == KIND_TRAIN) + a).tolist():
            self._consume_gram(item, None, None)
        super().skip_items(first_item, stop_item)

    # ---------------------------------------------------------------- the ridge steps
    def _consume_gram(self, item: int, parts: np.ndarray | None, mask: np.ndarray | None) -> None:
        if item <= self.processed_item:
            return
        self.processed_item = item
        own = self._own_rows[item].copy() if self._rows_pending[item] else None
        self._rows_pending[item] = False
        have = self.series_of(item)
        if own is None or have is None or parts is None or mask is None:
            self.gram_rows_missing += 1
        else:
            summed = np.array(parts, dtype=np.float32)
            present = np.array(mask, dtype=bool)
            summed[self.device] = own
            present[self.device] = True
            summed[~present] = np.nan  # a part that did not arrive: the entry is not known
            self.ridge.set_gram_row(int(self.stream.sample[item]), int(self.stream.epoch[item]),
                                    sum_partial_logits(summed), have[1])
            self.stats.compute_modeled_s += self._grad_s
        if self.stream.step_after[item]:
            self._step()  # the solve
        self._forget_series(item)

    def _advance_weights(self, series_done_to: int) -> None:
        """Add the weight-pass series that are here, in item order, up to the first one that
        may still arrive (items before ``series_done_to`` have had their round)."""
        if not self.ridge.solved:
            return
        todo = self._weight_items[self._weight_items > self.processed_item]
        if not len(todo):
            return
        here = self.tables.owned[todo] | self._have[todo]
        settled = here | (todo < series_done_to)
        stop = int(np.argmin(settled)) if not settled.all() else len(todo)
        run = todo[:stop]
        use = run[here[:stop]]
        if len(use):
            started = time.perf_counter()
            feats = self._scaled(self._features_of(use))
            self.ridge.add_weights(feats, self.stream.sample[use])
            self.stats.compute_modeled_s += len(use) * self._grad_s
            self.stats.compute_wall_s += time.perf_counter() - started
        if len(run):
            self.processed_item = int(run[-1])
            self._forget_series(run)
