"""MiniRocket's numba kernels (every ``@njit`` function of :mod:`node.ml.minirocket`, which
re-exports them and checks their inputs): the shifted series, the int16 bias thresholds,
the PPV counts, the transform and the bias fit of a range of (kernel, dilation) units.

All kernels are plain module-level functions on arrays, compiled with ``cache=True``, and
single-threaded (no ``prange``).
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
from numba import njit

from protocol.config.model import KERNEL_LENGTH, N_KERNELS

#: The 84 kernels: the 3 positions (of 9) with weight 2; the other 6 have weight -1.
KERNEL_INDICES = np.array(list(combinations(range(KERNEL_LENGTH), 3)), dtype=np.int64)
_GOLDEN = (math.sqrt(5.0) + 1.0) / 2.0

assert KERNEL_INDICES.shape == (N_KERNELS, 3)


@njit("void(int8[::1], int64, int16[:, ::1], int16[::1])", cache=True, nogil=True)
def _shifted(x, dilation, gamma, alpha):
    """Fill ``gamma[m, t] = 3 * x[t + (m - 4) * dilation]`` (0 outside) and
    ``alpha[t] = -sum_m x[t + (m - 4) * dilation]``.

    A kernel with weight-2 positions (a, b, c) then outputs
    ``alpha + gamma[a] + gamma[b] + gamma[c]`` (2 = -1 + 3). int16 holds them all
    (``|gamma| <= 384``, ``|alpha| <= 1152``) and halves the memory traffic.
    """
    length = x.shape[0]
    for t in range(length):
        alpha[t] = 0
    for m in range(KERNEL_LENGTH):
        shift = (m - 4) * dilation
        row = gamma[m]
        for t in range(length):
            src = t + shift
            if 0 <= src < length:
                v = np.int32(x[src])
                row[t] = 3 * v
                alpha[t] -= v
            else:
                row[t] = 0


@njit("int16[::1](float32[::1])", cache=True, nogil=True)
def bias_thresholds(biases):
    """``floor(bias)`` as int16 thresholds: for an integer ``C``, ``C > b`` iff ``C > floor(b)``.

    Kernel outputs of int8 series satisfy ``|C| <= 1530`` (six weights -1, three +2), so
    clamping the thresholds to ``[-32767, 32767]`` changes no comparison."""
    out = np.empty(biases.shape[0], dtype=np.int16)
    for i in range(biases.shape[0]):
        v = math.floor(biases[i])
        if v > 32767.0:
            v = 32767.0
        elif v < -32767.0:
            v = -32767.0
        out[i] = np.int16(v)
    return out


@njit(inline="always", cache=True)
def _count_above(conv, n, threshold):
    """How many of ``conv[:n]`` exceed ``threshold``.

    The loop starts at 0 so that numba can drop its negative-index wraparound check and
    LLVM vectorizes it (a loop from a variable start does not vectorize); int16 values
    with a plain integer count vectorize best."""
    count = 0
    for t in range(n):
        count += conv[t] > threshold
    return count


@njit(inline="always", cache=True)
def _count_above4(conv, n, threshold0, threshold1, threshold2, threshold3):
    """:func:`_count_above` for four thresholds in one pass over ``conv``."""
    count0 = 0
    count1 = 0
    count2 = 0
    count3 = 0
    for t in range(n):
        v = conv[t]
        count0 += v > threshold0
        count1 += v > threshold1
        count2 += v > threshold2
        count3 += v > threshold3
    return count0, count1, count2, count3


@njit(inline="always", cache=True)
def _count_above2(conv, n, threshold0, threshold1):
    """:func:`_count_above` for two thresholds in one pass over ``conv``."""
    count0 = 0
    count1 = 0
    for t in range(n):
        v = conv[t]
        count0 += v > threshold0
        count1 += v > threshold1
    return count0, count1


@njit(cache=True, nogil=True)
def _unit_span(features_per_dilation, unit_start, unit_stop):
    """The kernel-major layout of units ``[unit_start, unit_stop)``: features per kernel,
    each dilation's first feature within a kernel, and the span's first and stop feature
    (unit ``u = k * n_dil + j`` starts at ``k * per_kernel + dil_start[j]``)."""
    n_dil = features_per_dilation.shape[0]
    per_kernel = 0
    for j in range(n_dil):
        per_kernel += features_per_dilation[j]
    dil_start = np.zeros(n_dil, dtype=np.int64)
    for j in range(1, n_dil):
        dil_start[j] = dil_start[j - 1] + features_per_dilation[j - 1]
    feature_start = (unit_start // n_dil) * per_kernel + dil_start[unit_start % n_dil]
    if unit_stop % n_dil == 0:
        feature_stop = (unit_stop // n_dil) * per_kernel
    else:
        feature_stop = (unit_stop // n_dil) * per_kernel + dil_start[unit_stop % n_dil]
    return per_kernel, dil_start, feature_start, feature_stop


@njit(
    "float32[:, ::1](int8[:, ::1], int32[::1], int32[::1], int16[::1], int64, int64, boolean)",
    cache=True,
    nogil=True,
)
def transform_thresholds(X, dilations, features_per_dilation, thresholds, unit_start, unit_stop,
                         zero_padding):
    """:func:`transform_units` with biases given as int16 thresholds (see :func:`bias_thresholds`)."""
    n, length = X.shape
    n_dil = dilations.shape[0]
    per_kernel, dil_start, feature_start, feature_stop = _unit_span(features_per_dilation, unit_start, unit_stop)
    n_out = feature_stop - feature_start
    out = np.empty((n, n_out), dtype=np.float32)
    gamma = np.empty((KERNEL_LENGTH, length), dtype=np.int16)
    alpha = np.empty(length, dtype=np.int16)
    conv = np.empty(length, dtype=np.int16)
    # PPV values by count: row 0 for all L positions, row 1 + j for the valid positions
    # of dilation j; a lookup instead of a division per feature, with the same float32
    ppv = np.zeros((n_dil + 1, length + 1), dtype=np.float32)
    for c in range(length + 1):
        ppv[0, c] = np.float32(c / length)
    for j in range(n_dil):
        n_valid = length - 8 * np.int64(dilations[j])
        for c in range(n_valid + 1):
            ppv[1 + j, c] = np.float32(c / n_valid)
    for i in range(n):
        x = X[i]
        for j in range(n_dil):
            dilation = np.int64(dilations[j])
            pad = 4 * dilation
            n_feat = features_per_dilation[j]
            # the shard's kernels at dilation j: unit_start <= k * n_dil + j < unit_stop
            k_lo = (unit_start - j + n_dil - 1) // n_dil if unit_start > j else 0
            k_hi = (unit_stop - 1 - j) // n_dil + 1 if unit_stop > j else 0
            if k_hi <= k_lo:
                continue
            _shifted(x, dilation, gamma, alpha)
            for k in range(k_lo, k_hi):
                if zero_padding or (j + k) % 2 == 0:
                    lo = 0
                    hi = length
                    table = ppv[0]
                else:
                    lo = pad  # type: ignore[assignment]  # an int64 scalar, as 0 is to numba
                    hi = length - pad
                    table = ppv[1 + j]
                n_pos = hi - lo
                # views from ``lo``: every inner loop runs from 0 (see _count_above)
                al = alpha[lo:hi]
                ga = gamma[KERNEL_INDICES[k, 0], lo:hi]
                gb = gamma[KERNEL_INDICES[k, 1], lo:hi]
                gc = gamma[KERNEL_INDICES[k, 2], lo:hi]
                for t in range(n_pos):
                    conv[t] = al[t] + ga[t] + gb[t] + gc[t]
                base = k * per_kernel + dil_start[j] - feature_start
                f = 0
                while f + 4 <= n_feat:
                    c0, c1, c2, c3 = _count_above4(
                        conv, n_pos, thresholds[base + f], thresholds[base + f + 1],
                        thresholds[base + f + 2], thresholds[base + f + 3],
                    )
                    out[i, base + f] = table[c0]
                    out[i, base + f + 1] = table[c1]
                    out[i, base + f + 2] = table[c2]
                    out[i, base + f + 3] = table[c3]
                    f += 4
                while f + 2 <= n_feat:
                    c0, c1 = _count_above2(conv, n_pos, thresholds[base + f], thresholds[base + f + 1])
                    out[i, base + f] = table[c0]
                    out[i, base + f + 1] = table[c1]
                    f += 2
                if f < n_feat:
                    out[i, base + f] = table[_count_above(conv, n_pos, thresholds[base + f])]
    return out


@njit(
    "float32[::1](int8[:, ::1], int32[:, ::1], int32[::1], int32[::1], int64, int64)",
    cache=True,
    nogil=True,
)
def _fit_biases(fit_series, fit_rows, dilations, features_per_dilation, unit_start, unit_stop):
    length = fit_series.shape[1]
    n_dil = dilations.shape[0]
    per_kernel, dil_start, feature_start, feature_stop = _unit_span(features_per_dilation, unit_start, unit_stop)
    out = np.empty(feature_stop - feature_start, dtype=np.float32)
    gamma = np.empty((KERNEL_LENGTH, length), dtype=np.int16)
    alpha = np.empty(length, dtype=np.int16)
    conv = np.empty(length, dtype=np.float64)
    for u in range(unit_start, unit_stop):
        k = u // n_dil
        j = u % n_dil
        ia = KERNEL_INDICES[k, 0]
        ib = KERNEL_INDICES[k, 1]
        ic = KERNEL_INDICES[k, 2]
        _shifted(fit_series[fit_rows[k, j]], np.int64(dilations[j]), gamma, alpha)
        for t in range(length):
            conv[t] = alpha[t] + gamma[ia, t] + gamma[ib, t] + gamma[ic, t]
        srt = np.sort(conv)
        n_feat = features_per_dilation[j]
        base = k * per_kernel + dil_start[j] - feature_start
        # numbering of the low-discrepancy sequence: aeon's (dilation-major) order
        aeon_base = N_KERNELS * dil_start[j] + k * n_feat
        for f in range(n_feat):
            q = np.float64(np.float32(((aeon_base + f + 1) * _GOLDEN) % 1.0))
            if length == 1:
                val = srt[0]
            else:
                # linear interpolation between closest ranks (numba's np.quantile)
                rank = 1.0 + (length - 1) * ((q * 100.0) / 100.0)
                lower_rank = math.floor(rank)
                frac = rank - lower_rank
                lo_i = int(lower_rank) - 1
                hi_i = min(lo_i + 1, length - 1)
                val = srt[lo_i] * (1.0 - frac) + srt[hi_i] * frac
            out[base + f] = np.float32(val)
    return out
