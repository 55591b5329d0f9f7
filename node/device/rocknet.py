"""One emulated device: its kernel shard, its head and what it does with each exchange.

No sockets here: :class:`Device` turns a ROUND into the payloads it floods and consumes what
the air delivered (RX). ``node/process.py`` moves the frames; tests drive the state machine
directly.

Per item ``t`` of the stream (see ``protocol/stream/schedule.py``): the owner floods the series in
round ``t``; every device that has the series computes its features and partial logits
``z_i = W_i f_i`` and floods them in round ``t + 1``; every device sums the partial logits it
received (device order), and for a training item accumulates ``(p - onehot(y)) f_i^T``; after
the last item of a batch it takes an optimizer step.

With a validation rule (``ModelConfig.selection``, :mod:`protocol.stream.validation`) the
device also scores the validation items as they pass and, at the first item of a new stream
phase, swaps its head: a fresh head for the next weight-decay candidate, then a fresh one
with the candidate its validation counts chose (``"decay"``), or its copy of the weights of
the best validation epoch (``"epoch"``). Every device sees the same summed logits in a
lossless run, so all choose alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from node.device.base import DeviceBase, DeviceData, ExchangeStats, PassMetrics, score, score_rows
from node.mcu import cycles, profiles
from node.mcu.firmware_memory import firmware_ledger
from protocol.config.ram_ledger import Ledger
from protocol.config.ram_ledger import check as check_ram
from protocol.config.ram_ledger import ledger as ram_ledger
from node.ml.head import ShardHead, sum_partial_logits, sum_partial_logits_rows
from protocol.config.model import feature_ranges
from protocol.stream.schedule import KIND_CALIB, KIND_TRAIN
from protocol.stream.validation import select_candidate
from protocol.wire.frames import Round, Rx

# Re-exported: callers (tests, the in-process link) import the shard and metrics from here.
__all__ = ["Device", "DeviceData", "ExchangeStats", "PassMetrics", "score"]


@dataclass
class Device(DeviceBase):
    """The paper's device: its kernel shard, ``W_i`` and the per-item series/logits traffic."""

    def __post_init__(self) -> None:
        # The validation rule (set first: the base builds the head): the phase the head is
        # for, correct counts of the judged validation passes (by their epoch field:
        # candidate or epoch), the chosen candidate or epoch (-1: not yet) and, "epoch",
        # the best epoch's weights.
        self._phase = 0
        self.val_correct: dict[int, int] = {}
        self.chosen = -1
        self._best: tuple[int, np.ndarray, np.ndarray] | None = None
        self._phase_head_obj: ShardHead | None = None  # the head _phase_head built last
        super().__post_init__()
        # Own partial logits per item (float32 [n_items, C]) and whether they are pending
        # (computed, the item's logits not yet consumed): arrays, filled and read by slices.
        self._own_logits = np.zeros((self.stream.n_items, self.config.n_classes), dtype=np.float32)
        self._own_pending = np.zeros(self.stream.n_items, dtype=bool)

    # ---------------------------------------------------------------- mode hooks
    def _ram_ledger(self) -> Ledger:
        cfg = self.config
        if cfg.profile == "firmware":  # the official firmware's buffers (docs/fidelity.md)
            return firmware_ledger(cfg.model, cfg.n_devices, cfg.series_length, cfg.n_classes,
                                   cfg.schedule.n_train, cfg.schedule.n_test)
        return ram_ledger(cfg.model, cfg.n_devices, cfg.series_length, cfg.n_classes, device=self.device)

    def _check_ram(self, ledger: Ledger) -> None:
        cfg = self.config
        check_ram(ledger, cfg.ram_budget_bytes, cfg=cfg.model, series_length=cfg.series_length,
                  n_classes=cfg.n_classes)

    def _model_costs(self) -> tuple[float, float]:
        cfg = self.config
        profile = profiles.get_profile(cfg.profile)
        parts = profiles.sample_cycles(profile, cfg.model, cfg.n_devices, cfg.series_length, cfg.n_classes,
                                       device=self.device)
        hz = cycles.CPU_HZ
        # Split by phase: features (recomputed at every use), partial logits, gradient.
        self._logits_s = parts["partial logits"] / hz
        self._grad_s = (parts["sum logits + softmax"] + parts["gradient accumulation"]) / hz
        transform_s = (parts["transform"] + parts["scaling"] + parts["overhead"]) / hz
        step_s = profiles.step_s(profile, cfg.model, cfg.n_devices, cfg.series_length, cfg.n_classes,
                                 device=self.device)
        return transform_s, step_s

    def _make_head(self) -> ShardHead:
        cfg = self.config
        ranges = feature_ranges(cfg.n_devices, self.features_per_dilation)
        self.feature_start, self.feature_stop = ranges[self.device]
        self.n_features_total = ranges[-1][1]
        return self._phase_head(0)

    def _phase_head(self, phase: int) -> ShardHead:
        """A fresh head for stream phase ``phase`` (its weight decay and its step count)."""
        cfg = self.config
        model, steps = cfg.model, cfg.schedule.train_steps
        if cfg.schedule.selection != "none":
            model = replace(model, weight_decay=model.phase_weight_decay(phase, max(self.chosen, 0)))
            steps = self.stream.phase_steps(phase)
        head = ShardHead(
            n_classes=cfg.n_classes,
            n_features=self.feature_stop - self.feature_start,
            owns_bias=self.device == 0,
            cfg=model,
            device=self.device,
            n_devices=cfg.n_devices,
            total_features=self.n_features_total,
            total_steps=steps,
        )
        self._phase_head_obj = head
        return head

    # ---------------------------------------------------------------- the validation rule
    def _sync_phase(self, item: int) -> None:
        """Before ``item`` is computed or learned from: judge the validation passes that are
        over, and swap the head if ``item`` starts a new phase."""
        selection = self.config.schedule.selection
        if selection == "none":
            return
        stream = self.stream
        # A head this device did not build came from a checkpoint (node/checkpoint.py keeps
        # the head's state and the passes, not the phase): take the phase of the last item
        # done, recount the validation passes, and rebuild the head for that phase. The
        # "epoch" rule's copy of the best weights is not in a checkpoint: after a rejoin it
        # keeps only bests seen from then on.
        resumed = self.head is not self._phase_head_obj
        if resumed:
            self._phase = int(stream.phase[self.processed_item]) if self.processed_item >= 0 else 0
            self.val_correct, self._best = {}, None
        val_passes = [p for p in self.passes if p.kind == "val"]
        if (val_passes and self.passes[-1] is val_passes[-1] and bool(stream.validation[item])
                and int(stream.epoch[item]) == val_passes[-1].epoch):
            val_passes = val_passes[:-1]  # still running
        for p in val_passes:
            if p.epoch in self.val_correct:
                continue
            self.val_correct[p.epoch] = p.correct
            if selection == "epoch" and not resumed and (self._best is None or p.correct > self._best[0]):
                self._best = (p.correct, self.head.W.copy(), self.head.b.copy())
        if resumed:
            k = stream.config.n_candidates
            if selection == "decay" and self._phase >= k:
                self.chosen = select_candidate([self.val_correct.get(c, 0) for c in range(k)])
            state = self.head.state_dict()
            self.head = self._phase_head(self._phase)
            self.head.load_state_dict(state)
        phase = int(stream.phase[item])
        if phase == self._phase:
            return
        self._phase = phase
        if selection == "decay":
            k = stream.config.n_candidates
            if phase >= k:
                self.chosen = select_candidate([self.val_correct.get(c, 0) for c in range(k)])
            self.head = self._phase_head(phase)
        elif self._best is not None:  # "epoch": the final test pass runs on the best epoch
            self.chosen = min(e for e, c in self.val_correct.items() if c == self._best[0])
            self.head.W[...] = self._best[1]
            self.head.b[...] = self._best[2]

    def _model_sample_s(self) -> float:
        return self._features_s + self._logits_s + self._grad_s

    # ---------------------------------------------------------------- one exchange
    def tx_payload(self, msg: Round) -> dict[str, np.ndarray]:
        """The TX fields (besides exchange, device, stats) this device sends for ``msg``."""
        s_items, series, labels = self.series_payload(msg.series_from, msg.series_to)
        l_items, logits = self.logits_payload(msg.logits_from, msg.logits_to)
        return {"series_items": s_items, "series": series, "labels": labels,
                "logits_items": l_items, "logits": logits}

    def on_rx(self, msg: Round, rx: Rx) -> None:
        """Consume what the air delivered for the exchange of ``msg``."""
        self.receive_series(msg.series_from, msg.series_to, rx.series_items, rx.series, rx.labels)
        self.receive_logits(rx.logits_items, rx.logits, rx.logits_mask)
        self.skip_items(msg.logits_from, msg.logits_to)

    # ---------------------------------------------------------------- TX side
    def series_payload(self, first_round: int, stop_round: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The series this device floods in rounds ``[first_round, stop_round)``.

        Returns ``(items int32[k], series int8[k, L], labels int16[k])``.
        """
        tables = self.tables
        a, b = max(first_round, 0), min(stop_round, self.stream.n_items)
        lo, hi = np.searchsorted(tables.own_items, (a, max(a, b))).tolist()
        items = tables.own_items[lo:hi]
        rows = tables.own_rows(items)
        return (items.astype(np.int32), tables.own_series[rows],
                tables.own_labels[rows].astype(np.int16))

    def logits_payload(self, first_item: int, stop_item: int) -> tuple[np.ndarray, np.ndarray]:
        """Partial logits of items ``[first_item, stop_item)`` whose series this device has.

        All use the current ``W_i`` (the coordinator only asks for items whose predecessors'
        optimizer steps are done). Returns ``(items int32[m], logits float32[m, C])``.
        """
        started = time.perf_counter()
        a, b = max(first_item, 0), min(stop_item, self.stream.n_items)
        items = np.zeros(0, dtype=np.intp)
        if b > a:
            self._sync_phase(a)
            tables = self.tables
            usable = (tables.owned[a:b] | self._have[a:b]) & ~tables.calib[a:b]
            items = np.flatnonzero(usable) + a
        if len(items) and not self._scaler_done:
            self._finish_calibration()
        if not len(items):
            return np.zeros(0, dtype=np.int32), np.zeros((0, self.config.n_classes), np.float32)
        feats = self._scaled(self._features_of(items))
        logits = self.head.partial_logits(feats)
        self.stats.compute_modeled_s += len(items) * self._logits_s
        self._own_logits[items] = logits
        self._own_pending[items] = True
        self.stats.compute_wall_s += time.perf_counter() - started
        return items.astype(np.int32), logits

    def _take_own_logits(self, item: int) -> np.ndarray | None:
        """This device's pending partial logits of ``item`` (None: none), no longer pending."""
        if not self._own_pending[item]:
            return None
        self._own_pending[item] = False
        return self._own_logits[item].copy()

    def _finish_calibration(self) -> None:
        if self.scaler is not None:
            if self.scaler.count > 0:
                self.scaler.finalize()
            else:  # no calibration sample reached this device: leave features unscaled
                self.scaler.finalized = True
        self._scaler_done = True

    # ---------------------------------------------------------------- RX side
    def receive_series(
        self, first_round: int, stop_round: int, items: np.ndarray, series: np.ndarray,
        labels: np.ndarray,
    ) -> None:
        """Store the series delivered in rounds ``[first_round, stop_round)``.

        Calibration items (own ones included) update this device's feature statistics.
        """
        tables = self.tables
        a, b = max(first_round, 0), min(stop_round, self.stream.n_items)
        if len(items):
            rows = np.flatnonzero((items >= a) & (items < b))
            rows = rows[~tables.owned[items[rows]]]
            got = items[rows].astype(np.intp)
            if len(got) > 1 and not bool((np.diff(got) > 0).all()):
                # Unordered or repeated items (not what a coordinator sends): the last row
                # of an item wins, as when they were stored one by one.
                last = {t: row for t, row in zip(got.tolist(), rows.tolist())}
                got = np.array(sorted(last), dtype=np.intp)
                rows = np.array([last[t] for t in got.tolist()], dtype=np.intp)
            self._rx_series[tables.slot[got]] = series[rows]
            self._rx_labels[got] = labels[rows]
            self._have[got] = True
        # The ridge head's weight pass travels as calibration items too; its series stay
        # until node/device/ridge.py has used them.
        scaler_pass = tables.calib[a:b] & ~self.stream.weight_items[a:b]
        if b > a and bool(scaler_pass.any()):
            calib = np.flatnonzero(scaler_pass & (tables.owned[a:b] | self._have[a:b])) + a
            if len(calib) and not self._scaler_done and self.scaler is not None:
                started = time.perf_counter()
                self.scaler.update(self._features_of(calib))
                self.stats.compute_wall_s += time.perf_counter() - started
            self._forget_series(calib)

    def receive_logits(self, items: np.ndarray, logits: np.ndarray, mask: np.ndarray) -> None:
        """Sum the delivered partial logits per item and learn from them, in item order.

        ``logits`` is float32 [m, N, C] and ``mask`` bool [m, N] says which devices' partial
        logits arrived. This device's own part is always used.
        """
        started = time.perf_counter()
        if not self._consume_complete(items, logits, mask):
            policy = self.config.missing_policy
            for row, item in enumerate(items.tolist()):
                if not 0 <= item < self.stream.n_items:
                    continue
                self._consume(item, logits[row], mask[row], policy)
        self.stats.compute_wall_s += time.perf_counter() - started

    def _consume_complete(self, items: np.ndarray, logits: np.ndarray, mask: np.ndarray) -> bool:
        """The common case of :meth:`receive_logits` as whole arrays: every partial logit of
        new, consecutive non-calibration items arrived and this device has their series.

        Bitwise what :meth:`_consume` does item by item (the device-order float32 sum is
        elementwise, :meth:`ShardHead.accumulate_batch` adds rows in order, scores are added
        in order); returns False, having changed nothing, when the case does not apply.
        """
        stream, tables, n, me = self.stream, self.tables, len(items), self.device
        if n == 0 or not (bool(mask[:, :me].all()) and bool(mask[:, me + 1:].all())):  # own column: ours
            return False
        first, last = int(items[0]), int(items[-1])
        span = slice(first, last + 1)
        if (first <= self.processed_item or last >= stream.n_items or last - first + 1 != n
                or (n > 1 and not bool((np.diff(items) == 1).all()))
                or bool(tables.calib[span].any()) or not bool(self._own_pending[span].all())):
            return False
        parts = np.array(logits, dtype=np.float32)  # [m, N, C]
        parts[:, me] = self._own_logits[span]
        self._own_pending[span] = False
        totals = sum_partial_logits_rows(parts)  # devices in order, per item
        self._last_logits[:] = parts[-1]
        self._have_last[:] = True
        labels = self._labels_of(np.arange(first, last + 1))
        # Runs of one pass that end at an optimizer step at the latest.
        cuts = [0, *(np.flatnonzero(tables.run_starts[first + 1:last + 1]) + 1).tolist(), n]
        for a, b in zip(cuts[:-1], cuts[1:]):
            head, tail = first + a, first + b - 1
            self._sync_phase(head)
            metrics = self._pass(head)
            score_rows(metrics, totals[a:b], labels[a:b])
            if tables.train[head]:
                feats = self._scaled(self._features_of(np.arange(head, tail + 1)))
                self.head.accumulate_batch(feats, totals[a:b], labels[a:b])
                for _ in range(b - a):  # added one by one, as :meth:`_consume` does
                    self.stats.compute_modeled_s += self._grad_s
                if stream.step_after[tail]:
                    self._step()
            self.processed_item = tail
        self._forget_series(span)
        return True

    def skip_items(self, first_item: int, stop_item: int) -> None:
        """Items whose logits exchange this device missed entirely (it was silent/off)."""
        a, b = max(first_item, 0, self.processed_item + 1), min(stop_item, self.stream.n_items)
        if b > a:
            for item in (np.flatnonzero(~self.tables.calib[a:b]) + a).tolist():
                self._consume(item, None, None, self.config.missing_policy)

    def _consume(self, item: int, parts: np.ndarray | None, mask: np.ndarray | None, policy: str) -> None:
        kind = int(self.stream.kind[item])
        if kind == KIND_CALIB or item <= self.processed_item:
            return
        self._sync_phase(item)
        self.processed_item = item
        metrics = self._pass(item)
        own = self._take_own_logits(item)
        have = self.series_of(item)
        total: np.ndarray | None = None
        if have is not None:
            total = self._summed_logits(own, parts, mask, policy)
        if total is None or have is None:
            metrics.skipped += 1
        else:
            label = have[1]
            self._score(metrics, total, label)
            if kind == KIND_TRAIN:
                feats = self._scaled(self._features_of([item]))[0]
                self.head.accumulate(feats, total, label)
                self.stats.compute_modeled_s += self._grad_s
        if kind == KIND_TRAIN and self.stream.step_after[item]:
            self._step()
        self._forget_series(item)

    def _summed_logits(
        self, own: np.ndarray | None, parts: np.ndarray | None, mask: np.ndarray | None, policy: str
    ) -> np.ndarray | None:
        """The summed logits of one item under the missing-data ``policy`` (None: unusable).

        ``own``: this device's partial logits; ``parts`` float32 [N, C] and ``mask`` bool [N]:
        what arrived. Updates the last partial logits seen per device (for ``reuse``).
        """
        if own is None or parts is None or mask is None:
            return None
        parts = np.array(parts, dtype=np.float32)
        present = np.array(mask, dtype=bool)
        parts[self.device] = own
        present[self.device] = True
        total: np.ndarray | None = None
        if not present.all():
            if policy == "reuse":
                fill = ~present & self._have_last
                parts[fill] = self._last_logits[fill]
                parts[~present & ~self._have_last] = 0.0
            elif policy != "skip":  # "sum": what did not arrive adds nothing
                parts[~present] = 0.0
        if policy != "skip" or present.all():
            total = sum_partial_logits(parts)
        self._last_logits[present] = parts[present]
        self._have_last |= present
        return total

    _score = staticmethod(score)
