"""The pure geometry of MiniRocket shards (numpy only): which dilations and how many features
per dilation a series length gets, which training series fit the biases of each (kernel,
dilation), and how the 84 kernels (up to 84 devices) or the ``84 * D`` (kernel, dilation)
pairs (past 84) and the feature vector are split over devices. Re-exported by
:mod:`protocol.config.model`.

Feature order is *kernel-major*: ``(kernel, dilation, bias)``, so a contiguous kernel range
is a contiguous slice of the feature vector. (aeon orders features dilation-major:
``(dilation, kernel, bias)``; :func:`aeon_to_kernel_major` gives the permutation.)
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from protocol.stream.schedule import contiguous_split

__all__ = [
    "AEON_MAX_DILATIONS",
    "KERNEL_LENGTH",
    "N_KERNELS",
    "LayoutConfig",
    "aeon_to_kernel_major",
    "bias_fit_rows",
    "check_n_devices",
    "feature_ranges",
    "fit_dilations",
    "kernel_ranges",
    "kernels_at_dilation",
    "kernels_of_units",
    "max_devices",
    "n_features_total",
    "quantile_positions",
    "shard_fit_series",
    "shard_fit_series_units",
    "unit_offsets",
    "unit_ranges",
]

#: MiniRocket's kernels: all choices of 3 positions out of 9 (weight 2, the others -1).
N_KERNELS = 84
#: Length of every MiniRocket kernel.
KERNEL_LENGTH = 9
#: aeon's cap on dilations per kernel (its ``max_dilations_per_kernel`` default).
AEON_MAX_DILATIONS = 32


class LayoutConfig(Protocol):
    """What the layout reads of a :class:`~protocol.config.model.ModelConfig` (a protocol
    here, so that the layout need not import the configuration that imports it)."""

    @property
    def num_features(self) -> int: ...

    @property
    def dilation_style(self) -> str: ...

    @property
    def bias_source(self) -> str: ...

    @property
    def seed(self) -> int: ...


# ----------------------------------------------------------------------------- dilations


def _check_length(series_length: int) -> None:
    if series_length < KERNEL_LENGTH:
        raise ValueError(
            f"series length {series_length} is shorter than MiniRocket's kernel "
            f"({KERNEL_LENGTH}): zero-pad the series to at least {KERNEL_LENGTH} samples"
        )


def _aeon_dilations(series_length: int, num_features: int) -> tuple[np.ndarray, np.ndarray]:
    """aeon MiniRocket's dilation rule (re-derived: log-spaced, unique, remainder spread)."""
    per_kernel = num_features // N_KERNELS
    n_dil_max = min(per_kernel, AEON_MAX_DILATIONS)
    multiplier = per_kernel / n_dil_max
    max_exponent = np.log2((series_length - 1) / (KERNEL_LENGTH - 1))
    raw = np.logspace(0, max_exponent, n_dil_max, base=2).astype(np.int32)
    dilations, counts = np.unique(raw, return_counts=True)
    per_dilation = (counts * multiplier).astype(np.int32)
    remainder = per_kernel - int(per_dilation.sum())
    i = 0
    while remainder > 0:
        per_dilation[i] += 1
        remainder -= 1
        i = (i + 1) % len(per_dilation)
    return dilations.astype(np.int32), per_dilation.astype(np.int32)


def fit_dilations(series_length: int, cfg: LayoutConfig) -> tuple[np.ndarray, np.ndarray]:
    """Dilations and biases per (kernel, dilation) for series of ``series_length`` samples.

    Returns ``(dilations int32[D], features_per_dilation int32[D])``; each kernel has
    ``features_per_dilation[j]`` features at dilation ``j``, so the model has
    ``84 * features_per_dilation.sum()`` features.
    """
    _check_length(series_length)
    if cfg.dilation_style == "aeon":
        return _aeon_dilations(series_length, cfg.num_features)
    max_exp = int(math.floor(math.log2((series_length - 1) / (KERNEL_LENGTH - 1))))
    # guard against float round-off at exact powers of two
    while 2 ** (max_exp + 1) * (KERNEL_LENGTH - 1) <= series_length - 1:
        max_exp += 1
    while max_exp > 0 and 2**max_exp * (KERNEL_LENGTH - 1) > series_length - 1:
        max_exp -= 1
    dilations = (2 ** np.arange(max_exp + 1)).astype(np.int32)
    per = cfg.num_features // (len(dilations) * N_KERNELS)
    if per < 1:
        raise ValueError(
            f"num_features={cfg.num_features} gives no feature per (kernel, dilation) for "
            f"{len(dilations)} dilations: use num_features >= {len(dilations) * N_KERNELS}"
        )
    return dilations, np.full(len(dilations), per, dtype=np.int32)


