"""A private-labels device: labels never leave their owner (docs/modes.md).

Per training item ``t`` (rounds from :mod:`protocol.stream.schedule`, mode ``private-labels``):

1. round ``s(t)``: the owner floods the series *without* its label;
2. round ``s(t) + 1``: every device that has the series floods its partial logits;
3. the owner alone sums them (device order, the run's missing-data policy), scores the sample
   and computes ``g = softmax(z) - onehot(y)`` (C float32, :meth:`ShardHead.softmax_gradient`);
4. round ``s(t) + 2``: the owner floods ``g``; every device adds ``g f_i^T`` to its gradient
   (:meth:`ShardHead.accumulate_gradient`) and steps after the last item of a batch.

Bitwise the same arithmetic as the default mode: without loss, the weights are equal.

What a device does when something is missing:

- ``g`` of an item did not arrive (lost, or the owner could not compute it because partial
  logits were missing under ``--missing skip``, or the owner was off): the device skips that
  item's update (``skipped`` counts it) and still steps at the end of the batch;
- the series did not arrive: it has no features for the item, so it skips the update even if
  ``g`` arrives;
- evaluation items: only the owner knows the label, so only the owner scores them (a missing
  partial logit is handled by the policy, an unusable sum is ``skipped``). Every device
  reports its own items' counts; the coordinator adds them up (``coordinator.engine.accuracy``).
"""

from __future__ import annotations

import time

import numpy as np

from node.device.base import PassMetrics
from node.device.rocknet import Device
from protocol.config.ram_ledger import Ledger, private_labels_ledger
from protocol.stream.schedule import KIND_CALIB, KIND_EVAL, KIND_TRAIN
from protocol.wire.frames import Round, Rx

#: The label field of a series that travels without its label.
NO_LABEL = -1


class PrivateLabelsDevice(Device):
    """:class:`node.device.rocknet.Device` whose samples' labels stay on their owner."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._pending_g: dict[int, np.ndarray] = {}  # owner: item -> g to flood
        self._logits_done = -1  # last item whose partial logits this device consumed

    def _ram_ledger(self) -> Ledger:
        """The default mode's ledger plus the ``g`` buffer (checked by the base class)."""
        cfg = self.config
        return private_labels_ledger(
            cfg.model, cfg.n_devices, cfg.series_length, cfg.n_classes, device=self.device
        )

    # ---------------------------------------------------------------- one exchange
    def tx_payload(self, msg: Round) -> dict[str, np.ndarray]:
        fields = super().tx_payload(msg)
        items, grads = self.grad_payload(msg.grad_from, msg.grad_to)
        fields.update(grad_items=items, grads=grads)
        return fields

    def on_rx(self, msg: Round, rx: Rx) -> None:
        super().on_rx(msg, rx)
        self.receive_grads(msg.grad_from, msg.grad_to, rx.grad_items, rx.grads)

    # ---------------------------------------------------------------- series
    def series_payload(self, first_round: int, stop_round: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Own series of items ``[first_round, stop_round)``; the label field is
        :data:`NO_LABEL` (the label stays here)."""
        items, series, labels = super().series_payload(first_round, stop_round)
        return items, series, np.full(labels.shape, NO_LABEL, dtype=np.int16)

    # ---------------------------------------------------------------- logits -> g (owner)
    def receive_logits(self, items: np.ndarray, logits: np.ndarray, mask: np.ndarray) -> None:
        """Owner: sum the partial logits of its items, score them, compute ``g``."""
        started = time.perf_counter()
        for row, item in enumerate(items.tolist()):
            if 0 <= item < self.stream.n_items and item > self._logits_done:
                self._logits_of(item, logits[row], mask[row])
        self.stats.compute_wall_s += time.perf_counter() - started

    def skip_items(self, first_item: int, stop_item: int) -> None:
        """The logits exchange of these items went by without this device."""
        for item in range(max(first_item, 0), min(stop_item, self.stream.n_items)):
            if item > self._logits_done and self.stream.kind[item] != KIND_CALIB:
                self._logits_of(item, None, None)

    def _logits_of(self, item: int, parts: np.ndarray | None, mask: np.ndarray | None) -> None:
        kind = int(self.stream.kind[item])
        if kind == KIND_CALIB:
            return
        self._logits_done = item
        own = self._take_own_logits(item)
        if kind == KIND_EVAL:
            self._forget_series(item)  # own series stay (the shard)
        if not self.owns(item):
            return
        metrics = self._pass(item)
        total = self._summed_logits(own, parts, mask, self.config.missing_policy)
        if total is None:
            if kind == KIND_EVAL:
                metrics.skipped += 1  # a training item is counted when its g is missing
            return
        label = self._own_series(item)[1]
        if kind == KIND_TRAIN:
            g, _ = self.head.softmax_gradient(total, label)
            self._pending_g[item] = g
        self._score(metrics, total, label)

    def grad_payload(self, first_item: int, stop_item: int) -> tuple[np.ndarray, np.ndarray]:
        """Owner: the ``g`` of its items in ``[first_item, stop_item)`` it could compute."""
        items = [t for t in range(max(first_item, 0), min(stop_item, self.stream.n_items))
                 if t in self._pending_g]
        grads = np.zeros((len(items), self.config.n_classes), dtype=np.float32)
        for row, item in enumerate(items):
            grads[row] = self._pending_g[item]
        return np.asarray(items, dtype=np.int32), grads

    # ---------------------------------------------------------------- g -> gradient (all)
    def receive_grads(self, first_item: int, stop_item: int, items: np.ndarray, grads: np.ndarray) -> None:
        """Learn from the ``g`` of items ``[first_item, stop_item)`` that arrived (in item
        order; what did not arrive is skipped, the batch still steps)."""
        started = time.perf_counter()
        delivered = {int(t): row for row, t in enumerate(items.tolist())}
        for item in range(max(first_item, 0), min(stop_item, self.stream.n_items)):
            if not self.stream.needs_grad(item) or item <= self.processed_item:
                continue
            g = self._pending_g.pop(item, None)  # an owner always has its own g
            if g is None and item in delivered and grads.shape[1:] == (self.config.n_classes,):
                g = np.array(grads[delivered[item]], dtype=np.float32)
            self._apply_grad(item, g)
        self.stats.compute_wall_s += time.perf_counter() - started

    def _apply_grad(self, item: int, g: np.ndarray | None) -> None:
        self.processed_item = item
        metrics = self._pass(item)
        if g is None or self.series_of(item) is None:
            metrics.skipped += 1
        else:
            feats = self._scaled(self._features_of([item]))[0]
            self.head.accumulate_gradient(feats, g)
            self.stats.compute_modeled_s += self._grad_s
        if self.stream.step_after[item]:
            self._step()
        self._forget_series(item)

    def _pass(self, item: int) -> PassMetrics:
        """The metrics of ``item``'s pass (scoring and updates of one pass interleave with
        the next pass's here, so passes are looked up by kind and epoch)."""
        kind, epoch = self._pass_kind(item), int(self.stream.epoch[item])
        for p in reversed(self.passes):
            if p.kind == kind and p.epoch == epoch:
                return p
        self.passes.append(PassMetrics(kind=kind, epoch=epoch))
        return self.passes[-1]
