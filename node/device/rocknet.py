"""One emulated device: its kernel shard, its head and what it does with each exchange.

No sockets here: :class:`Device` turns a ROUND into the payloads it floods and consumes what
the air delivered (RX). ``node/process.py`` moves the frames; tests drive the state machine
directly.

Per item ``t`` of the stream (see ``protocol/stream/schedule.py``): the owner floods the series in
round ``t``; every device that has the series computes its features and partial logits
``z_i = W_i f_i`` and floods them in round ``t + 1``; every device sums the partial logits it
received (device order), and for a training item accumulates ``(p - onehot(y)) f_i^T``; after
the last item of a batch it takes an optimizer step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from node.mcu import cycles
from node.ml.head import ShardHead, sum_partial_logits
from node.mcu.memory import check as check_ram
from node.mcu.memory import ledger as ram_ledger
from node.ml.minirocket import fit_biases, transform
from node.ml.scaling import FeatureScaler
from protocol.wire.frames import Round, Rx
from protocol.config.model import feature_ranges, fit_dilations, kernel_ranges, total_steps
from protocol.stream.modes import stream_for
from protocol.config.run import RunConfig
from protocol.stream.schedule import KIND_CALIB, KIND_EVAL, KIND_TRAIN


@dataclass
class PassMetrics:
    """Running metrics of one pass (training epoch or evaluation), as this device sees them."""

    kind: str
    epoch: int
    correct: int = 0
    total: int = 0
    loss_sum: float = 0.0
    skipped: int = 0  # samples this device could not use (series or logits missing)

    def as_dict(self) -> dict[str, Any]:
        accuracy = self.correct / self.total if self.total else None
        loss = self.loss_sum / self.total if self.total else None
        return {
            "kind": self.kind,
            "epoch": self.epoch,
            "correct": self.correct,
            "total": self.total,
            "accuracy": accuracy,
            "loss": loss,
            "skipped": self.skipped,
        }


@dataclass
class ExchangeStats:
    """What a device reports with each TX: host wall time and modeled MCU time (seconds)."""

    compute_wall_s: float = 0.0
    compute_modeled_s: float = 0.0
    samples_transformed: int = 0
    steps: int = 0


@dataclass
class DeviceData:
    """The device's data shard ("flashed" by the coordinator at registration)."""

    x_train: np.ndarray  # int8 [n_i, L]
    y_train: np.ndarray  # int [n_i]
    train_start: int
    x_test: np.ndarray  # int8 [m_i, L]
    y_test: np.ndarray  # int [m_i]
    test_start: int
    fit_series: np.ndarray  # int8 [k, L]: the training series the biases are fitted on
    fit_rows: np.ndarray  # int32 [84, D]: row of fit_series for each (kernel, dilation)

    @classmethod
    def from_shard(cls, shard: dict[str, Any]) -> DeviceData:
        def arr(name: str, dtype: Any) -> np.ndarray:
            if name not in shard:
                raise ValueError(f"WELCOME shard lacks {name!r}: coordinator and node disagree")
            # A writable, C-ordered copy: decoded frames are read-only views.
            return np.array(shard[name], dtype=dtype, order="C", copy=True)

        return cls(
            x_train=arr("x_train", np.int8),
            y_train=arr("y_train", np.int64),
            train_start=int(shard["train_start"]),
            x_test=arr("x_test", np.int8),
            y_test=arr("y_test", np.int64),
            test_start=int(shard["test_start"]),
            fit_series=arr("fit_series", np.int8),
            fit_rows=arr("fit_rows", np.int32),
        )


def score(metrics: PassMetrics, logits: np.ndarray, label: int) -> None:
    """Add one sample's cross-entropy and hit to ``metrics`` (from its summed logits)."""
    z = logits.astype(np.float64)
    z -= z.max()
    log_p = z - np.log(np.exp(z).sum())
    metrics.loss_sum += float(-log_p[label])
    metrics.correct += int(np.argmax(logits) == label)
    metrics.total += 1


