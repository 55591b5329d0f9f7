"""What every device mode does the same way: its data shard, its pass metrics, the feature
cache, optimizer-step accounting and the stats it reports.

:class:`DeviceBase` builds the parts every mode has (stream, kernels and biases, head,
scaler, RAM ledger checked before anything is allocated) from a few hooks each mode fills
in; :mod:`node.device.rocknet`, :mod:`node.device.private_labels` and
:mod:`node.device.data_parallel` add what their traffic needs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar, Any

import numpy as np

from protocol.config.ram_ledger import Ledger
from node.ml.head import ShardHead
from node.ml.minirocket import fit_biases_units, transform_units
from node.ml.scaling import FeatureScaler
from node.device.tables import ItemTables
from protocol.config.model import fit_dilations
from protocol.config.run import RunConfig
from protocol.stream.modes import kernels_held, stream_for, units_held
from protocol.stream.schedule import KIND_EVAL
from protocol.wire.frames import Round, Rx
from protocol.wire.stats import FinalMetrics, PassKind, PassRecord, TxStats

__all__ = ["DeviceBase", "DeviceData", "ExchangeStats", "PassMetrics", "score", "score_rows"]


@dataclass
class PassMetrics:
    """Running metrics of one pass (training epoch or evaluation), as this device sees them."""

    kind: PassKind
    epoch: int
    correct: int = 0
    total: int = 0
    loss_sum: float = 0.0  # summed cross-entropy, nats
    skipped: int = 0  # samples this device could not use (series, logits or g missing)

    def record(self) -> PassRecord:
        return PassRecord.from_counts(self.kind, self.epoch, self.correct, self.total,
                                      self.loss_sum, self.skipped)

    def as_dict(self) -> dict[str, Any]:
        """The wire form (:meth:`PassRecord.to_wire`); checkpoints keep it too."""
        return self.record().to_wire()


@dataclass
class ExchangeStats:
    """Counters since the last TX: host wall time and modeled MCU time (seconds)."""

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
    score_rows(metrics, logits[None, :], np.array([label]))


def score_rows(metrics: PassMetrics, logits: np.ndarray, labels: np.ndarray) -> None:
    """:func:`score` for the rows of ``logits`` float32[n, C] in order (bitwise the same sums)."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    for loss in (-log_p[rows, labels]).tolist():  # one by one: the same float sum as score
        metrics.loss_sum += loss
    metrics.correct += int((np.argmax(logits, axis=1) == labels).sum())
    metrics.total += len(labels)


