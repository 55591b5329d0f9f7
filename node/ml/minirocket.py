"""MiniRocket's kernels in numba, restricted to a shard: a contiguous range of (kernel,
dilation) units ``u = kernel * D + dilation_index`` (a kernel range ``[k0, k1)`` is the units
``[k0 * D, k1 * D)``; :func:`transform` and :func:`fit_biases` take kernel ranges,
:func:`transform_units` and :func:`fit_biases_units` unit ranges).

Inputs are int8 series (DESIGN 1.1), so the convolution is exact integer arithmetic: the
output of every kernel is an integer (``|C| <= 1530``, held as int16), a bias ``b`` is
compared as ``C > floor(b)`` (the same test as ``C > b`` for an integer ``C``), and a
feature is ``float32(count / n_positions)``. Fed the same values as float32 and the same fitted parameters, aeon's MiniRocket gives the
same numbers (up to the feature permutation, see
:func:`protocol.config.model.aeon_to_kernel_major`).

Feature order is kernel-major ``(kernel, dilation, bias)``: the transform of kernels
``[kernel_start, kernel_stop)`` is exactly the slice ``[kernel_start * P, kernel_stop * P)``
of the full feature vector, ``P = sum(features_per_dilation)``.

Padding rule (as MiniRocket): combination (dilation ``j``, kernel ``k``) uses the zero-padded
output (all ``L`` positions) when ``(j + k)`` is even and only the valid positions
``[4 d, L - 4 d)`` when it is odd; ``k`` is the global kernel index.

All kernels are plain module-level functions on arrays, compiled with ``cache=True``, and
single-threaded (no ``prange``): they live in
:mod:`node.ml.minirocket_kernels` (re-exported here); this module checks their inputs.
"""

from __future__ import annotations

import numpy as np

from node.ml.minirocket_kernels import (
    KERNEL_INDICES,
    _fit_biases,
    bias_thresholds,
    transform_thresholds,
)
from protocol.config.model import N_KERNELS, unit_offsets

__all__ = [
    "KERNEL_INDICES",
    "bias_thresholds",
    "fit_biases",
    "fit_biases_units",
    "transform",
    "transform_thresholds",
    "transform_units",
    "warm_up",
]


def transform(
    X: np.ndarray,
    dilations: np.ndarray,
    features_per_dilation: np.ndarray,
    biases_of_shard: np.ndarray,
    kernel_start: int,
    kernel_stop: int,
    zero_padding: bool = False,
) -> np.ndarray:
    """PPV features of kernels ``[kernel_start, kernel_stop)`` of int8 series.

    Args:
        X: int8[n, L] quantized series (a single int8[L] series is taken as one row).
        dilations, features_per_dilation: int32[D] from :func:`protocol.config.model.fit_dilations`.
        biases_of_shard: float32[(kernel_stop - kernel_start) * P], kernel-major.
        kernel_start, kernel_stop: the shard's kernel range.

    Returns:
        float32[n, (kernel_stop - kernel_start) * P], kernel-major. The same numbers as
        :func:`transform_units` on units ``[kernel_start * D, kernel_stop * D)``.
    """
    d = np.asarray(dilations).shape[0]
    return transform_units(X, dilations, features_per_dilation, biases_of_shard,
                           kernel_start * d, kernel_stop * d, zero_padding)


def transform_units(
    X: np.ndarray,
    dilations: np.ndarray,
    features_per_dilation: np.ndarray,
    biases_of_shard: np.ndarray,
    unit_start: int,
    unit_stop: int,
    zero_padding: bool = False,
) -> np.ndarray:
    """PPV features of the (kernel, dilation) units ``[unit_start, unit_stop)``.

    Unit ``u = k * D + j`` is kernel ``k`` at dilation ``j``
    (:func:`protocol.config.model.unit_ranges`); its ``features_per_dilation[j]`` features
    are contiguous in the kernel-major feature vector, so a unit range is a slice of it.

    Args:
        X: int8[n, L] quantized series (a single int8[L] series is taken as one row).
        dilations, features_per_dilation: int32[D].
        biases_of_shard: float32[F_i], the shard's biases, kernel-major.
        unit_start, unit_stop: the shard's unit range, inside ``[0, 84 * D]``.
        zero_padding: PPV over all L zero-padded positions for every unit (the firmware,
            ``ModelConfig.padding == "zero"``); False: aeon's alternation (all L positions
            where kernel + dilation index is even, the valid ``L - 8 d`` ones elsewhere).

    Returns:
        float32[n, F_i], kernel-major.
    """
    if isinstance(X, np.ndarray) and X.ndim == 1:
        X = X[None, :]
    X, dilations, features_per_dilation = _check(X, dilations, features_per_dilation, unit_start, unit_stop)
    biases_of_shard = np.ascontiguousarray(biases_of_shard, dtype=np.float32)
    expected = _n_features_of_units(features_per_dilation, unit_start, unit_stop)
    if biases_of_shard.shape != (expected,):
        raise ValueError(
            f"biases_of_shard has shape {biases_of_shard.shape}, expected ({expected},) for "
            f"units [{unit_start}, {unit_stop}) ({expected} features)"
        )
    return transform_thresholds(
        X, dilations, features_per_dilation, bias_thresholds(biases_of_shard), unit_start, unit_stop,
        bool(zero_padding),
    )