class OwnSamples:
    """What every device kind does with its own data shard and its per-pass metrics.

    Expects ``device``, ``stream``, ``data`` and ``passes`` attributes.
    """

    device: int
    data: DeviceData
    passes: list[PassMetrics]

    def owns(self, item: int) -> bool:
        return int(self.stream.owner[item]) == self.device  # type: ignore[attr-defined]

    def _own_series(self, item: int) -> tuple[np.ndarray, int]:
        stream = self.stream  # type: ignore[attr-defined]
        sample = int(stream.sample[item])
        if stream.kind[item] == KIND_EVAL:
            local = sample - self.data.test_start
            return self.data.x_test[local], int(self.data.y_test[local])
        local = sample - self.data.train_start
        return self.data.x_train[local], int(self.data.y_train[local])

    def _pass(self, item: int) -> PassMetrics:
        """The metrics of the pass ``item`` belongs to (a new one when the pass changes)."""
        stream = self.stream  # type: ignore[attr-defined]
        kind = "eval" if stream.kind[item] == KIND_EVAL else "train"
        epoch = int(stream.epoch[item])
        if not self.passes or self.passes[-1].kind != kind or self.passes[-1].epoch != epoch:
            self.passes.append(PassMetrics(kind=kind, epoch=epoch))
        return self.passes[-1]


