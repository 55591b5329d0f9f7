"""A data-parallel device: the ordinary distributed-learning baseline (docs/modes.md).

Every device holds the *whole* model: all 84 kernels (fitted on the same training rows as
the sharded model), the full head ``W float32[C, F]`` and ``b``, initialised like device 0
of a one-device run (``rng([seed, 0])``), so all replicas start equal. It trains on its own
samples only and talks in *syncs* (:class:`protocol.stream.schedule.Sync`):

- after the calibration pass, every device floods its feature statistics (sample count and
  float64 Welford mean and M2 of every feature); each device merges all that arrived in
  device order (Chan's parallel update) and fixes its scaler: equal statistics everywhere;
- per optimizer batch, every device processes its own items of the batch (features, logits,
  ``g f^T`` accumulated as in :class:`node.ml.head.ShardHead`), floods its gradient sums and
  sample count, then sums what arrived in device order and takes the Adam step on the mean:
  the same step on every replica.

Evaluation items are scored locally by their owner (only it holds them); the coordinator
adds every owner's counts up. With one device nothing arrives from anybody, and the run is
bitwise the centralized reference with one shard.

Under loss a device averages the messages that arrived in full (a message is lost if any
of its packets is): replicas may then drift apart (``weights_digest`` in the FINAL stats
shows it). A device that misses a sync exchange altogether discards its own gradient of
that batch and steps with nothing (weights unchanged, the learning-rate schedule advances);
a missed statistics sync leaves it with its own statistics.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import SupportsInt, cast

import numpy as np

from node.device.base import DeviceBase, score
from node.mcu import cycles
from protocol.config.ram_ledger import Ledger, check_data_parallel, data_parallel_ledger
from node.ml.head import ShardHead
from protocol.config.model import n_features_total
from protocol.stream.modes import DP_COUNT_BYTES, DP_STATS_COUNT_BYTES
from protocol.stream.schedule import KIND_CALIB, KIND_TRAIN, Sync
from protocol.wire.frames import Round, Rx
from protocol.wire.stats import FinalMetrics


def merge_statistics(parts: list[tuple[int, np.ndarray, np.ndarray]]) -> tuple[int, np.ndarray, np.ndarray]:
    """Chan et al.'s parallel Welford update of ``(count, mean, m2)`` parts, in list order.

    The first part with samples is taken as is (bitwise), so one part gives itself back.
    """
    count, mean, m2 = 0, np.zeros(0), np.zeros(0)
    for n_b, mean_b, m2_b in parts:
        if n_b <= 0:
            continue
        if count == 0:
            count, mean, m2 = n_b, np.array(mean_b, dtype=np.float64), np.array(m2_b, dtype=np.float64)
            continue
        total = count + n_b
        delta = mean_b - mean
        mean = mean + delta * (n_b / total)
        m2 = m2 + m2_b + delta * delta * (count * n_b / total)
        count = total
    return count, mean, m2


@dataclass
class DataParallelDevice(DeviceBase):
    """State machine of data-parallel device ``device``: a whole replica of the model."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.n_features_total = self.n_features
        self._sent: tuple[int, np.ndarray] | None = None  # (sync, message) last sent

    # ---------------------------------------------------------------- mode hooks
    def _ram_ledger(self) -> Ledger:
        cfg = self.config
        return data_parallel_ledger(cfg.model, cfg.n_devices, cfg.series_length, cfg.n_classes,
                                    device=self.device)

    def _check_ram(self, ledger: Ledger) -> None:
        check_data_parallel(ledger, self.config.ram_budget_bytes)

    def _model_costs(self) -> tuple[float, float]:
        """The whole model is one device of one; a step also sums everybody's gradient."""
        cfg = self.config
        hz = cycles.CPU_HZ
        parts = cycles.cycles_per_sample(cfg.model, 1, cfg.series_length, cfg.n_classes, device=0)
        sample_s = sum(parts.values()) / hz
        n_params = cfg.n_classes * (n_features_total(self.features_per_dilation) + 1)
        sum_others = (cfg.n_devices - 1) * n_params * cycles.DEFAULT_COSTS.logit_sum_per_value
        step_s = cycles.step_seconds(cfg.model, 1, cfg.series_length, cfg.n_classes) + sum_others / hz
        return sample_s, step_s

    def _make_head(self) -> ShardHead:
        cfg = self.config
        n_features = n_features_total(self.features_per_dilation)
        # Initialised like device 0 of a one-device run: all replicas start equal.
        return ShardHead(
            n_classes=cfg.n_classes, n_features=n_features, owns_bias=True, cfg=cfg.model,
            device=0, n_devices=1, total_features=n_features,
            total_steps=cfg.schedule.train_steps,
        )

    def _model_sample_s(self) -> float:
        return self._features_s

    # ---------------------------------------------------------------- bookkeeping
    @property
    def synced(self) -> int:
        """The last sync applied (derived from the steps taken and the scaler's state, so a
        checkpoint restores it)."""
        calib = 1 if self.stream.syncs and self.stream.syncs[0].kind == KIND_CALIB else 0
        done_calib = calib if (calib and self._scaler_done) else 0
        return done_calib + self.steps_taken - 1

    def _scaled(self, feats: np.ndarray) -> np.ndarray:
        if self.scaler is None:
            return feats
        if not self.scaler.finalized:  # no statistics ever arrived: stay unscaled
            self.scaler.finalized = True
            self._scaler_done = True
        return self.scaler.apply(feats)

    # ---------------------------------------------------------------- local work
    def _process(self, first: int, stop: int, train: bool = True) -> None:
        """Own items of ``[first, stop)`` not processed yet, in order (``train=False``: the
        sync of these training items is lost, they are skipped)."""
        first = max(first, self.processed_item + 1)
        own = [t for t in range(first, min(stop, self.stream.n_items)) if self.owns(t)]
        if stop > first:
            self.processed_item = max(self.processed_item, min(stop, self.stream.n_items) - 1)
        run: list[int] = []
        for t in own + [-1]:
            if run and (t < 0 or self.stream.kind[t] != self.stream.kind[run[0]]
                        or self.stream.epoch[t] != self.stream.epoch[run[0]]):
                self._process_run(run, train)
                run = []
            if t >= 0:
                run.append(t)

    def _process_run(self, items: list[int], train: bool) -> None:
        kind = int(self.stream.kind[items[0]])
        feats = self._features_of(items)
        if kind == KIND_CALIB:
            if self.scaler is not None and not self._scaler_done:
                self.scaler.update(feats)
            return
        metrics = self._pass(items[0])
        if kind == KIND_TRAIN and not train:
            metrics.skipped += len(items)
            return
        scaled = self._scaled(feats)
        logits = self.head.partial_logits(scaled)
        labels = np.asarray([self._own_series(t)[1] for t in items], dtype=np.int64)
        for row in range(len(items)):
            score(metrics, logits[row], int(labels[row]))
        if kind == KIND_TRAIN:
            self.head.accumulate_batch(scaled, logits, labels)

    # ---------------------------------------------------------------- one exchange
    def tx_payload(self, msg: Round) -> dict[str, np.ndarray]:
        """Process the own items before sync ``msg.sync`` and return the sync message."""
        started = time.perf_counter()
        cfg = self.config
        fields: dict[str, np.ndarray] = {
            "series_items": np.zeros(0, np.int32),
            "series": np.zeros((0, cfg.series_length), np.int8),
            "labels": np.zeros(0, np.int16),
            "logits_items": np.zeros(0, np.int32),
            "logits": np.zeros((0, cfg.n_classes), np.float32),
        }
        if not 0 <= msg.sync < len(self.stream.syncs) or msg.sync <= self.synced:
            return fields
        if self._sent is not None and self._sent[0] == msg.sync:  # asked again (a restart)
            fields["sync_payload"] = self._sent[1]
            return fields
        for missed in range(self.synced + 1, msg.sync):
            self._miss(self.stream.syncs[missed])
        sync = self.stream.syncs[msg.sync]
        self._process(sync.local_from, sync.local_to)
        payload = self._statistics_message() if sync.kind == KIND_CALIB else self._gradient_message()
        self._sent = (msg.sync, payload)
        fields["sync_payload"] = payload
        self.stats.compute_wall_s += time.perf_counter() - started
        return fields

    def on_rx(self, msg: Round, rx: Rx) -> None:
        """Apply the sync with the messages that arrived."""
        if not 0 <= msg.sync < len(self.stream.syncs) or msg.sync != self.synced + 1:
            return
        started = time.perf_counter()
        sync = self.stream.syncs[msg.sync]
        own = self._sent[1] if self._sent is not None and self._sent[0] == msg.sync else None
        messages: dict[int, np.ndarray] = {}
        for row, source in enumerate(rx.sync_sources.tolist()):
            if 0 <= source < self.config.n_devices and source != self.device:
                if rx.sync_payloads.shape[1:] == (sync.message_bytes,):
                    messages[source] = rx.sync_payloads[row]
        if own is not None:
            messages[self.device] = own
        if sync.kind == KIND_CALIB:
            self._apply_statistics(messages)
        else:
            self._apply_gradients(messages)
        if msg.sync == len(self.stream.syncs) - 1:
            self._process(self.stream.trailing_from, self.stream.n_items)
        self.stats.compute_wall_s += time.perf_counter() - started

    def _miss(self, sync: Sync) -> None:
        """A sync this device never completed: no message from anybody."""
        self._process(sync.local_from, sync.local_to, train=False)
        if sync.kind == KIND_CALIB:
            self._apply_statistics({})
        else:
            self.head.grad_W[:] = 0.0
            self.head.grad_b[:] = 0.0
            self.head.count = 0
            self._step()

    # ---------------------------------------------------------------- statistics sync
    def _statistics_message(self) -> np.ndarray:
        assert self.scaler is not None
        state = self.scaler.state_dict()
        return np.concatenate([
            np.asarray([state["count"]], dtype="<i8").view(np.uint8),
            np.asarray(state["welford_mean"], dtype="<f8").view(np.uint8),
            np.asarray(state["welford_m2"], dtype="<f8").view(np.uint8),
        ])

    def _parse_statistics(self, message: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        raw = np.ascontiguousarray(message, dtype=np.uint8)
        f = self.n_features
        count = int(raw[:DP_STATS_COUNT_BYTES].view("<i8")[0])
        body = raw[DP_STATS_COUNT_BYTES:].view("<f8")
        return count, body[:f].astype(np.float64), body[f:2 * f].astype(np.float64)

    def _apply_statistics(self, messages: dict[int, np.ndarray]) -> None:
        if self.scaler is None:
            self._scaler_done = True
            return
        parts = [self._parse_statistics(messages[d]) for d in sorted(messages)]
        if not parts:  # nothing arrived, not even our own message: use what we have
            state = self.scaler.state_dict()
            parts = [(int(cast(SupportsInt, state["count"])), cast(np.ndarray, state["welford_mean"]),
                      cast(np.ndarray, state["welford_m2"]))]
        count, mean, m2 = merge_statistics(parts)
        if count > 0:
            state = self.scaler.state_dict()
            state.update(count=count, welford_mean=mean, welford_m2=m2, finalized=False)
            self.scaler.load_state_dict(state)
            self.scaler.finalize()
        else:
            self.scaler.finalized = True  # no calibration sample anywhere: unscaled
        self._scaler_done = True

    # ---------------------------------------------------------------- gradient sync
    def _gradient_message(self) -> np.ndarray:
        h = self.head
        return np.concatenate([
            np.asarray([h.count], dtype="<i4").view(np.uint8),
            np.ascontiguousarray(h.grad_W, dtype="<f4").reshape(-1).view(np.uint8),
            np.ascontiguousarray(h.grad_b, dtype="<f4").view(np.uint8),
        ])

    def _apply_gradients(self, messages: dict[int, np.ndarray]) -> None:
        """Sum the gradient messages in device order and step on their mean."""
        c, f = self.config.n_classes, self.n_features
        total_w: np.ndarray | None = None
        total_b = np.zeros(c, dtype=np.float32)
        total_n = 0
        for source in sorted(messages):
            raw = np.ascontiguousarray(messages[source], dtype=np.uint8)
            count = int(raw[:DP_COUNT_BYTES].view("<i4")[0])
            body = raw[DP_COUNT_BYTES:].view("<f4")
            g_w, g_b = body[:c * f].reshape(c, f), body[c * f:c * f + c]
            if total_w is None:
                total_w, total_b = np.array(g_w, dtype=np.float32), np.array(g_b, dtype=np.float32)
            else:
                total_w += g_w
                total_b += g_b
            total_n += count
        h = self.head
        if total_w is None:
            h.grad_W[:] = 0.0
            h.grad_b[:] = 0.0
            h.count = 0
        else:
            h.grad_W[:] = total_w
            h.grad_b[:] = total_b
            h.count = total_n
        self._step()

    # ---------------------------------------------------------------- reporting
    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W float32[C, F], b float32[C])``: this replica's whole head."""
        return self.head.W.copy(), self.head.b.copy()

    def final_record(self) -> FinalMetrics:
        """Per-pass metrics (the final evaluation is scored here if no sync triggered it)
        and this replica's weights digest (equal digests: equal replicas)."""
        if self.synced >= len(self.stream.syncs) - 1:
            self._process(self.stream.trailing_from, self.stream.n_items)
        digest = hashlib.sha256(self.head.W.tobytes() + self.head.b.tobytes()).hexdigest()[:16]
        return FinalMetrics(passes=tuple(p.record() for p in self.passes), steps=self.steps_taken,
                            weights_digest=digest)