@dataclass
class DeviceBase(ABC):
    """State machine of device ``device`` of ``config.n_devices`` (one subclass per mode).

    Subclasses provide the hooks :meth:`_ram_ledger`, :meth:`_check_ram`,
    :meth:`_model_costs`, :meth:`_make_head` and :meth:`_model_sample_s`, and the exchange
    itself (``tx_payload``, ``on_rx``: see :mod:`protocol.device`).
    """

    device: int
    config: RunConfig
    data: DeviceData
    stats: ExchangeStats = field(default_factory=ExchangeStats)

    def __post_init__(self) -> None:
        cfg = self.config
        self.stream = stream_for(cfg)
        self.unit_start, self.unit_stop = units_held(cfg, self.device)
        self.kernel_start, self.kernel_stop = kernels_held(cfg, self.device)
        self.dilations, self.features_per_dilation = fit_dilations(cfg.series_length, cfg.model)
        self.ledger = self._ram_ledger()
        self._check_ram(self.ledger)  # refuse before allocating: the real device would not boot
        # Modeled MCU seconds (node/mcu/cycles.py): per feature recomputation and per step.
        self._features_s, self._step_s = self._model_costs()
        self.biases = fit_biases_units(self.data.fit_series, self.data.fit_rows, self.dilations,
                                       self.features_per_dilation, self.unit_start, self.unit_stop)
        self.head = self._make_head()
        self.n_features = self.head.n_features
        self.scaler = FeatureScaler(self.n_features) if cfg.model.feature_scaling else None
        self._scaler_done = self.scaler is None
        self.tables = ItemTables.of(self.stream, self.device, self.data)
        n_items, n_slots = self.stream.n_items, self.tables.n_slots
        # Received series (own items: the shard), as arrays indexed by item and by sample
        # slot, not a dict of tuples: the exchange path reads and writes them by slices.
        # ``_have[t]``: the series of item t arrived and is still needed; its series is
        # ``_rx_series[slot[t]]`` (a sample's series is the same in every pass) and its
        # label ``_rx_labels[t]``. Lazily zeroed memory: untouched slots cost nothing.
        self._have = np.zeros(n_items, dtype=bool)
        self._rx_series = np.zeros((n_slots, cfg.series_length), dtype=np.int8)
        self._rx_labels = np.zeros(n_items, dtype=np.int64)
        # PPV features per sample slot: a host-side cache (features never change); the
        # modeled MCU time still counts the recomputation the real device does.
        self._feature_cache = np.zeros((n_slots, self.n_features), dtype=np.float32)
        self._feature_ok = np.zeros(n_slots, dtype=bool)
        # Last partial logits seen per device (the ``reuse`` policy; node/checkpoint.py saves
        # them for every mode).
        self._last_logits = np.zeros((cfg.n_devices, cfg.n_classes), dtype=np.float32)
        self._have_last = np.zeros(cfg.n_devices, dtype=bool)
        self.passes: list[PassMetrics] = []
        self.processed_item = -1  # last item this device is done with
        self.steps_taken = 0

    @cached_property
    def config_fingerprint(self) -> str:
        """``config.fingerprint()``, computed once (every checkpoint names it)."""
        return self.config.fingerprint()

    # ---------------------------------------------------------------- mode hooks
    @abstractmethod
    def _ram_ledger(self) -> Ledger:
        """This mode's MCU RAM ledger."""

    @abstractmethod
    def _check_ram(self, ledger: Ledger) -> None:
        """Raise :class:`protocol.config.ram_ledger.RamBudgetExceeded` if ``ledger`` does not fit."""

    @abstractmethod
    def _model_costs(self) -> tuple[float, float]:
        """Modeled MCU seconds per feature (re)computation of one sample and per step."""

    @abstractmethod
    def _make_head(self) -> ShardHead:
        """The head this device trains (its shard, or the whole model)."""

    @abstractmethod
    def _model_sample_s(self) -> float:
        """Modeled MCU seconds per sample, as reported to the coordinator."""

    # ---------------------------------------------------------------- one exchange
    @abstractmethod
    def tx_payload(self, msg: Round) -> dict[str, np.ndarray]:
        """The TX fields (besides exchange, device, stats) this device sends for ``msg``."""

    @abstractmethod
    def on_rx(self, msg: Round, rx: Rx) -> None:
        """Consume what the air delivered for the exchange of ``msg``."""

    # ---------------------------------------------------------------- own samples
    def owns(self, item: int) -> bool:
        return bool(self.tables.owned[item])

    def _own_series(self, item: int) -> tuple[np.ndarray, int]:
        row = int(self.tables.own_rows(np.array([item]))[0])
        return self.tables.own_series[row], int(self.tables.own_labels[row])

    def series_of(self, item: int) -> tuple[np.ndarray, int] | None:
        """The series and label of ``item`` if this device has it (own or received)."""
        if self.tables.owned[item]:
            return self._own_series(item)
        if self._have[item]:
            return self._rx_series[self.tables.slot[item]], int(self._rx_labels[item])
        return None

    def _forget_series(self, items: int | slice | np.ndarray) -> None:
        """Drop received series of ``items`` (own ones stay: they are the shard)."""
        self._have[items] = False

    def _labels_of(self, items: np.ndarray) -> np.ndarray:
        """int64 labels of ``items`` (all must have their series here)."""
        tables = self.tables
        labels = self._rx_labels[items]
        own = tables.owned[items]
        if own.any():
            labels[own] = tables.own_labels[tables.own_rows(items[own])]
        return labels

    def _pass_kind(self, item: int) -> PassKind:
        if self.stream.kind[item] != KIND_EVAL:
            return "train"
        return "val" if self.stream.validation[item] else "eval"

    def _pass(self, item: int) -> PassMetrics:
        """The metrics of the pass ``item`` belongs to (a new one when the pass changes)."""
        kind, epoch = self._pass_kind(item), int(self.stream.epoch[item])
        if not self.passes or self.passes[-1].kind != kind or self.passes[-1].epoch != epoch:
            self.passes.append(PassMetrics(kind=kind, epoch=epoch))
        return self.passes[-1]

    # ---------------------------------------------------------------- features
    def _features_of(self, items: list[int] | range | np.ndarray) -> np.ndarray:
        """Unscaled PPV features float32[n, F_i] of ``items`` (all must have their series here)."""
        index = np.asarray(items, dtype=np.intp)
        slots = self.tables.slot[index]
        missing = np.flatnonzero(~self._feature_ok[slots])
        if len(missing):
            rows = []
            for item in index[missing].tolist():
                have = self.series_of(item)
                assert have is not None, f"item {item}: features asked without its series"
                rows.append(have[0])
            feats = transform_units(np.stack(rows), self.dilations, self.features_per_dilation,
                                    self.biases, self.unit_start, self.unit_stop,
                                    self.config.model.padding == "zero")
            self._feature_cache[slots[missing]] = feats
            self._feature_ok[slots[missing]] = True
        # Every use is a recomputation on the real device: count it in the modeled time.
        self.stats.samples_transformed += len(index)
        self.stats.compute_modeled_s += len(index) * self._features_s
        return self._feature_cache[slots]

    def _scaled(self, feats: np.ndarray) -> np.ndarray:
        return self.scaler.apply(feats) if self.scaler is not None else feats

    #: node/agent.py saves at every new :attr:`progress` (True) or at most once per
    #: checkpoint interval (False).
    checkpoint_every_progress: ClassVar[bool] = False

    @property
    def progress(self) -> int:
        """What node/agent.py checkpoints on: a new value is state worth saving (here the
        optimizer steps; the ridge head counts items, having one step)."""
        return self.steps_taken

    # ---------------------------------------------------------------- optimizer
    def _step(self) -> None:
        """One optimizer step on the accumulated gradient, with its modeled MCU time."""
        self.head.step()
        self.steps_taken += 1
        self.stats.steps += 1
        self.stats.compute_modeled_s += self._step_s

    # ---------------------------------------------------------------- reporting
    def take_tx_stats(self) -> TxStats:
        """Stats for the next TX (and reset the per-exchange counters).

        ``model_sample_s`` / ``model_step_s`` are this device's modeled MCU seconds per
        sample and per optimizer step: the coordinator sizes each round's compute window
        with them.
        """
        latest: dict[str, PassRecord] = {}
        for p in reversed(self.passes):  # the latest training and test pass
            if p.kind not in latest and p.kind != "val":
                latest[p.kind] = p.record()
                if len(latest) == 2:
                    break
        out = TxStats(
            compute_wall_s=self.stats.compute_wall_s,
            compute_modeled_s=self.stats.compute_modeled_s,
            samples_transformed=self.stats.samples_transformed,
            steps=self.stats.steps,
            ram_bytes=self.ledger.total_bytes,
            processed_item=self.processed_item,
            model_sample_s=self._model_sample_s(),
            model_step_s=self._step_s,
            train=latest.get("train"),
            eval=latest.get("eval"),
        )
        self.stats = ExchangeStats()
        return out

    def take_stats(self) -> dict[str, Any]:
        """:meth:`take_tx_stats` in its wire form (one record, one wire layout: protocol/wire/stats.py)."""
        return self.take_tx_stats().to_wire()

    def final_record(self) -> FinalMetrics:
        """Per-pass metrics of the whole run (for FINAL)."""
        return FinalMetrics(passes=tuple(p.record() for p in self.passes), steps=self.steps_taken)

    def final_metrics(self) -> dict[str, Any]:
        """:meth:`final_record` in its wire form."""
        return self.final_record().to_wire()

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W float32[C, F_i], b)``; ``b`` is empty on devices that do not own it."""
        bias = self.head.b if self.head.owns_bias else np.zeros(0, dtype=np.float32)
        return self.head.W.copy(), bias.copy()