@dataclass
class Device(OwnSamples):
    """State machine of device ``device`` of ``config.n_devices``."""

    device: int
    config: RunConfig
    data: DeviceData
    stats: ExchangeStats = field(default_factory=ExchangeStats)

    def __post_init__(self) -> None:
        cfg = self.config
        self.stream = stream_for(cfg)
        self.kernel_start, self.kernel_stop = kernel_ranges(cfg.n_devices)[self.device]
        self.dilations, self.features_per_dilation = fit_dilations(cfg.series_length, cfg.model)
        ranges = feature_ranges(cfg.n_devices, self.features_per_dilation)
        self.feature_start, self.feature_stop = ranges[self.device]
        self.n_features = self.feature_stop - self.feature_start
        self.n_features_total = ranges[-1][1]
        self.ledger = ram_ledger(
            cfg.model, cfg.n_devices, cfg.series_length, cfg.n_classes, device=self.device
        )
        # Refuse before allocating anything: the real device would not boot.
        check_ram(
            self.ledger, cfg.ram_budget_bytes, cfg=cfg.model, series_length=cfg.series_length,
            n_classes=cfg.n_classes,
        )
        # Modeled MCU seconds (node/mcu/cycles.py): per sample, split by phase, and per step.
        parts = cycles.cycles_per_sample(
            cfg.model, cfg.n_devices, cfg.series_length, cfg.n_classes, device=self.device
        )
        hz = cycles.CPU_HZ
        self._transform_s = (parts["transform"] + parts["scaling"] + parts["overhead"]) / hz
        self._logits_s = parts["partial logits"] / hz
        self._grad_s = (parts["sum logits + softmax"] + parts["gradient accumulation"]) / hz
        self._step_s = cycles.step_seconds(
            cfg.model, cfg.n_devices, cfg.series_length, cfg.n_classes, device=self.device
        )
        self.biases = fit_biases(
            self.data.fit_series,
            self.data.fit_rows,
            self.dilations,
            self.features_per_dilation,
            self.kernel_start,
            self.kernel_stop,
        )
        self.head = ShardHead(
            n_classes=cfg.n_classes,
            n_features=self.n_features,
            owns_bias=self.device == 0,
            cfg=cfg.model,
            device=self.device,
            n_devices=cfg.n_devices,
            total_features=self.n_features_total,
            total_steps=total_steps(cfg.schedule.n_train, cfg.model),
        )
        self.scaler = FeatureScaler(self.n_features) if cfg.model.feature_scaling else None
        self._scaler_done = self.scaler is None
        # item -> (series int8[L], label); own items are looked up in the shard.
        self._series: dict[int, tuple[np.ndarray, int]] = {}
        # (is_test, sample) -> PPV features: a host-side cache (features never change); the
        # modeled MCU time still counts the recomputation the real device does.
        self._features: dict[tuple[bool, int], np.ndarray] = {}
        # item -> own partial logits (float32 [C]) until the item's logits are consumed.
        self._own_logits: dict[int, np.ndarray] = {}
        self._last_logits = np.zeros((cfg.n_devices, cfg.n_classes), dtype=np.float32)
        self._have_last = np.zeros(cfg.n_devices, dtype=bool)
        self.passes: list[PassMetrics] = []
        self.processed_item = -1  # last item whose logits this device consumed
        self.steps_taken = 0

    # ---------------------------------------------------------------- data access
    def series_of(self, item: int) -> tuple[np.ndarray, int] | None:
        """The series and label of ``item`` if this device has it (own or received)."""
        if self.owns(item):
            return self._own_series(item)
        return self._series.get(item)

    def _features_of(self, items: list[int]) -> np.ndarray:
        """Unscaled PPV features of ``items`` (all must have their series here)."""
        missing = []
        for item in items:
            key = (bool(self.stream.kind[item] == KIND_EVAL), int(self.stream.sample[item]))
            if key not in self._features:
                missing.append((key, item))
        if missing:
            x = np.stack([self.series_of(item)[0] for _, item in missing])  # type: ignore[index]
            feats = transform(
                x,
                self.dilations,
                self.features_per_dilation,
                self.biases,
                self.kernel_start,
                self.kernel_stop,
            )
            for row, (key, _) in enumerate(missing):
                self._features[key] = feats[row]
        # Every use is a recomputation on the real device: count it in the modeled time.
        self.stats.samples_transformed += len(items)
        self.stats.compute_modeled_s += len(items) * self._transform_s
        out = np.empty((len(items), self.n_features), dtype=np.float32)
        for row, item in enumerate(items):
            key = (bool(self.stream.kind[item] == KIND_EVAL), int(self.stream.sample[item]))
            out[row] = self._features[key]
        return out

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

    def on_silent(self, msg: Round) -> None:
        """The exchange of ``msg`` went by without this device (it heard nothing)."""
        self.skip_items(msg.logits_from, msg.logits_to)

    # ---------------------------------------------------------------- TX side
    def series_payload(self, first_round: int, stop_round: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The series this device floods in rounds ``[first_round, stop_round)``.

        Returns ``(items int32[k], series int8[k, L], labels int16[k])``.
        """
        items = [
            r
            for r in range(max(first_round, 0), min(stop_round, self.stream.n_items))
            if self.owns(r)
        ]
        series = np.zeros((len(items), self.config.series_length), dtype=np.int8)
        labels = np.zeros(len(items), dtype=np.int16)
        for row, item in enumerate(items):
            x, y = self._own_series(item)
            series[row] = x
            labels[row] = y
        return np.asarray(items, dtype=np.int32), series, labels

    def logits_payload(self, first_item: int, stop_item: int) -> tuple[np.ndarray, np.ndarray]:
        """Partial logits of items ``[first_item, stop_item)`` whose series this device has.

        All use the current ``W_i`` (the coordinator only asks for items whose predecessors'
        optimizer steps are done). Returns ``(items int32[m], logits float32[m, C])``.
        """
        started = time.perf_counter()
        items = [
            t
            for t in range(max(first_item, 0), min(stop_item, self.stream.n_items))
            if self.stream.kind[t] != KIND_CALIB and self.series_of(t) is not None
        ]
        if items and not self._scaler_done:
            self._finish_calibration()
        if not items:
            return np.zeros(0, dtype=np.int32), np.zeros((0, self.config.n_classes), np.float32)
        feats = self._scaled(self._features_of(items))
        logits = self.head.partial_logits(feats)
        self.stats.compute_modeled_s += len(items) * self._logits_s
        for row, item in enumerate(items):
            self._own_logits[item] = logits[row]
        self.stats.compute_wall_s += time.perf_counter() - started
        return np.asarray(items, dtype=np.int32), logits

    def _scaled(self, feats: np.ndarray) -> np.ndarray:
        return self.scaler.apply(feats) if self.scaler is not None else feats

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
        """Store the series delivered in rounds ``[first_round, stop_round)``, in round order.

        Calibration items (own ones included) update this device's feature statistics.
        """
        delivered = {int(t): row for row, t in enumerate(items.tolist())}
        calib_items: list[int] = []
        for t in range(max(first_round, 0), min(stop_round, self.stream.n_items)):
            if t in delivered and not self.owns(t):
                row = delivered[t]
                self._series[t] = (np.array(series[row], dtype=np.int8), int(labels[row]))
            if self.stream.kind[t] == KIND_CALIB and self.series_of(t) is not None:
                calib_items.append(t)
        if calib_items and not self._scaler_done and self.scaler is not None:
            started = time.perf_counter()
            self.scaler.update(self._features_of(calib_items))
            self.stats.compute_wall_s += time.perf_counter() - started
        for t in calib_items:
            self._series.pop(t, None)

    def receive_logits(self, items: np.ndarray, logits: np.ndarray, mask: np.ndarray) -> None:
        """Sum the delivered partial logits per item and learn from them, in item order.

        ``logits`` is float32 [m, N, C] and ``mask`` bool [m, N] says which devices' partial
        logits arrived. This device's own part is always used.
        """
        started = time.perf_counter()
        policy = self.config.missing_policy
        for row, item in enumerate(items.tolist()):
            if not 0 <= item < self.stream.n_items:
                continue
            self._consume(item, logits[row], mask[row], policy)
        self.stats.compute_wall_s += time.perf_counter() - started

    def skip_items(self, first_item: int, stop_item: int) -> None:
        """Items whose logits exchange this device missed entirely (it was silent/off)."""
        for item in range(max(first_item, 0), min(stop_item, self.stream.n_items)):
            if item > self.processed_item and self.stream.kind[item] != KIND_CALIB:
                self._consume(item, None, None, self.config.missing_policy)

    def _consume(self, item: int, parts: np.ndarray | None, mask: np.ndarray | None, policy: str) -> None:
        kind = int(self.stream.kind[item])
        if kind == KIND_CALIB or item <= self.processed_item:
            return
        self.processed_item = item
        metrics = self._pass(item)
        own = self._own_logits.pop(item, None)
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
            self.head.step()
            self.steps_taken += 1
            self.stats.steps += 1
            self.stats.compute_modeled_s += self._step_s
        if not self.owns(item):
            self._series.pop(item, None)

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

    # ---------------------------------------------------------------- reporting
    def take_stats(self) -> dict[str, Any]:
        """Stats for the next TX (and reset the per-exchange counters).

        ``model_sample_s`` / ``model_step_s`` are this device's modeled MCU seconds per
        sample (transform, partial logits, gradient) and per optimizer step: the coordinator
        sizes each round's compute window with them.
        """
        out: dict[str, Any] = {
            "compute_wall_s": self.stats.compute_wall_s,
            "compute_modeled_s": self.stats.compute_modeled_s,
            "samples_transformed": self.stats.samples_transformed,
            "steps": self.stats.steps,
            "ram_bytes": self.ledger.total_bytes,
            "processed_item": self.processed_item,
            "model_sample_s": self._transform_s + self._logits_s + self._grad_s,
            "model_step_s": self._step_s,
        }
        for kind in ("train", "eval"):
            latest = next((p for p in reversed(self.passes) if p.kind == kind), None)
            if latest is not None:
                out[kind] = latest.as_dict()
        self.stats = ExchangeStats()
        return out

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W_i float32[C, F_i], b)``; ``b`` is empty on devices that do not own it."""
        bias = self.head.b if self.head.owns_bias else np.zeros(0, dtype=np.float32)
        return self.head.W.copy(), bias.copy()

    def final_metrics(self) -> dict[str, Any]:
        """Per-pass metrics of the whole run (for FINAL)."""
        return {"passes": [p.as_dict() for p in self.passes], "steps": self.steps_taken}
