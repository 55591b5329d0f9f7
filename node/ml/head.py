"""The linear head on one device's feature slice: partial logits, gradient, Adam.

Device ``i`` holds ``W_i float32[C, F_i]`` (and, on the bias owner, ``b float32[C]``). Per
sample it computes its partial logits ``z_i = W_i f_i (+ b)``; every device sums all
``z_i`` with :func:`sum_partial_logits` (device order), and accumulates the softmax
cross-entropy gradient ``(p - onehot(y)) f_i^T`` of its own weights. After a batch,
:meth:`ShardHead.step` applies Adam (float32) or 8-bit Adam to the mean gradient.

Every reduction has a fixed order (numba loops, no BLAS): one sample at a time and a batch
at once give bitwise the same numbers, and a sharded model equals the centralized one that
sums the same per-shard partial logits in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from node.ml import adam8bit
from node.ml.head_kernels import (
    _mean_gradient,
    accumulate_batch_kernel,
    accumulate_g_kernel,
    accumulate_kernel,
    partial_logits_kernel,
    softmax_gradient_kernel,
    sum_partial_logits,
    sum_partial_logits_rows,
)
from node.ml.shard import ShardSpec
from protocol.config.model import ModelConfig, lr_at

__all__ = [
    "ShardHead",
    "accumulate_batch_kernel",
    "accumulate_g_kernel",
    "accumulate_kernel",
    "partial_logits_kernel",
    "softmax_gradient_kernel",
    "sum_partial_logits",
    "sum_partial_logits_rows",
    "warm_up",
]


def restore_arrays(head: object, names: Sequence[str], state: dict[str, Any]) -> None:
    """Set ``head``'s arrays ``names`` to copies of ``state``'s, all or none: every one must
    have the dtype and shape of the array it replaces (``ValueError`` naming it, else)."""
    arrays = {}
    for name in names:
        mine = getattr(head, name)
        value = np.asarray(state[name])
        if value.dtype != mine.dtype or value.shape != mine.shape:
            raise ValueError(
                f"checkpoint array {name} is {value.dtype}{value.shape}, expected {mine.dtype}{mine.shape}"
            )
        arrays[name] = np.array(value, copy=True)
    for name, value in arrays.items():
        setattr(head, name, value)


class ShardHead:
    """The head's weights, gradient accumulators and optimizer state on one device.

    Args:
        n_classes: C.
        n_features: F_i, this device's feature count.
        owns_bias: whether this device holds ``b`` (device 0).
        cfg: the model configuration (optimizer, lr, betas, eps, schedule, seed).
        device, n_devices: this device's number and the device count; ``W`` is initialised
            ``2 N(0, 1) / sqrt(F + C)`` from ``np.random.default_rng([cfg.seed, device])``.
        total_features: F, the full model's feature count (defaults to ``n_features``,
            right only for one device).
        total_steps: the run's optimizer steps (``protocol.config.model.total_steps``); required
            for the cosine learning-rate schedule.
    """

    def __init__(
        self,
        n_classes: int,
        n_features: int,
        owns_bias: bool,
        cfg: ModelConfig,
        device: int,
        n_devices: int,
        *,
        total_features: int | None = None,
        total_steps: int | None = None,
    ) -> None:
        if n_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
        if n_features < 0:
            raise ValueError(f"n_features must be >= 0, got {n_features}")
        if not 0 <= device < n_devices:
            raise ValueError(f"device must be in [0, {n_devices}), got {device}")
        total_features = n_features if total_features is None else int(total_features)
        if total_features < n_features:
            raise ValueError(f"total_features ({total_features}) < this shard's n_features ({n_features})")
        if cfg.lr_schedule != "constant" and total_steps is None:
            raise ValueError(
                f"lr_schedule={cfg.lr_schedule!r} needs total_steps: pass "
                "protocol.config.model.total_steps(n_train, cfg)"
            )
        self.n_classes = int(n_classes)
        self.n_features = int(n_features)
        self.owns_bias = bool(owns_bias)
        self.cfg = cfg
        self.device = int(device)
        self.n_devices = int(n_devices)
        self.total_features = total_features
        self.total_steps = int(total_steps) if total_steps is not None else 0
        rng = np.random.default_rng([cfg.seed, self.device])
        scale = 2.0 / math.sqrt(total_features + n_classes)
        self.W = (rng.standard_normal((self.n_classes, self.n_features)) * scale).astype(np.float32)
        self.b = np.zeros(self.n_classes, dtype=np.float32)
        self.grad_W = np.zeros_like(self.W)
        self.grad_b = np.zeros_like(self.b)
        self.count = 0
        self.t = 0  # optimizer steps taken
        self.loss_sum = 0.0  # cross-entropy summed over accumulated samples (monitoring only)
        if cfg.optimizer == "adam":
            self.m_W = np.zeros(self.W.size, dtype=np.float32)
            self.v_W = np.zeros(self.W.size, dtype=np.float32)
            self.m_b = np.zeros(self.n_classes, dtype=np.float32)
            self.v_b = np.zeros(self.n_classes, dtype=np.float32)
        else:
            zm = adam8bit.zero_code(signed=True)
            zv = adam8bit.zero_code(signed=False)
            self.qm_W = np.full(self.W.size, zm, dtype=np.uint8)
            self.qv_W = np.full(self.W.size, zv, dtype=np.uint8)
            self.absmax_m_W = np.zeros(adam8bit.n_blocks(self.W.size), dtype=np.float32)
            self.absmax_v_W = np.zeros(adam8bit.n_blocks(self.W.size), dtype=np.float32)
            self.qm_b = np.full(self.n_classes, zm, dtype=np.uint8)
            self.qv_b = np.full(self.n_classes, zv, dtype=np.uint8)
            self.absmax_m_b = np.zeros(adam8bit.n_blocks(self.n_classes), dtype=np.float32)
            self.absmax_v_b = np.zeros(adam8bit.n_blocks(self.n_classes), dtype=np.float32)

    @classmethod
    def for_shard(cls, spec: ShardSpec, n_classes: int, cfg: ModelConfig, total_steps: int) -> ShardHead:
        """The head of the device described by ``spec`` (owns b iff device 0).

        ``total_steps``: the run's optimizer steps, ``stream.steps`` (equal to
        ``protocol.config.model.total_steps(n_train, cfg)`` for ``protocol.config.model.schedule_config``).
        """
        return cls(
            n_classes, spec.n_features, spec.owns_bias, cfg, spec.device, spec.n_devices,
            total_features=spec.n_features_total, total_steps=total_steps,
        )

    # ------------------------------------------------------------------ forward / backward

    def partial_logits(self, F: np.ndarray) -> np.ndarray:
        """``z_i = W_i f_i (+ b on the owner)`` for rows of ``F float32[n, F_i]`` -> float32[n, C]."""
        F = self._check_features(F)
        return partial_logits_kernel(F, self.W, self.b, self.owns_bias)

    def accumulate(self, f: np.ndarray, logits_sum: np.ndarray, label: int) -> float:
        """Add one sample's gradient (``f float32[F_i]``, summed logits ``float32[C]``).

        Returns the sample's cross-entropy loss (from the summed logits, the same on every
        device)."""
        f = self._check_features(f)[0]
        z = self._check_logits(logits_sum)[0]
        label = self._check_label(label)
        loss = accumulate_kernel(f, z, label, self.grad_W, self.grad_b)
        self.count += 1
        self.loss_sum += loss
        return float(loss)

    def softmax_gradient(self, logits_sum: np.ndarray, label: int) -> tuple[np.ndarray, float]:
        """``(g float32[C], loss)``: ``g = softmax(z) - onehot(label)`` of summed logits
        ``z``, bitwise what :meth:`accumulate` adds (private labels: the owner's message)."""
        z = self._check_logits(logits_sum)[0]
        g = np.empty(self.n_classes, dtype=np.float32)
        loss = softmax_gradient_kernel(z, self._check_label(label), g)
        return g, float(loss)

    def accumulate_gradient(self, f: np.ndarray, g: np.ndarray) -> None:
        """Add ``g f^T`` (``g float32[C]`` from :meth:`softmax_gradient`, possibly another
        device's): bitwise the same accumulators as :meth:`accumulate` with the logits and
        label ``g`` came from. The loss is not known here (``loss_sum`` is unchanged)."""
        f = self._check_features(f)[0]
        g = self._check_logits(g)[0]
        accumulate_g_kernel(f, g, self.grad_W, self.grad_b)
        self.count += 1

    def accumulate_batch(self, F: np.ndarray, logits_sums: np.ndarray, labels: np.ndarray) -> float:
        """:meth:`accumulate` for rows in order (bitwise the same); returns the summed loss."""
        F = self._check_features(F)
        Z = self._check_logits(logits_sums)
        y = np.ascontiguousarray(labels, dtype=np.int64)
        if Z.shape[0] != F.shape[0] or y.shape != (F.shape[0],):
            raise ValueError("features, logits and labels must have the same number of rows")
        if y.size and (y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(f"labels must be in [0, {self.n_classes})")
        loss = accumulate_batch_kernel(F, Z, y, self.grad_W, self.grad_b)
        self.count += F.shape[0]
        self.loss_sum += loss
        return float(loss)

    # ------------------------------------------------------------------ optimizer

    def current_lr(self) -> float:
        """Learning rate of the next step."""
        return lr_at(self.t, self.total_steps, self.cfg)

    def step(self) -> None:
        """One optimizer step on the mean accumulated gradient, then zero the accumulators.

        With nothing accumulated (every sample of the batch lost) the weights and moments
        stay as they are, but the step counter (and so the learning-rate schedule) advances.
        """
        cfg = self.cfg
        lr = np.float32(self.current_lr())
        self.t += 1
        if self.count > 0:
            t = self.t
            c1 = np.float32(1.0 - cfg.beta1**t)
            c2 = np.float32(1.0 - cfg.beta2**t)
            b1, b2, eps = np.float32(cfg.beta1), np.float32(cfg.beta2), np.float32(cfg.eps)
            decay = np.float32(float(lr) * cfg.weight_decay)
            no_decay = np.float32(0.0)  # the bias b is not decayed
            count = np.float32(self.count)
            g_W = np.empty(self.W.size, dtype=np.float32)
            _mean_gradient(self.grad_W.reshape(-1), g_W, count)
            w_flat = self.W.reshape(-1)
            if cfg.optimizer == "adam":
                adam8bit.adam_step(w_flat, g_W, self.m_W, self.v_W, lr, b1, b2, c1, c2, eps, decay)
            else:
                adam8bit.adam8bit_step(
                    w_flat, g_W, self.qm_W, self.qv_W, self.absmax_m_W, self.absmax_v_W,
                    adam8bit.SIGNED_MAP, adam8bit.UNSIGNED_MAP, lr, b1, b2, c1, c2, eps, decay,
                )
            if self.owns_bias:
                g_b = np.empty(self.n_classes, dtype=np.float32)
                _mean_gradient(self.grad_b, g_b, count)
                if cfg.optimizer == "adam":
                    adam8bit.adam_step(self.b, g_b, self.m_b, self.v_b, lr, b1, b2, c1, c2, eps, no_decay)
                else:
                    adam8bit.adam8bit_step(
                        self.b, g_b, self.qm_b, self.qv_b, self.absmax_m_b, self.absmax_v_b,
                        adam8bit.SIGNED_MAP, adam8bit.UNSIGNED_MAP, lr, b1, b2, c1, c2, eps, no_decay,
                    )
        self.grad_W[:] = 0.0
        self.grad_b[:] = 0.0
        self.count = 0
        self.loss_sum = 0.0

    # ------------------------------------------------------------------ checkpoints

    _STATE_ARRAYS = {
        "adam": ("W", "b", "grad_W", "grad_b", "m_W", "v_W", "m_b", "v_b"),
        "adam8bit": (
            "W", "b", "grad_W", "grad_b", "qm_W", "qv_W", "absmax_m_W", "absmax_v_W",
            "qm_b", "qv_b", "absmax_m_b", "absmax_v_b",
        ),
    }

    def state_dict(self) -> dict[str, Any]:
        """numpy arrays (copies) and ints: everything needed to resume bitwise."""
        state: dict[str, Any] = {
            "n_classes": self.n_classes,
            "n_features": self.n_features,
            "owns_bias": int(self.owns_bias),
            "optimizer": self.cfg.optimizer,
            "count": self.count,
            "t": self.t,
            "loss_sum": float(self.loss_sum),
        }
        for name in self._STATE_ARRAYS[self.cfg.optimizer]:
            state[name] = getattr(self, name).copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (shapes and dtypes are checked)."""
        for key, mine in (
            ("n_classes", self.n_classes),
            ("n_features", self.n_features),
            ("owns_bias", int(self.owns_bias)),
            ("optimizer", self.cfg.optimizer),
        ):
            if state.get(key) != mine:
                raise ValueError(f"checkpoint {key}={state.get(key)!r} does not match this head ({mine!r})")
        restore_arrays(self, self._STATE_ARRAYS[self.cfg.optimizer], state)
        self.count = int(state["count"])
        self.t = int(state["t"])
        self.loss_sum = float(state.get("loss_sum", 0.0))

    # ------------------------------------------------------------------ checks

    def _check_features(self, F: np.ndarray) -> np.ndarray:
        F = np.asarray(F)
        if F.ndim == 1:
            F = F[None, :]
        if F.dtype != np.float32 or F.ndim != 2 or F.shape[1] != self.n_features:
            raise ValueError(f"features must be float32 (n, {self.n_features}), got {F.dtype} {F.shape}")
        return np.ascontiguousarray(F)

    def _check_logits(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z)
        if z.ndim == 1:
            z = z[None, :]
        if z.dtype != np.float32 or z.ndim != 2 or z.shape[1] != self.n_classes:
            raise ValueError(f"logits must be float32 (n, {self.n_classes}), got {z.dtype} {z.shape}")
        return np.ascontiguousarray(z)

    def _check_label(self, label: int) -> int:
        label = int(label)
        if not 0 <= label < self.n_classes:
            raise ValueError(f"label {label} is not in [0, {self.n_classes})")
        return label


def warm_up() -> None:
    """Compile (or load from the cache) this module's kernels."""
    for opt in ("adam", "adam8bit"):
        cfg = ModelConfig(optimizer=opt, lr_schedule="constant")
        h = ShardHead(2, 9, True, cfg, 0, 1)
        F = np.ones((2, 9), dtype=np.float32)
        z = h.partial_logits(F)
        h.accumulate(F[0], z[0], 1)
        h.accumulate_batch(F, z, np.array([0, 1]))
        g, _ = h.softmax_gradient(z[0], 1)
        h.accumulate_gradient(F[0], g)
        h.step()
    sum_partial_logits_rows(np.ones((1, 2, 2), dtype=np.float32))
