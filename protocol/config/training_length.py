"""The default training length (issue 17): at least ``MIN_EPOCHS`` epochs, and long enough
for decoupled weight decay to remove the random initialization.

Why (docs/ml-core.md "The training length"): the head starts from ``2·N(0,1)/√(F + C)``
weights, which add noise of about ±2 to every logit (F ≈ 10,000 standardized features).
Most of those weight directions get no gradient from 20–200 training series; only the
decoupled weight decay removes them, by the factor ``(1 − lr_t · weight_decay)`` per optimizer
step (AdamW, Loshchilov & Hutter 2019). So what is left of the init after a run is

    residue(S) = Π_{t < S} |1 − lr_t · weight_decay|,

which depends on the number of optimizer steps S, not on the epochs: a fixed 15 epochs give
a 20-series training split (2 steps an epoch, 30 steps) a residue of 0.20 at the default
decay, and a 200-series split (13 steps an epoch) 4·10⁻⁵. The rule lengthens the run until
the residue is at most :data:`INIT_RESIDUE`.

Pure Python on the run's numbers: every device, the coordinator and the centralized
reference get the same epoch count from the same ``ModelConfig`` and ``n_train``, so the
stream stays static.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["INIT_RESIDUE", "MAX_EPOCHS", "MIN_EPOCHS", "init_residue", "rule_epochs"]

#: The fewest epochs of a default run: the fixed default before issue 17 (issue 3's
#: measurements, docs/ml-core.md "Defaults and accuracy").
MIN_EPOCHS = 15
#: Our own choice: the init's share of a weight left after the run, 1 %. The init adds about
#: ±2 to a logit; 1 % of it (±0.02) is far below any class margin worth having, while the
#: residue of a 15-epoch run on the smallest bundled splits is 9–20 % (±0.2–0.4 of a
#: logit, enough to flip close test series). Two decades, not a value fitted to any result.
INIT_RESIDUE = 0.01
#: The rule never asks for more epochs than this (RockNet's own simulation length, 1000
#: epochs); reached only with a weight decay far below the default (100).
MAX_EPOCHS = 1000


def init_residue(n_steps: int, lr_of_step: Callable[[int, int], float], weight_decay: float) -> float:
    """``Π_{t < n_steps} |1 − lr_of_step(t, n_steps) · weight_decay|``: the fraction of a
    weight that no gradient touches left after ``n_steps`` optimizer steps (1.0 for no
    steps or no decay). ``lr_of_step(t, S)`` is step t's learning rate in a run of S steps."""
    log_residue = 0.0
    for t in range(n_steps):
        factor = abs(1.0 - lr_of_step(t, n_steps) * weight_decay)
        if factor == 0.0:
            return 0.0
        log_residue += math.log(factor)
    return math.exp(log_residue)


def rule_epochs(steps_per_epoch: int, lr_of_step: Callable[[int, int], float], weight_decay: float,
                min_epochs: int = MIN_EPOCHS, residue: float = INIT_RESIDUE,
                max_epochs: int = MAX_EPOCHS) -> int:
    """The smallest epoch count ``E >= min_epochs`` whose ``E · steps_per_epoch`` steps leave
    :func:`init_residue` ``<= residue``, capped at ``max_epochs``; ``min_epochs`` without
    weight decay (then nothing removes the init and more epochs do not help it).

    The residue falls as E grows (more factors below 1, and a longer cosine keeps every
    step's lr higher), so a binary search finds E."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    if weight_decay <= 0.0:
        return min_epochs

    def enough(epochs: int) -> bool:
        return init_residue(epochs * steps_per_epoch, lr_of_step, weight_decay) <= residue

    if enough(min_epochs):
        return min_epochs
    if not enough(max_epochs):
        return max_epochs
    lo, hi = min_epochs, max_epochs  # enough(lo) is False, enough(hi) is True
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if enough(mid):
            hi = mid
        else:
            lo = mid
    return hi
