"""The ridge head's math: partial Gram rows, the leave-one-out solve, the dual weights.

Ridge regression on the standardized features ``X`` (n_train x F, every device's columns
side by side) in its dual form needs only the n x n Gram matrix ``K = X X^T``, and ``K`` is a
sum over devices, ``K = sum_d X_d X_d^T``, exactly as the logits are: so the devices exchange
*partial Gram rows* in the logit slots and sum them in device order
(:func:`node.ml.head.sum_partial_logits`). The stream (``protocol.stream.schedule``, "the
ridge head") sends the training split in *Gram passes* of ``B`` samples a block
(``protocol.config.model.gram_block_size``: 25, the float32 of the packet a logit vector
takes): in pass ``p`` every device stores its features of block ``p`` (samples
``pB .. pB+B-1``) and, for every sample ``i >= pB``, floods ``X_d[block] x_{d,i}`` (``B``
values, one logit slot; entries of block members after ``i`` are 0: they are ``K[j, i]``,
sent with ``j``).
After the last pass every device holds the same lower triangle of ``K``.

:func:`solve_ridge` then does what scikit-learn's ``RidgeClassifierCV`` (the baseline,
``alphas = logspace(-3, 3, 10)``) does in its Gram ("eigen") mode: one-vs-rest targets
``Y in {-1, +1}^{n x C}``, an unpenalized intercept (``K`` double-centered, ``Y`` centered),
the exact leave-one-out residuals ``c_i / G_ii`` of every alpha, the alpha with the least
mean squared residual (ties: the smaller alpha), dual coefficients ``A = (K + alpha I)^-1
Y_c``. Here each alpha is a Cholesky factorisation instead of one eigendecomposition (a
packed triangle in float64 is all the RAM it needs; docs/ml-core.md "The ridge head").
Every device then sends nothing more: in one pass over the training series it forms its own
slice ``W_d = A^T X_d`` (:func:`accumulate_dual_weights`, item order) and device 0 the
intercept ``mean(Y)``. Prediction is the usual partial-logit exchange.

Every reduction has a fixed order (numba loops, no BLAS, no LAPACK), so a device and the
centralized reference that feed the same numbers get bitwise the same solution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from node.ml.head import partial_logits_kernel

__all__ = [
    "RIDGE_ALPHAS",
    "RidgeSolution",
    "accumulate_dual_weights",
    "gram_rows",
    "gram_valid",
    "solve_ridge",
]

#: The alpha grid: RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)), as in Dempster et
#: al.'s MiniRocket code and aeon's examples (the baseline of benchmarks/accuracy.py).
RIDGE_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-3, 3, 10))


def gram_valid(samples: np.ndarray, block_start: int, block_size: int) -> np.ndarray:
    """int64 [m]: how many block entries of each sample's partial Gram row are real.

    Sample ``i`` of the pass whose block starts at ``block_start`` pairs with the block
    members ``j <= i`` (a block member after ``i`` sends that entry itself)."""
    return np.minimum(np.asarray(samples, dtype=np.int64) - block_start + 1, block_size)


def gram_rows(block: np.ndarray, feats: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """float32 [m, B]: ``block[j] . feats[i]`` for ``j < valid[i]``, else 0.

    ``block`` float32 [B, F_d] (this device's features of the block's samples), ``feats``
    float32 [m, F_d]; the dot products are :func:`~node.ml.head.partial_logits_kernel`'s
    (8 float32 lanes), so a row does not depend on which other rows it is computed with."""
    rows = partial_logits_kernel(np.ascontiguousarray(feats, dtype=np.float32),
                                 np.ascontiguousarray(block, dtype=np.float32),
                                 np.zeros(block.shape[0], dtype=np.float32), False)
    rows[np.arange(block.shape[0])[None, :] >= np.asarray(valid)[:, None]] = 0.0
    return rows


@njit("float64[::1](float64[:, ::1], float64)", cache=True, nogil=True)
def _cholesky_in_place(M, alpha):
    """Lower Cholesky factor of ``M + alpha I`` written over ``M``'s lower triangle (only the
    lower triangle is read); returns the diagonal of ``(M + alpha I)^-1``."""
    n = M.shape[0]
    for j in range(n):
        s = M[j, j] + alpha
        for k in range(j):
            s -= M[j, k] * M[j, k]
        if s <= 0.0:
            s = 1e-300  # not positive definite in floating point: a tiny pivot, huge residuals
        d = np.sqrt(s)
        M[j, j] = d
        for i in range(j + 1, n):
            t = M[i, j]
            for k in range(j):
                t -= M[i, k] * M[j, k]
            M[i, j] = t / d
    # diag(G) = column norms of L^-1: invert L column by column (forward substitution).
    gdiag = np.zeros(n)
    col = np.zeros(n)
    for j in range(n):
        for i in range(n):
            col[i] = 0.0
        col[j] = 1.0 / M[j, j]
        gdiag[j] += col[j] * col[j]
        for i in range(j + 1, n):
            t = 0.0
            for k in range(j, i):
                t -= M[i, k] * col[k]
            col[i] = t / M[i, i]
            gdiag[j] += col[i] * col[i]
    return gdiag


@njit("void(float64[:, ::1], float64[:, ::1])", cache=True, nogil=True)
def _cholesky_solve(L, Y):
    """Solve ``L L^T X = Y`` in place of ``Y`` (``L`` lower, from :func:`_cholesky_in_place`)."""
    n, c = Y.shape
    for col in range(c):
        for i in range(n):
            t = Y[i, col]
            for k in range(i):
                t -= L[i, k] * Y[k, col]
            Y[i, col] = t / L[i, i]
        for i in range(n - 1, -1, -1):
            t = Y[i, col]
            for k in range(i + 1, n):
                t -= L[k, i] * Y[k, col]
            Y[i, col] = t / L[i, i]


@dataclass(frozen=True)
class RidgeSolution:
    """What every device derives from the summed Gram matrix.

    ``dual`` float64 [n_train, C]: ``A = (K_c + alpha I)^-1 Y_c``; ``intercept`` float64 [C]:
    ``mean(Y)``; ``loo_mse`` float64 [len(alphas)]: the mean squared leave-one-out residual of
    each alpha; ``alpha_index``: the chosen one."""

    alphas: tuple[float, ...]
    alpha_index: int
    loo_mse: np.ndarray
    dual: np.ndarray
    intercept: np.ndarray

    @property
    def alpha(self) -> float:
        return self.alphas[self.alpha_index]


def one_vs_rest(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """float64 [n, C]: +1 in the label's column, -1 elsewhere (RidgeClassifier's targets;
    with C = 2 the two columns are each other's negation, the same decision as its one)."""
    y = np.full((len(labels), n_classes), -1.0)
    y[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)] = 1.0
    return y


