"""How long the head trains and at which learning rates: the batch size used, optimizer steps
per epoch and per run, the default epoch rule, the learning-rate schedule, and the training
recipes (``--recipe``). Re-exported by :mod:`protocol.config.model`.
"""

from __future__ import annotations

import math
from typing import Protocol

from protocol.config.training_length import rule_epochs

__all__ = [
    "RECIPES",
    "TrainingConfig",
    "effective_batch_size",
    "lr_at",
    "n_epochs",
    "recipe_overrides",
    "steps_per_epoch",
    "total_steps",
]


class TrainingConfig(Protocol):
    """What the training length and schedule read of a
    :class:`~protocol.config.model.ModelConfig` (a protocol here, so that this module need
    not import the configuration that imports it)."""

    @property
    def head(self) -> str: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def epochs(self) -> int | None: ...

    @property
    def weight_decay(self) -> float: ...

    @property
    def lr(self) -> float: ...

    @property
    def lr_schedule(self) -> str: ...

    @property
    def lr_min_ratio(self) -> float: ...


# ----------------------------------------------------------------------------- training


def effective_batch_size(n_train: int, cfg: TrainingConfig) -> int:
    """The batch size used: ``min(cfg.batch_size, n_train)``."""
    return max(1, min(cfg.batch_size, n_train))


def steps_per_epoch(n_train: int, cfg: TrainingConfig) -> int:
    """Optimizer steps of one epoch (the last, partial batch of an epoch steps too)."""
    return math.ceil(n_train / effective_batch_size(n_train, cfg))


def n_epochs(n_train: int, cfg: TrainingConfig) -> int:
    """The run's epochs: ``cfg.epochs`` when set, else the default rule
    (:func:`protocol.config.training_length.rule_epochs`): the fewest epochs >= 15 after
    which the decoupled weight decay has shrunk the random init to 1 % (``weight_decay`` and
    this schedule's learning rates; 15 without decay)."""
    if cfg.head == "ridge":
        return 0  # no SGD epochs: Gram passes and one solve (protocol.stream.schedule)
    if cfg.epochs is not None:
        return cfg.epochs
    return rule_epochs(steps_per_epoch(n_train, cfg), lambda t, s: lr_at(t, s, cfg), cfg.weight_decay)


def total_steps(n_train: int, cfg: TrainingConfig) -> int:
    """Optimizer steps of the run (the last, partial batch of an epoch steps too; the ridge
    head's one solve counts as its one step)."""
    if cfg.head == "ridge":
        return 1
    return n_epochs(n_train, cfg) * steps_per_epoch(n_train, cfg)


def lr_at(step: int, n_steps: int, cfg: TrainingConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based) out of ``n_steps``."""
    if cfg.lr_schedule == "constant" or n_steps <= 1:
        return float(cfg.lr)
    frac = min(max(step / n_steps, 0.0), 1.0)
    low = cfg.lr * cfg.lr_min_ratio
    return float(low + (cfg.lr - low) * 0.5 * (1.0 + math.cos(math.pi * frac)))


#: Training recipes (``--recipe``): ``tuned`` is ModelConfig's defaults; ``paper`` is the
#: official firmware's (linear_classifier.c: ``WEIGHT_DECAY (0)``, ``LEARNING_RATE (1e-3)``
#: constant, ``USE_QADAM 1``; GenerateCodeDistributedRocket.py: ``'batch_size': 128``; no
#: feature scaling anywhere in conv.c) plus the paper's 80/20 validation split and
#: best-validation epoch (``selection="epoch"``, protocol.stream.validation).
RECIPES: dict[str, dict[str, object]] = {
    "tuned": {},
    "paper": {"batch_size": 128, "lr": 1e-3, "lr_schedule": "constant", "weight_decay": 0.0,
              "feature_scaling": False, "optimizer": "adam8bit", "selection": "epoch",
              "val_fraction": 0.2},
}


def recipe_overrides(name: str) -> dict[str, object]:
    """The ModelConfig overrides of recipe ``name``; a clear error that lists the choices."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}: use --recipe {' or '.join(RECIPES)}")
    return dict(RECIPES[name])
