"""Data placement: which device holds which sample (``--split``).

A placement is a permutation of a dataset's samples. The run reorders its training and test
sets by it once, at setup, and from then on device ``d`` owns the ``d``-th contiguous range
(:func:`~protocol.stream.schedule.contiguous_split`) of the *reordered* sets, exactly as
with the firmware's contiguous placement. Coordinator, nodes and the centralized reference
all see the reordered sets, so the distributed == centralized equivalence holds for every
placement without any of them knowing which one was used.

Placements (every device gets the same number of samples, +-1, as with ``contiguous``):

- ``contiguous``: the dataset's own order (the identity; the default, as in the firmware);
- ``iid``: a uniformly random permutation;
- ``label-sorted``: samples sorted by label (stable), so each device sees one or few classes
  (the paper's non-IID simulation);
- ``dirichlet:ALPHA``: device ``d`` draws class proportions ``p_d ~ Dir(ALPHA)`` and fills
  its slots, round-robin over devices, with a class drawn from ``p_d`` among the classes
  that still have samples left. Small ``ALPHA`` (0.1) is strongly non-IID, large (100)
  close to IID.

Everything is pure and deterministic from ``(labels, n_devices, split, seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLITS = ("contiguous", "iid", "label-sorted", "dirichlet:ALPHA")


@dataclass(frozen=True)
class Split:
    """A parsed ``--split`` value: ``kind`` and, for dirichlet, its concentration ``alpha``."""

    kind: str
    alpha: float = 0.0


def parse_split(text: str) -> Split:
    """Parse ``contiguous|iid|label-sorted|dirichlet:ALPHA``; a bad value names the choices."""
    choices = "|".join(SPLITS)
    value = str(text).strip()
    if value in ("contiguous", "iid", "label-sorted"):
        return Split(value)
    if value.startswith("dirichlet:"):
        raw = value.split(":", 1)[1]
        try:
            alpha = float(raw)
        except ValueError:
            raise ValueError(
                f"split {text!r}: ALPHA must be a number > 0 (e.g. dirichlet:0.5); "
                f"choices: {choices}") from None
        if not np.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"split {text!r}: ALPHA must be a finite number > 0 (e.g. dirichlet:0.5)")
        return Split("dirichlet", alpha)
    raise ValueError(f"split must be one of {choices}, got {text!r}")


def _quotas(n: int, parts: int) -> np.ndarray:
    """Samples per device: the remainder to the first devices (as ``contiguous_split``)."""
    base, extra = divmod(n, parts)
    return np.array([base + (1 if i < extra else 0) for i in range(parts)], dtype=np.int64)


def placement_order(labels: np.ndarray, n_devices: int, split: str, seed: int,
                    salt: int = 0) -> np.ndarray:
    """int64 [n]: the permutation of samples by which the set is reordered for ``split``.

    ``salt`` tells the training set (0) and the test set (1) apart, so that their random
    placements are independent draws from the same seed.
    """
    spec = parse_split(split)
    y = np.asarray(labels, dtype=np.int64)
    n = int(y.shape[0])
    if n_devices < 1:
        raise ValueError(f"n_devices must be >= 1, got {n_devices}")
    if spec.kind == "contiguous":
        return np.arange(n, dtype=np.int64)
    if spec.kind == "label-sorted":
        return np.argsort(y, kind="stable").astype(np.int64)
    # A stream of its own ([seed, 7919, salt]) so that placement draws never coincide with
    # the epoch shuffles ([seed, epoch]).
    rng = np.random.default_rng([seed, 7919, salt])
    if spec.kind == "iid":
        return rng.permutation(n).astype(np.int64)
    return _dirichlet_order(y, n_devices, spec.alpha, rng)


def _dirichlet_order(y: np.ndarray, n_devices: int, alpha: float,
                     rng: np.random.Generator) -> np.ndarray:
    classes = np.unique(y)
    pools = [list(rng.permutation(np.flatnonzero(y == c))) for c in classes]
    props = rng.dirichlet(np.full(len(classes), alpha), size=n_devices)
    quotas = _quotas(int(y.shape[0]), n_devices)
    held: list[list[int]] = [[] for _ in range(n_devices)]
    # Round-robin over devices, one slot at a time, so that running out of a class late
    # does not fall on the last devices alone.
    for slot in range(int(quotas.max()) if n_devices else 0):
        for d in range(n_devices):
            if slot >= quotas[d]:
                continue
            left = np.array([len(p) > 0 for p in pools])
            weights = props[d] * left
            total = weights.sum()
            # A device whose classes are all used up takes any class still left.
            p = weights / total if total > 0 else left / left.sum()
            c = int(rng.choice(len(classes), p=p))
            held[d].append(int(pools[c].pop()))
    return np.array([i for part in held for i in part], dtype=np.int64)


def label_histograms(labels: np.ndarray, n_devices: int, n_classes: int) -> list[list[int]]:
    """Per device, the count of each class among the samples it holds (after reordering)."""
    y = np.asarray(labels, dtype=np.int64)
    quotas = _quotas(int(y.shape[0]), n_devices)
    bounds = np.concatenate([[0], np.cumsum(quotas)])
    return [np.bincount(y[bounds[d]:bounds[d + 1]], minlength=n_classes).astype(int).tolist()
            for d in range(n_devices)]