def solve_ridge(gram_lower: np.ndarray, labels: np.ndarray, n_classes: int,
                alphas: tuple[float, ...] = RIDGE_ALPHAS) -> RidgeSolution:
    """The leave-one-out ridge solve of the module docstring.

    ``gram_lower`` float32 [n, n]: the summed Gram matrix, lower triangle (``[i, j]`` for
    ``j <= i``; the upper triangle is ignored); ``labels`` int [n] in 0..C-1."""
    n = gram_lower.shape[0]
    if gram_lower.shape != (n, n) or len(labels) != n:
        raise ValueError(f"gram_lower must be [n, n] and labels [n], got {gram_lower.shape} and {len(labels)}")
    if not alphas or min(alphas) <= 0:
        raise ValueError(f"alphas must be > 0, got {alphas}")
    K = np.tril(gram_lower.astype(np.float64))
    K = K + np.tril(K, -1).T
    # The intercept is not penalized: centre K on both sides (the features' own means are
    # already removed by the devices' scalers; this removes the float32 residue exactly).
    row_mean = K.mean(axis=1)
    K = K - row_mean[:, None] - row_mean[None, :] + row_mean.mean()
    # K_c 1 = 0, so 1/sqrt(n) is an eigenvector of K_c + alpha I with eigenvalue alpha, and
    # the unpenalized intercept must leave it out of G = (K_c + alpha I)^-1. Removing
    # 1/(n alpha) afterwards cancels catastrophically at small alpha; lifting that eigenvalue
    # to lift + alpha first (lift: the mean diagonal, so the conditioning stays K's own) and
    # removing 1/(n (lift + alpha)) is exact and well conditioned.
    lift = max(float(np.trace(K)) / n, 1.0)
    K = K + lift / n
    Y = one_vs_rest(labels, n_classes)
    intercept = Y.mean(axis=0)
    Yc = np.ascontiguousarray(Y - intercept)
    mse = np.empty(len(alphas))
    duals = []
    for k, alpha in enumerate(alphas):
        L = K.copy()  # factorised in place
        gdiag = _cholesky_in_place(L, float(alpha))
        gdiag = gdiag - 1.0 / (n * (lift + alpha))
        c = Yc.copy()
        _cholesky_solve(L, c)
        with np.errstate(divide="ignore", invalid="ignore"):
            residual = c / gdiag[:, None]
        mse[k] = float(np.mean(residual * residual)) if np.all(np.isfinite(residual)) else np.inf
        duals.append(c)
    best = int(np.argmin(mse))  # the first minimum: the smaller alpha on a tie
    return RidgeSolution(alphas=tuple(alphas), alpha_index=best, loo_mse=mse, dual=duals[best],
                         intercept=intercept)


@njit("void(float32[:, ::1], float32[:, ::1], float32[:, ::1])", cache=True, nogil=True)
def _accumulate_dual_weights(W, dual_rows, feats):
    m, nf = feats.shape
    n_classes = W.shape[0]
    for i in range(m):
        x = feats[i]
        for c in range(n_classes):
            a = dual_rows[i, c]
            w = W[c]
            for f in range(nf):
                w[f] += a * x[f]


def accumulate_dual_weights(W: np.ndarray, dual_rows: np.ndarray, feats: np.ndarray) -> None:
    """``W[c] += dual_rows[i, c] * feats[i]`` for the rows ``i`` in order (float32), so
    ``W_d = A^T X_d`` comes out bitwise the same however the rows are batched."""
    _accumulate_dual_weights(W, np.ascontiguousarray(dual_rows, dtype=np.float32),
                             np.ascontiguousarray(feats, dtype=np.float32))