def n_features_total(features_per_dilation: np.ndarray) -> int:
    """Length of the full feature vector."""
    return N_KERNELS * int(np.sum(features_per_dilation))


# ----------------------------------------------------------------------------- biases


def bias_fit_rows(n_train: int, n_dilations: int, cfg: LayoutConfig) -> np.ndarray:
    """Training sample (index into the training set) that fits each (kernel, dilation).

    Returns int32[84, D]. ``"first"``: all zeros; ``"random"``: uniform draws from
    ``np.random.default_rng([seed, 1])``, drawn dilation-major as aeon does.
    """
    if n_train < 1:
        raise ValueError("bias fitting needs at least one training series")
    if n_dilations < 1:
        raise ValueError(f"n_dilations must be >= 1, got {n_dilations}")
    if cfg.bias_source == "first":
        return np.zeros((N_KERNELS, n_dilations), dtype=np.int32)
    rng = np.random.default_rng([cfg.seed, 1])
    rows = rng.integers(0, n_train, size=(n_dilations, N_KERNELS))
    return np.ascontiguousarray(rows.T.astype(np.int32))


def shard_fit_series(
    rows: np.ndarray, kernel_start: int, kernel_stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`shard_fit_series_units` of the kernels ``[kernel_start, kernel_stop)`` (the
    units ``[kernel_start * D, kernel_stop * D)``)."""
    d = np.shape(rows)[1]
    return shard_fit_series_units(rows, kernel_start * d, kernel_stop * d)


def shard_fit_series_units(
    rows: np.ndarray, unit_start: int, unit_stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """What a shard of units ``[unit_start, unit_stop)`` needs to fit its biases.

    A unit is one (kernel, dilation) pair, ``u = kernel * D + dilation_index`` (see
    :func:`unit_ranges`); a kernel range ``[k0, k1)`` is the units ``[k0 * D, k1 * D)``.
    Returns ``(train_indices int64[k], local_rows int32[84, D])``: the training series to
    "flash" to the device (sorted, unique) and ``rows`` rewritten as indices into that list
    (rows of units outside the shard are set to 0 and never read).
    """
    flat = np.asarray(rows).reshape(-1)  # kernel-major: flat[u] is unit u's row
    sub = flat[unit_start:unit_stop]
    train_indices = np.unique(sub).astype(np.int64)
    local = np.zeros(flat.shape, dtype=np.int32)
    local[unit_start:unit_stop] = np.searchsorted(train_indices, sub).astype(np.int32)
    return train_indices, local.reshape(np.shape(rows))


def quantile_positions(features_per_dilation: np.ndarray) -> np.ndarray:
    """Quantile of every feature's bias, in kernel-major order (float32[F]).

    MiniRocket's low-discrepancy sequence ``frac(i * golden_ratio)``, ``i = 1, 2, ...``
    numbered in aeon's dilation-major feature order, so that fitted on the same series our
    biases are aeon's biases permuted.
    """
    total = n_features_total(features_per_dilation)
    phi = (np.sqrt(5.0) + 1.0) / 2.0
    seq = ((np.arange(1, total + 1, dtype=np.float64) * phi) % 1.0).astype(np.float32)
    biases: np.ndarray = seq[aeon_to_kernel_major(features_per_dilation)]
    return biases


def aeon_to_kernel_major(features_per_dilation: np.ndarray) -> np.ndarray:
    """Permutation ``perm`` with ``ours = aeon_features[..., perm]`` (int64[F]).

    aeon orders features ``(dilation, kernel, bias)``; we order ``(kernel, dilation, bias)``.
    """
    fpd = np.asarray(features_per_dilation, dtype=np.int64)
    dil_start = np.concatenate([[0], np.cumsum(fpd)[:-1]])  # per kernel, within a kernel
    perm = np.empty(n_features_total(fpd), dtype=np.int64)
    pos = 0
    for k in range(N_KERNELS):
        for j, n in enumerate(fpd):
            aeon_start = N_KERNELS * dil_start[j] + k * n
            perm[pos : pos + n] = np.arange(aeon_start, aeon_start + n)
            pos += n
    return perm


# ----------------------------------------------------------------------------- shards


def kernel_ranges(n_devices: int) -> list[tuple[int, int]]:
    """Contiguous kernel range ``[start, stop)`` of each device (remainder to the first).

    Only for ``n_devices <= 84``; past that the model is split below the kernel
    (:func:`unit_ranges`)."""
    if not isinstance(n_devices, (int, np.integer)) or n_devices < 1 or n_devices > N_KERNELS:
        raise ValueError(
            f"n_devices must be between 1 and {N_KERNELS} for a split by kernel, got "
            f"{n_devices!r}; more devices split (kernel, dilation) pairs: use unit_ranges"
        )
    return contiguous_split(N_KERNELS, int(n_devices))


def max_devices(n_dilations: int) -> int:
    """The finest split: one (kernel, dilation) pair per device, ``84 * D`` devices."""
    return N_KERNELS * int(n_dilations)


def check_n_devices(n_devices: int, n_dilations: int, series_length: int | None = None) -> None:
    """``ValueError`` naming the maximum when ``n_devices`` exceeds the finest split."""
    top = max_devices(n_dilations)
    if not isinstance(n_devices, (int, np.integer)) or not 1 <= n_devices <= top:
        length = f"series of length {series_length}, " if series_length is not None else ""
        raise ValueError(
            f"--nodes must be between 1 and {top} for this dataset and model ({length}"
            f"{n_dilations} dilations x {N_KERNELS} kernels = {top} (kernel, dilation) pairs, "
            f"one per device at least), got {n_devices!r}: use --nodes {top} or fewer"
        )


def unit_ranges(n_devices: int, n_dilations: int) -> list[tuple[int, int]]:
    """Each device's contiguous range ``[start, stop)`` of units, ``u = kernel * D + j``.

    A unit is one (kernel, dilation) pair in kernel-major order, so a unit range is a
    contiguous slice of the feature vector. Up to 84 devices the split is by kernel, as
    :func:`kernel_ranges` (device ``i`` gets units ``[k0 * D, k1 * D)``); past 84 the
    ``84 * D`` units are split contiguously (remainder to the first devices), at most
    :func:`max_devices` devices.
    """
    check_n_devices(n_devices, n_dilations)
    d = int(n_dilations)
    if n_devices <= N_KERNELS:
        return [(a * d, b * d) for a, b in kernel_ranges(int(n_devices))]
    return contiguous_split(max_devices(d), int(n_devices))


def unit_offsets(features_per_dilation: np.ndarray) -> np.ndarray:
    """Start of every unit in the feature vector, and its end (int64[84 * D + 1])."""
    fpd = np.asarray(features_per_dilation, dtype=np.int64)
    per_unit = np.tile(fpd, N_KERNELS)
    return np.concatenate([[0], np.cumsum(per_unit)]).astype(np.int64)


def kernels_of_units(unit_start: int, unit_stop: int, n_dilations: int) -> tuple[int, int]:
    """The kernels ``[start, stop)`` that units ``[unit_start, unit_stop)`` touch."""
    d = int(n_dilations)
    if unit_stop <= unit_start:
        return unit_start // d, unit_start // d
    return unit_start // d, -(-unit_stop // d)


def kernels_at_dilation(unit_start: int, unit_stop: int, n_dilations: int, j: int) -> range:
    """The kernels ``k`` with unit ``k * D + j`` in ``[unit_start, unit_stop)``."""
    d = int(n_dilations)
    lo = max(0, -(-(unit_start - j) // d))
    hi = max(lo, (unit_stop - 1 - j) // d + 1) if unit_stop > j else lo
    return range(lo, hi)


def feature_ranges(n_devices: int, features_per_dilation: np.ndarray) -> list[tuple[int, int]]:
    """Each device's ``[start, stop)`` in the full (kernel-major) feature vector."""
    offsets = unit_offsets(features_per_dilation)
    return [(int(offsets[a]), int(offsets[b]))
            for a, b in unit_ranges(n_devices, len(features_per_dilation))]
