"""The on-device validation rule (issue 17): which training items are held out, and which
candidate the held-out items choose. Pure numpy: coordinator, devices and the centralized
reference derive the same split and the same choice from the same numbers.

Two selections (``ModelConfig.selection``, docs/ml-core.md "The validation rule"):

- ``"decay"`` (ours): the weight decays ``ModelConfig.select_weight_decays`` are trained one
  after another on the *fit* items (the training split minus the validation items), each
  from the same initial weights and for the same epochs; after each candidate's last epoch
  every device scores the validation items. The candidate with the most correct validation
  items wins (ties: the earlier one, i.e. the strongest decay when the grid is ordered
  strongest first). Then the model is trained again from scratch on the *whole* training
  split with the chosen decay, exactly as a plain run with that decay.
- ``"epoch"`` (the paper's simulation): one training on the fit items; after every epoch
  the validation items are scored and the device keeps a copy of its weights at the best
  epoch (ties: the earlier epoch); the final test pass runs on that copy. No retraining.

The validation items are a seeded draw that needs no labels, because every device derives
the stream from the schedule alone (a device holds only its own shard's labels):
``sorted(default_rng([seed, 2]).permutation(n_train)[:n_val])``, ``n_val = round(fraction ·
n_train)`` clipped to ``[1, n_train - 1]``. The test split never enters it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["SELECTIONS", "VALIDATION_SALT", "n_validation", "select_candidate", "validation_split"]

#: ``"none"``: no validation; ``"decay"``: weight-decay grid + retrain; ``"epoch"``: best epoch.
SELECTIONS: tuple[str, ...] = ("none", "decay", "epoch")
#: Second word of the validation draw's seed (0/1 are taken: sample order, bias rows).
VALIDATION_SALT = 2


def n_validation(n_train: int, fraction: float) -> int:
    """Validation items for a training split of ``n_train`` samples (at least 1, and at least
    one training sample left to fit on)."""
    if n_train < 2:
        raise ValueError(
            f"a validation split needs at least 2 training samples, got {n_train}: "
            "use selection='none'"
        )
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction!r}")
    return int(min(max(round(fraction * n_train), 1), n_train - 1))


def validation_split(n_train: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(fit int64[n_train - n_val], val int64[n_val])``: sorted, disjoint indices into the
    training split that together cover it (see the module docstring for the rule)."""
    n_val = n_validation(n_train, fraction)
    order = np.random.default_rng([seed, VALIDATION_SALT]).permutation(n_train)
    val = np.sort(order[:n_val]).astype(np.int64)
    fit = np.sort(order[n_val:]).astype(np.int64)
    return fit, val


def select_candidate(correct: Sequence[int]) -> int:
    """Index of the candidate with the most correct validation items; ties go to the
    earliest (the strongest decay, the earliest epoch). ``ValueError`` when empty."""
    if len(correct) == 0:
        raise ValueError("no validation score to select from: the stream has no validation pass")
    best = 0
    for k, c in enumerate(correct):
        if c > correct[best]:
            best = k
    return best
