"""GF(2) linear algebra of Mixer's coding vectors: bitmask rows in reduced row echelon form.

A node's basis is ``basis[b, pivot, word]`` (uint64 words, ``ceil(G / 64)`` per row) indexed by
pivot column, ``piv[b]`` the pivot bitmask, ``order[b, :rank[b]]`` the pivots in insertion
order. Pure numba kernels, shared by :mod:`protocol.air.radio.mixer`.
"""

from __future__ import annotations

import numpy as np
from protocol.air.jit import njit

from protocol.air.rng import rng_next

_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_TABLE = np.array(
    [0, 1, 48, 2, 57, 49, 28, 3, 61, 58, 50, 42, 38, 29, 17, 4,
     62, 55, 59, 36, 53, 51, 43, 22, 45, 39, 33, 30, 24, 18, 12, 5,
     63, 47, 56, 27, 60, 41, 37, 16, 54, 35, 52, 21, 44, 32, 23, 11,
     46, 26, 40, 15, 34, 20, 31, 10, 25, 14, 19, 9, 13, 8, 7, 6], dtype=np.int64)


@njit(cache=True, inline="always")
def _ctz(t: np.uint64, table: np.ndarray) -> int:
    """Index of the single set bit of ``t`` (a power of two)."""
    index: int = table[(t * _DEBRUIJN) >> np.uint64(58)]
    return index


@njit(cache=True)
def _insert(basis: np.ndarray, piv: np.ndarray, order: np.ndarray, rank: np.ndarray, b: int,
            v: np.ndarray, n_words: int, table: np.ndarray) -> bool:
    """Insert vector ``v`` (modified) into node ``b``'s RREF basis; True if innovative."""
    one = np.uint64(1)
    zero = np.uint64(0)
    # reduce by the pivots present in v (pivot bits of v do not change while reducing)
    for w in range(n_words):
        m = v[w] & piv[b, w]
        while m != zero:
            t = m & (~m + one)
            p = w * 64 + _ctz(t, table)
            for x in range(w, n_words):
                v[x] ^= basis[b, p, x]
            m ^= t
    c = -1
    for w in range(n_words):
        if v[w] != zero:
            t = v[w] & (~v[w] + one)
            c = w * 64 + _ctz(t, table)
            break
    if c < 0:
        return False
    cw = c // 64
    cbit = one << np.uint64(c % 64)
    # back-substitute: rows with a pivot left of c may have bit c set
    for i in range(rank[b]):
        q = order[b, i]
        if q < c and (basis[b, q, cw] & cbit) != zero:
            for x in range(q // 64, n_words):
                basis[b, q, x] ^= v[x]
    for x in range(n_words):
        basis[b, c, x] = v[x]
    piv[b, cw] |= cbit
    order[b, rank[b]] = c
    rank[b] += 1
    return True


@njit(cache=True)
def _combine(basis: np.ndarray, order: np.ndarray, rank: np.ndarray, a: int, out: np.ndarray,
             n_words: int, rng: np.ndarray) -> None:
    """A uniformly random non-zero combination of node ``a``'s basis rows into ``out``."""
    r = rank[a]
    while True:
        for x in range(n_words):
            out[x] = np.uint64(0)
        picked = 0
        bits = np.uint64(0)
        for i in range(r):
            if i % 64 == 0:
                bits = rng_next(rng)
            if (bits >> np.uint64(i % 64)) & np.uint64(1):
                q = order[a, i]
                for x in range(q // 64, n_words):
                    out[x] ^= basis[a, q, x]
                picked += 1
        if picked > 0:
            return
