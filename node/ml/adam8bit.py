"""Adam in float32 and the paper's 8-bit Adam, as numba kernels on flat arrays.

8-bit Adam (Dettmers et al., 2022, "8-bit Optimizers via Block-wise Quantization") keeps m
and v as uint8 codes into a 256-entry *dynamic tree* map, block-wise: every block of
``BLOCK`` consecutive entries of the flattened state has its own float32 absmax scale. A step
dequantizes (code value * block absmax), runs the float32 Adam update, and requantizes each
block to the nearest code after dividing by the block's new absmax.

Dynamic tree map (our construction of the published scheme): for exponent levels
``i = 0 .. 6`` the magnitudes ``10**(i - 6) * mid`` where ``mid`` runs over the midpoints of
``2**i`` (signed map, for m; with both signs) or ``2**(i+1)`` (unsigned map, for v) equal
intervals of ``[0.1, 1]``; plus 0 and 1. Signed: 2*127 + 2 = 256 values; unsigned: 254 + 2.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from protocol.config.model import ADAM8BIT_BLOCK

#: Entries per quantization block (the paper's block size).
BLOCK = ADAM8BIT_BLOCK


def dynamic_tree_map(signed: bool) -> np.ndarray:
    """The 256 sorted float32 values of the dynamic tree quantization map."""
    values: list[float] = [0.0, 1.0]
    for level in range(7):
        n = 2**level if signed else 2 ** (level + 1)
        edges = np.linspace(0.1, 1.0, n + 1)
        mids = (edges[:-1] + edges[1:]) / 2.0
        scale = 10.0 ** (level - 6)
        values.extend((scale * mids).tolist())
        if signed:
            values.extend((-scale * mids).tolist())
    out = np.array(sorted(values), dtype=np.float32)
    assert out.shape == (256,), out.shape
    return out


SIGNED_MAP = dynamic_tree_map(signed=True)
UNSIGNED_MAP = dynamic_tree_map(signed=False)


def n_blocks(n: int) -> int:
    """Blocks of :data:`BLOCK` that cover ``n`` entries."""
    return (n + BLOCK - 1) // BLOCK


@njit("uint8(float32[::1], float32)", cache=True, nogil=True)
def _nearest_code(code, x):
    """Index of the value of sorted ``code`` nearest to ``x`` (ties go to the lower one)."""
    lo = 0
    hi = code.shape[0] - 1
    if x <= code[lo]:
        return np.uint8(lo)
    if x >= code[hi]:
        return np.uint8(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if code[mid] <= x:
            lo = mid
        else:
            hi = mid
    if x - code[lo] <= code[hi] - x:
        return np.uint8(lo)
    return np.uint8(hi)


@njit(
    "void(float32[::1], float32[::1], float32[::1], float32[::1], float32, float32, float32, float32, float32, float32,"
    " float32)",
    cache=True,
    nogil=True,
)
def adam_step(w, g, m, v, lr, beta1, beta2, bias_corr1, bias_corr2, eps, decay):
    """float32 Adam(W) on flat arrays, in place: ``m = b1 m + (1-b1) g;
    v = b2 v + (1-b2) g^2; w = w - decay w - lr (m/c1) / (sqrt(v/c2) + eps)``
    (``decay = lr * weight_decay``, decoupled as AdamW; 0 gives plain Adam)."""
    one = np.float32(1.0)
    for i in range(w.shape[0]):
        gi = g[i]
        mi = beta1 * m[i] + (one - beta1) * gi
        vi = beta2 * v[i] + (one - beta2) * (gi * gi)
        m[i] = mi
        v[i] = vi
        w[i] = w[i] - decay * w[i] - lr * (mi / bias_corr1) / (np.sqrt(vi / bias_corr2) + eps)


@njit(
    "void(float32[::1], float32[::1], uint8[::1], uint8[::1], float32[::1], float32[::1], float32[::1], float32[::1],"
    " float32, float32, float32, float32, float32, float32, float32)",
    cache=True,
    nogil=True,
)
def adam8bit_step(w, g, qm, qv, absmax_m, absmax_v, code_m, code_v, lr, beta1, beta2, bias_corr1, bias_corr2, eps, decay):
    """8-bit Adam on flat arrays, in place (blocks of :data:`BLOCK`, see the module doc)."""
    one = np.float32(1.0)
    n = w.shape[0]
    m = np.empty(BLOCK, dtype=np.float32)
    v = np.empty(BLOCK, dtype=np.float32)
    for blk in range((n + BLOCK - 1) // BLOCK):
        a = blk * BLOCK
        b = min(a + BLOCK, n)
        sm = absmax_m[blk]
        sv = absmax_v[blk]
        new_m = np.float32(0.0)
        new_v = np.float32(0.0)
        for i in range(a, b):
            gi = g[i]
            mi = beta1 * (code_m[qm[i]] * sm) + (one - beta1) * gi
            vi = beta2 * (code_v[qv[i]] * sv) + (one - beta2) * (gi * gi)
            m[i - a] = mi
            v[i - a] = vi
            w[i] = w[i] - decay * w[i] - lr * (mi / bias_corr1) / (np.sqrt(vi / bias_corr2) + eps)
            if abs(mi) > new_m:
                new_m = abs(mi)
            if vi > new_v:
                new_v = vi
        absmax_m[blk] = new_m
        absmax_v[blk] = new_v
        for i in range(a, b):
            qm[i] = _nearest_code(code_m, m[i - a] / new_m) if new_m > 0 else _nearest_code(code_m, np.float32(0.0))
            qv[i] = _nearest_code(code_v, v[i - a] / new_v) if new_v > 0 else np.uint8(0)


def zero_code(signed: bool) -> int:
    """The code whose value is 0."""
    code = SIGNED_MAP if signed else UNSIGNED_MAP
    return int(np.flatnonzero(code == 0.0)[0])