def _n_features_of_units(features_per_dilation: np.ndarray, unit_start: int, unit_stop: int) -> int:
    offsets = unit_offsets(features_per_dilation)
    return int(offsets[unit_stop] - offsets[unit_start])



def fit_biases(
    fit_series: np.ndarray,
    fit_rows: np.ndarray,
    dilations: np.ndarray,
    features_per_dilation: np.ndarray,
    kernel_start: int,
    kernel_stop: int,
) -> np.ndarray:
    """Biases of kernels ``[kernel_start, kernel_stop)``: :func:`fit_biases_units` on units
    ``[kernel_start * D, kernel_stop * D)``."""
    d = np.asarray(dilations).shape[0]
    return fit_biases_units(fit_series, fit_rows, dilations, features_per_dilation,
                            kernel_start * d, kernel_stop * d)


def fit_biases_units(
    fit_series: np.ndarray,
    fit_rows: np.ndarray,
    dilations: np.ndarray,
    features_per_dilation: np.ndarray,
    unit_start: int,
    unit_stop: int,
) -> np.ndarray:
    """Biases of the (kernel, dilation) units ``[unit_start, unit_stop)``: quantiles of
    their outputs.

    Args:
        fit_series: int8[k, L] the series the shard was given for fitting.
        fit_rows: int32[84, D] row of ``fit_series`` that fits (kernel, dilation); only the
            shard's rows are read (see :func:`protocol.config.model.shard_fit_series`).
        dilations, features_per_dilation: int32[D].
        unit_start, unit_stop: the shard's units (``u = kernel * D + dilation_index``).

    Returns:
        float32[F_i] kernel-major. The quantile of feature ``i`` (in aeon's order) is
        ``frac((i + 1) * golden_ratio)``; the quantile is the linear interpolation between
        closest ranks of the full-length (zero-padded) output.
    """
    fit_series, dilations, features_per_dilation = _check(
        fit_series, dilations, features_per_dilation, unit_start, unit_stop
    )
    fit_rows = np.ascontiguousarray(fit_rows, dtype=np.int32)
    if fit_rows.shape != (N_KERNELS, dilations.shape[0]):
        raise ValueError(f"fit_rows must have shape (84, {dilations.shape[0]}), got {fit_rows.shape}")
    used = fit_rows.reshape(-1)[unit_start:unit_stop]
    if used.size and (used.min() < 0 or used.max() >= fit_series.shape[0]):
        raise ValueError(
            f"fit_rows of units [{unit_start}, {unit_stop}) point outside fit_series "
            f"({fit_series.shape[0]} series)"
        )
    return _fit_biases(fit_series, fit_rows, dilations, features_per_dilation, unit_start, unit_stop)


def _check(
    X: np.ndarray, dilations: np.ndarray, features_per_dilation: np.ndarray, unit_start: int, unit_stop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(X, np.ndarray) or X.dtype != np.int8 or X.ndim != 2:
        raise TypeError(
            "series must be an int8 array of shape (n, L): quantize first "
            "(coordinator.service.datasets.quantize_int8)"
        )
    dilations = np.ascontiguousarray(dilations, dtype=np.int32)
    features_per_dilation = np.ascontiguousarray(features_per_dilation, dtype=np.int32)
    if dilations.ndim != 1 or dilations.shape != features_per_dilation.shape:
        raise ValueError("dilations and features_per_dilation must be 1-D arrays of the same length")
    n_units = N_KERNELS * dilations.shape[0]
    if not 0 <= unit_start <= unit_stop <= n_units:
        d = max(dilations.shape[0], 1)
        raise ValueError(
            f"unit range [{unit_start}, {unit_stop}) (kernels [{unit_start // d}, "
            f"{-(-unit_stop // d)})) is not inside [0, {n_units}) = 84 kernels x "
            f"{dilations.shape[0]} dilations"
        )
    length = X.shape[1]
    if dilations.size and 8 * int(dilations.max()) >= length:
        raise ValueError(
            f"dilation {int(dilations.max())} is too large for series of length {length} "
            "(needs 8 * dilation < L): fit the dilations for this length"
        )
    return np.ascontiguousarray(X), dilations, features_per_dilation


def warm_up() -> None:
    """Compile (or load from the cache) every kernel of this module on a tiny input."""
    x = np.zeros((1, 16), dtype=np.int8)
    x[0, ::3] = 5
    dil = np.array([1], dtype=np.int32)
    fpd = np.array([1], dtype=np.int32)
    rows = np.zeros((N_KERNELS, 1), dtype=np.int32)
    b = fit_biases(x, rows, dil, fpd, 0, N_KERNELS)
    transform(x, dil, fpd, b, 0, N_KERNELS)
