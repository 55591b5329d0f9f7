"""Per-feature standardization that a device computes on its own features (no communication).

During the calibration pass (every training sample once, forward only; ``KIND_CALIB`` in
:mod:`protocol.stream.schedule`) each device feeds its feature slice to :meth:`FeatureScaler.update`
in stream order; :meth:`FeatureScaler.finalize` then fixes ``mean`` and ``1 / std``
(population std; a feature that is constant on the training set keeps scale 1, as
scikit-learn's StandardScaler does). Every column is computed independently with float64
Welford accumulators, so the scaler of a column slice gives bitwise the numbers of that slice
of the scaler of all columns: sharding never changes the model.
"""

from __future__ import annotations

from typing import SupportsInt, cast

import numpy as np
from numba import njit


@njit("void(float32[:, ::1], float64[::1], float64[::1], int64)", cache=True, nogil=True)
def _welford_update(F, mean, m2, count0):
    n, nf = F.shape
    for i in range(n):
        count = np.float64(count0 + i + 1)
        for f in range(nf):
            x = np.float64(F[i, f])
            delta = x - mean[f]
            mean[f] += delta / count
            m2[f] += delta * (x - mean[f])


@njit("float32[:, ::1](float32[:, ::1], float32[::1], float32[::1])", cache=True, nogil=True)
def _standardize(F, mean, inv_std):
    n, nf = F.shape
    out = np.empty((n, nf), dtype=np.float32)
    for i in range(n):
        for f in range(nf):
            out[i, f] = (F[i, f] - mean[f]) * inv_std[f]
    return out


class FeatureScaler:
    """Standardizes ``n_features`` columns; ``enabled=False`` makes it the identity."""

    def __init__(self, n_features: int, enabled: bool = True) -> None:
        if n_features < 0:
            raise ValueError(f"n_features must be >= 0, got {n_features}")
        self.n_features = int(n_features)
        self.enabled = bool(enabled)
        self.count = 0
        self._mean = np.zeros(self.n_features, dtype=np.float64)
        self._m2 = np.zeros(self.n_features, dtype=np.float64)
        self.mean = np.zeros(self.n_features, dtype=np.float32)
        self.inv_std = np.ones(self.n_features, dtype=np.float32)
        self.finalized = not self.enabled

    def update(self, F: np.ndarray) -> None:
        """Add rows ``F float32[n, n_features]`` (in stream order) to the statistics."""
        if not self.enabled:
            return
        if self.finalized:
            raise RuntimeError("FeatureScaler.update after finalize(): calibrate before training")
        F = self._check(F)
        _welford_update(F, self._mean, self._m2, self.count)
        self.count += F.shape[0]

    def finalize(self) -> None:
        """Fix mean and 1/std from what :meth:`update` saw."""
        if not self.enabled:
            return
        if self.count == 0:
            raise RuntimeError("FeatureScaler.finalize with no calibration sample")
        std = np.sqrt(self._m2 / self.count)
        self.mean = self._mean.astype(np.float32)
        self.inv_std = np.where(std > 0.0, 1.0 / np.where(std > 0.0, std, 1.0), 1.0).astype(np.float32)
        self.finalized = True

    def apply(self, F: np.ndarray) -> np.ndarray:
        """``(F - mean) * inv_std`` in float32 (a float32 copy of ``F`` when disabled)."""
        F = self._check(F)
        if not self.enabled:
            return F.copy()
        if not self.finalized:
            raise RuntimeError("FeatureScaler.apply before finalize(): run the calibration pass first")
        return _standardize(F, self.mean, self.inv_std)

    def state_dict(self) -> dict[str, object]:
        return {
            "n_features": self.n_features,
            "enabled": self.enabled,
            "count": self.count,
            "finalized": self.finalized,
            "welford_mean": self._mean.copy(),
            "welford_m2": self._m2.copy(),
            "mean": self.mean.copy(),
            "inv_std": self.inv_std.copy(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        if int(cast(SupportsInt, state["n_features"])) != self.n_features:
            raise ValueError(
                f"scaler checkpoint has {state['n_features']} features, this scaler {self.n_features}"
            )
        self.enabled = bool(state["enabled"])
        self.count = int(cast(SupportsInt, state["count"]))
        self.finalized = bool(state["finalized"])
        self._mean = np.array(state["welford_mean"], dtype=np.float64)
        self._m2 = np.array(state["welford_m2"], dtype=np.float64)
        self.mean = np.array(state["mean"], dtype=np.float32)
        self.inv_std = np.array(state["inv_std"], dtype=np.float32)

    def _check(self, F: np.ndarray) -> np.ndarray:
        F = np.asarray(F)
        if F.ndim == 1:
            F = F[None, :]
        if F.dtype != np.float32 or F.ndim != 2 or F.shape[1] != self.n_features:
            raise ValueError(
                f"features must be float32 of shape (n, {self.n_features}), got {F.dtype} {F.shape}"
            )
        return np.ascontiguousarray(F)


def warm_up() -> None:
    """Compile (or load from the cache) this module's kernels."""
    s = FeatureScaler(3)
    s.update(np.ones((2, 3), dtype=np.float32))
    s.finalize()
    s.apply(np.ones((1, 3), dtype=np.float32))
