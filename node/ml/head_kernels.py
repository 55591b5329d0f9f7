"""The head's numba kernels: partial logits, the softmax cross-entropy gradient and its
accumulation, the mean gradient, and the one summation of partial logits over devices
(:func:`sum_partial_logits`). Re-exported by :mod:`node.ml.head`.

Every reduction has a fixed order (numba loops, no BLAS): one sample at a time and a batch
at once give bitwise the same numbers, and a sharded model equals the centralized one that
sums the same per-shard partial logits in the same order.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numba import njit

#: Lanes of the partial-logit dot product (fixed, so the summation order is fixed).
_LANES = 8


@njit("float32[:, ::1](float32[:, ::1], float32[:, ::1], float32[::1], boolean)", cache=True, nogil=True)
def partial_logits_kernel(F, W, b, add_bias):
    """``z[n, c] = sum_f W[c, f] F[n, f] (+ b[c])`` with a fixed order: 8 interleaved
    float32 lanes over ``f``, lanes summed 0..7, then the tail, then the bias."""
    n, nf = F.shape
    n_classes = W.shape[0]
    out = np.empty((n, n_classes), dtype=np.float32)
    lanes = np.empty(_LANES, dtype=np.float32)
    n_full = nf - nf % _LANES
    for i in range(n):
        x = F[i]
        for c in range(n_classes):
            w = W[c]
            for lane in range(_LANES):
                lanes[lane] = 0.0
            for f0 in range(0, n_full, _LANES):
                for lane in range(_LANES):
                    lanes[lane] += w[f0 + lane] * x[f0 + lane]
            s = np.float32(0.0)
            for lane in range(_LANES):
                s += lanes[lane]
            for f in range(n_full, nf):
                s += w[f] * x[f]
            if add_bias:
                s += b[c]
            out[i, c] = s
    return out


@njit("float64(float32[::1], int64, float32[::1])", cache=True, nogil=True)
def softmax_gradient_kernel(logits, label, g):
    """``g = softmax(logits) - onehot(label)`` into ``g`` (float32; softmax in float64, then
    rounded). Returns the cross-entropy loss (the first half of :func:`accumulate_kernel`)."""
    n_classes = logits.shape[0]
    mx = np.float64(logits[0])
    for c in range(1, n_classes):
        if logits[c] > mx:
            mx = np.float64(logits[c])
    total = 0.0
    e = np.empty(n_classes, dtype=np.float64)
    for c in range(n_classes):
        e[c] = math.exp(np.float64(logits[c]) - mx)
        total += e[c]
    for c in range(n_classes):
        p = e[c] / total
        if c == label:
            p -= 1.0
        g[c] = np.float32(p)
    return -(np.float64(logits[label]) - mx - math.log(total))


@njit("void(float32[::1], float32[::1], float32[:, ::1], float32[::1])", cache=True, nogil=True)
def accumulate_g_kernel(f, g, G, gb):
    """Add ``g f^T`` to ``G`` and ``g`` to ``gb`` (the second half of
    :func:`accumulate_kernel`)."""
    n_classes = g.shape[0]
    nf = f.shape[0]
    for c in range(n_classes):
        gc = g[c]
        row = G[c]
        for j in range(nf):
            row[j] += gc * f[j]
        gb[c] += gc


@njit("float64(float32[::1], float32[::1], int64, float32[:, ::1], float32[::1])", cache=True, nogil=True)
def accumulate_kernel(f, logits, label, G, gb):
    """Add ``g f^T`` to ``G`` and ``g`` to ``gb``, ``g = softmax(logits) - onehot(label)``
    (softmax in float64, ``g`` rounded to float32). Returns the cross-entropy loss.

    The two halves are :func:`softmax_gradient_kernel` and :func:`accumulate_g_kernel`,
    which private-labels mode runs on different devices: bitwise the same sums."""
    g = np.empty(logits.shape[0], dtype=np.float32)
    loss = softmax_gradient_kernel(logits, label, g)
    accumulate_g_kernel(f, g, G, gb)
    return loss


@njit("float64(float32[:, ::1], float32[:, ::1], int64[::1], float32[:, ::1], float32[::1])", cache=True, nogil=True)
def accumulate_batch_kernel(F, logits, labels, G, gb):
    """:func:`accumulate_kernel` for rows ``0..n-1`` in order; returns the summed loss."""
    loss = 0.0
    for i in range(F.shape[0]):
        loss += accumulate_kernel(F[i], logits[i], labels[i], G, gb)
    return loss


@njit("void(float32[::1], float32[::1], float32)", cache=True, nogil=True)
def _mean_gradient(acc, out, count):
    for i in range(acc.shape[0]):
        out[i] = acc[i] / count


@njit("float32[:, ::1](float32[:, :, :])", cache=True, nogil=True)
def _sum_rows_kernel(parts):
    """``out[i] = ((parts[i, 0] + parts[i, 1]) + parts[i, 2]) + ...`` in float32, for
    ``parts float32[m, N, C]`` (any strides): the order of :func:`sum_partial_logits`."""
    m, n, c = parts.shape
    out = np.empty((m, c), dtype=np.float32)
    for i in range(m):
        for k in range(c):
            s = parts[i, 0, k]
            for d in range(1, n):
                s += parts[i, d, k]
            out[i, k] = s
    return out


def sum_partial_logits_rows(parts: np.ndarray) -> np.ndarray:
    """:func:`sum_partial_logits` of every row of ``parts float32[m, N, C]`` (item, device,
    class) at once -> float32[m, C]; bitwise the same (float32 adds in device order; one
    compiled loop instead of N numpy calls, the hot path of a device's RX)."""
    if parts.dtype != np.float32 or parts.ndim != 3 or parts.shape[1] == 0:
        raise ValueError(f"partial logits must be float32 [m, N >= 1, C], got {parts.dtype} {parts.shape}")
    return _sum_rows_kernel(parts)


def sum_partial_logits(parts: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Sum the partial logits of devices ``0, 1, ..., N-1`` in that order (float32[C]).

    The one and only way logits are summed: ``((z_0 + z_1) + z_2) + ...`` in float32.
    ``parts`` is float32[N, C] or a list of N float32[C] (several samples: [N, n, C]).
    """
    if isinstance(parts, np.ndarray) and parts.dtype == np.float32 and parts.ndim in (2, 3) and len(parts):
        # One compiled loop (bitwise the numpy adds below: IEEE float32, same order).
        rows = parts[None] if parts.ndim == 2 else parts.transpose(1, 0, 2)
        total = _sum_rows_kernel(rows)
        return total[0] if parts.ndim == 2 else total
    if isinstance(parts, np.ndarray):
        seq = [parts[i] for i in range(parts.shape[0])]
    else:
        seq = list(parts)
    if not seq:
        raise ValueError("sum_partial_logits needs the partial logits of at least one device")
    total = np.array(seq[0], dtype=np.float32, copy=True)
    for z in seq[1:]:
        z = np.asarray(z)
        if z.dtype != np.float32 or z.shape != total.shape:
            raise ValueError(f"partial logits must all be float32 of shape {total.shape}, got {z.dtype} {z.shape}")
        total += z
    return total
