"""One device's ridge head: its Gram block, the summed Gram matrix, the solve, ``W_d``.

A :class:`RidgeHead` is a :class:`~node.ml.head.ShardHead` whose weights are not trained
by steps but formed once (node/ml/ridge.py): ``W`` starts at zero, the Gram passes fill
:attr:`gram` (every device the same, summed lower triangle), :meth:`step` is the
leave-one-out solve, and the weight pass adds ``A[i] x_{d,i}`` to ``W`` sample by sample.
Prediction is the parent's partial logits (``W x + b``), so the test pass and its exchange
are the SGD head's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from node.ml.head import ShardHead, restore_arrays
from node.ml.ridge import RidgeSolution, accumulate_dual_weights, gram_rows, gram_valid, solve_ridge
from protocol.config.model import ModelConfig

__all__ = ["RidgeHead"]

_ARRAYS = ("W", "b", "block", "gram", "labels", "dual")


class RidgeHead(ShardHead):
    """The ridge head on one device (see the module docstring).

    Args:
        n_classes, n_features, owns_bias, cfg, device, n_devices, total_features: as
            :class:`~node.ml.head.ShardHead`.
        n_train: training samples (the Gram matrix is ``n_train x n_train``).
        block_size: samples per Gram block, the width of a partial Gram row
            (``ScheduleConfig.gram_block``; default C).
    """

    def __init__(self, n_classes: int, n_features: int, owns_bias: bool, cfg: ModelConfig, device: int,
                 n_devices: int, *, n_train: int, total_features: int | None = None,
                 block_size: int | None = None) -> None:
        if cfg.head != "ridge":
            raise ValueError(f"RidgeHead needs cfg.head='ridge', got {cfg.head!r}")
        super().__init__(n_classes, n_features, owns_bias, cfg, device, n_devices,
                         total_features=total_features, total_steps=1)
        self.W[...] = 0.0  # formed by the weight pass, not initialized
        self.n_train = int(n_train)
        self.block_size = int(block_size) if block_size is not None else self.n_classes
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")
        #: This device's features of the current Gram block (float32 [B, F_d]); NaN rows:
        #: members whose series this device does not have (yet).
        self.block = np.full((self.block_size, self.n_features), np.nan, dtype=np.float32)
        self.block_pass = -1  # the Gram pass the block belongs to
        #: The summed Gram matrix, lower triangle filled (float32 [n, n]); NaN: an entry not
        #: known (never received, or some device's part of it missing).
        self.gram = np.full((self.n_train, self.n_train), np.nan, dtype=np.float32)
        #: Each training sample's label as it travelled with its series (-1: never seen).
        self.labels = np.full(self.n_train, -1, dtype=np.int64)
        #: The dual coefficients ``A`` (float32 [n, C]) once solved.
        self.dual = np.zeros((self.n_train, self.n_classes), dtype=np.float32)
        self.solution: RidgeSolution | None = None
        self.samples_used = 0  # the training samples the solve kept (complete_samples)
        self.chosen_alpha = 0.0  # the solve's leave-one-out alpha (0: not solved)

    @property
    def solved(self) -> bool:
        return self.t > 0

    # ------------------------------------------------------------------ Gram passes
    def gram_partial_rows(self, feats: np.ndarray, samples: np.ndarray, gram_pass: int) -> np.ndarray:
        """float32 [m, B]: this device's partial Gram rows of ``samples`` in Gram pass
        ``gram_pass`` (samples in index order, scaled features ``feats`` [m, F_d]). Block
        members among them are stored first; a member whose series this device never had
        stays NaN, so its entry reaches every device as NaN (not known) rather than as a
        wrong number."""
        if gram_pass != self.block_pass:
            self.block[...] = np.nan
            self.block_pass = gram_pass
        start = gram_pass * self.block_size
        local = np.asarray(samples, dtype=np.int64) - start
        members = local < self.block_size
        self.block[local[members]] = feats[members]
        return gram_rows(self.block, feats, gram_valid(samples, start, self.block_size))

    def set_gram_row(self, sample: int, gram_pass: int, total: np.ndarray, label: int) -> None:
        """Store the summed partial row of ``sample`` (``K[sample, block]``, lower triangle)."""
        start = gram_pass * self.block_size
        valid = int(gram_valid(np.array([sample]), start, self.block_size)[0])
        self.gram[sample, start:start + valid] = total[:valid]
        self.labels[sample] = int(label)

    # ------------------------------------------------------------------ solve, weights
    def complete_samples(self) -> np.ndarray:
        """int64 [k]: the samples the solve uses: labelled, and with every Gram entry among
        them known. Samples with unknown entries are dropped one at a time, the one with the
        most first (the lowest index on a tie), until the rest is complete."""
        keep = np.flatnonzero(self.labels >= 0)
        lower = np.tril(np.ones((len(keep), len(keep)), dtype=bool))
        unknown = ~np.isfinite(self.gram[np.ix_(keep, keep)]) & lower
        unknown = unknown | unknown.T
        counts = unknown.sum(axis=1)
        alive = np.ones(len(keep), dtype=bool)
        while alive.any() and counts[alive].max() > 0:
            worst = int(np.flatnonzero(alive)[np.argmax(counts[alive])])
            alive[worst] = False
            counts -= unknown[:, worst]
            counts[worst] = 0
        return keep[alive]

    def step(self) -> None:
        """The solve (node/ml/ridge.py) over :meth:`complete_samples`; ``W``, ``b`` are then
        formed by :meth:`add_weights` (the weight pass)."""
        known = self.complete_samples()
        self.dual[...] = 0.0
        if len(known):
            sub = np.ascontiguousarray(self.gram[np.ix_(known, known)])
            self.solution = solve_ridge(sub, self.labels[known], self.n_classes)
            self.dual[known] = self.solution.dual.astype(np.float32)
            self.chosen_alpha = self.solution.alpha
            if self.owns_bias:
                self.b[...] = self.solution.intercept.astype(np.float32)
        self.samples_used = len(known)
        self.t += 1

    def add_weights(self, feats: np.ndarray, samples: np.ndarray) -> None:
        """``W += A[i] x_{d,i}`` for ``samples`` in order (scaled features ``feats``)."""
        accumulate_dual_weights(self.W, self.dual[np.asarray(samples, dtype=np.int64)], feats)

    @property
    def alpha(self) -> float | None:
        """The chosen alpha (None before the solve, or when no sample was left for it)."""
        return self.chosen_alpha if self.chosen_alpha > 0 else None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"n_classes": self.n_classes, "n_features": self.n_features,
                                 "owns_bias": int(self.owns_bias), "head": "ridge", "t": self.t,
                                 "block_pass": self.block_pass, "n_train": self.n_train,
                                 "block_size": self.block_size,
                                 "samples_used": self.samples_used, "chosen_alpha": self.chosen_alpha}
        for name in _ARRAYS:
            state[name] = getattr(self, name).copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, mine in (("n_classes", self.n_classes), ("n_features", self.n_features),
                          ("owns_bias", int(self.owns_bias)), ("head", "ridge"), ("n_train", self.n_train),
                          ("block_size", self.block_size)):
            if state.get(key) != mine:
                raise ValueError(f"checkpoint {key}={state.get(key)!r} does not match this head ({mine!r})")
        restore_arrays(self, _ARRAYS, state)
        self.t = int(state["t"])
        self.block_pass = int(state["block_pass"])
        self.samples_used = int(state.get("samples_used", 0))
        self.chosen_alpha = float(state.get("chosen_alpha", 0.0))
        self.solution = None  # the LOO curve is not kept: the weights and the alpha are
