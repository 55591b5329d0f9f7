"""The model's configuration (:class:`ModelConfig`: its fields, their validation, plain-value
round trips) and the sample stream that trains it (:func:`schedule_config`).

Shared by the coordinator and the nodes. The geometry of MiniRocket shards
(:mod:`protocol.config.layout`) and the training length and learning-rate schedule
(:mod:`protocol.config.training`) live in modules of their own and are re-exported here, so
``from protocol.config.model import fit_dilations`` and the like keep working.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from protocol.config.layout import (
    AEON_MAX_DILATIONS,
    KERNEL_LENGTH,
    N_KERNELS,
    aeon_to_kernel_major,
    bias_fit_rows,
    check_n_devices,
    feature_ranges,
    fit_dilations,
    kernel_ranges,
    kernels_at_dilation,
    kernels_of_units,
    max_devices,
    n_features_total,
    quantile_positions,
    shard_fit_series,
    shard_fit_series_units,
    unit_offsets,
    unit_ranges,
)
from protocol.config.training import (
    RECIPES,
    effective_batch_size,
    lr_at,
    n_epochs,
    recipe_overrides,
    steps_per_epoch,
    total_steps,
)
from protocol.stream.packets import PACKET_PAYLOAD_BYTES
from protocol.stream.schedule import ScheduleConfig
from protocol.stream.validation import SELECTIONS

__all__ = [
    "ADAM8BIT_BLOCK",
    "AEON_MAX_DILATIONS",
    "BIAS_SOURCES",
    "DILATION_STYLES",
    "HEADS",
    "KERNEL_LENGTH",
    "LR_SCHEDULES",
    "N_KERNELS",
    "OPTIMIZERS",
    "PADDINGS",
    "RECIPES",
    "ModelConfig",
    "aeon_to_kernel_major",
    "bias_fit_rows",
    "check_n_devices",
    "effective_batch_size",
    "feature_ranges",
    "fit_dilations",
    "kernel_ranges",
    "kernels_at_dilation",
    "kernels_of_units",
    "lr_at",
    "max_devices",
    "n_epochs",
    "n_features_total",
    "quantile_positions",
    "recipe_overrides",
    "schedule_config",
    "shard_fit_series",
    "shard_fit_series_units",
    "steps_per_epoch",
    "total_steps",
    "unit_offsets",
    "unit_ranges",
]

#: Which positions a feature's PPV counts: ``"alternate"`` (aeon MiniRocket: all L
#: zero-padded positions when kernel + dilation index is even, else only the valid ones) or
#: ``"zero"`` (the official RockNet firmware, ``c_src/cp_firmware/app``: all L zero-padded
#: positions for every kernel; set by ``--profile firmware``).
PADDINGS = ("alternate", "zero")

DILATION_STYLES = ("paper", "aeon")
BIAS_SOURCES = ("first", "random")
OPTIMIZERS = ("adam", "adam8bit")
#: 8-bit Adam's quantization block: entries per absmax scale (the paper's block size;
#: node/ml/adam8bit.py, the RAM ledger).
ADAM8BIT_BLOCK = 256
#: The head (docs/ml-core.md): ``"sgd"``, the paper's softmax head trained by (8-bit) Adam
#: on mini-batches; ``"ridge"``, ridge regression solved from the exchanged Gram matrix with
#: a leave-one-out alpha (node/ml/ridge.py).
HEADS = ("sgd", "ridge")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the model and its training, apart from the data and N.

    Attributes:
        num_features: target feature count (MiniRocket's ~10,000); the real count is
            ``84 * sum(features_per_dilation)`` (see :func:`fit_dilations`).
        dilation_style: ``"paper"``: dilations ``2**0 .. 2**floor(log2((L-1)/8))`` and
            ``num_features // (n_dilations * 84)`` biases per (kernel, dilation) as the
            RockNet firmware; ``"aeon"``: aeon MiniRocket's rule (up to 32 dilations,
            log-spaced, features spread over them).
        bias_source: ``"random"`` (the default since issue 17): one random training series
            per (kernel, dilation), as aeon's MiniRocket (Dempster et al. 2021) does;
            ``"first"``: every bias is fitted on training series 0 (the paper's firmware,
            ``--profile firmware``).
        optimizer: ``"adam"`` (float32 states, the exact reference) or ``"adam8bit"``
            (m and v as uint8, block-wise dynamic-tree quantization, blocks of 256).
        lr, beta1, beta2, eps: Adam's hyper-parameters.
        weight_decay: decoupled weight decay (AdamW): each step also shrinks the weights by
            ``lr_t * weight_decay`` of themselves (W only, not the bias b).
        batch_size: training samples per optimizer step (capped at the training-set size
            by :func:`effective_batch_size`).
        epochs: passes over the training set; ``None`` (the default): :func:`n_epochs`'s
            rule, at least 15 and enough optimizer steps for the weight decay to remove the
            random init (``protocol.config.training_length``).
        lr_schedule: ``"constant"`` or ``"cosine"`` (from ``lr`` down to
            ``lr * lr_min_ratio`` after the last step, see :func:`lr_at`).
        lr_min_ratio: the cosine schedule's final learning rate as a fraction of ``lr``.
        feature_scaling: per-feature standardization, each device on its own features,
            from a calibration pass over the training set.
        seed: seeds weight initialization, the random bias rows and the sample order.
        selection: the validation rule (``protocol.stream.validation``, docs/ml-core.md):
            ``"none"``; ``"decay"``: each of ``select_weight_decays`` trained on the fit
            items and scored on the held-out validation items, then the winner retrained on
            the whole training split; ``"epoch"``: the paper's best-validation epoch.
        select_weight_decays: the ``"decay"`` candidates, strongest first (ties on the
            validation split go to the earlier one).
        val_fraction: the held-out fraction of the training split (the paper's 80/20: 0.2).
        padding: which positions PPV counts, one of :data:`PADDINGS`.
        head: one of :data:`HEADS`: ``"sgd"`` (the optimizer, lr, decay, batch and epoch
            fields apply) or ``"ridge"`` (they do not: Gram passes, one leave-one-out solve
            over ``node.ml.ridge.RIDGE_ALPHAS``; needs feature scaling and no selection).
        gram_block: the ridge head's samples per Gram block (at least C); 0 (the default):
            :func:`gram_block_size`'s 25, a packet of floats. ``--head auto`` sets C where
            the default block does not fit the RAM budget (protocol/config/ridge_ram.py).
    """

    num_features: int = 10_000
    dilation_style: str = "paper"
    bias_source: str = "random"
    optimizer: str = "adam"
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 100.0
    batch_size: int = 16
    epochs: int | None = None
    lr_schedule: str = "cosine"
    lr_min_ratio: float = 0.0
    feature_scaling: bool = True
    seed: int = 0
    selection: str = "none"
    select_weight_decays: tuple[float, ...] = (100.0, 10.0, 1.0)
    val_fraction: float = 0.2
    padding: str = "alternate"
    head: str = "sgd"
    gram_block: int = 0

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"ModelConfig: {message}")

        need(
            isinstance(self.num_features, int) and self.num_features >= N_KERNELS,
            f"num_features must be an int >= {N_KERNELS} (one per kernel at least), "
            f"got {self.num_features!r}",
        )
        need(
            self.dilation_style in DILATION_STYLES,
            f"dilation_style must be one of {DILATION_STYLES}, got {self.dilation_style!r}",
        )
        need(
            self.bias_source in BIAS_SOURCES,
            f"bias_source must be one of {BIAS_SOURCES}, got {self.bias_source!r}",
        )
        need(
            self.optimizer in OPTIMIZERS,
            f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}",
        )
        need(
            self.lr_schedule in LR_SCHEDULES,
            f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}",
        )
        need(self.lr > 0 and math.isfinite(self.lr), f"lr must be > 0, got {self.lr!r}")
        need(0.0 <= self.beta1 < 1.0, f"beta1 must be in [0, 1), got {self.beta1!r}")
        need(0.0 <= self.beta2 < 1.0, f"beta2 must be in [0, 1), got {self.beta2!r}")
        need(self.eps > 0, f"eps must be > 0, got {self.eps!r}")
        need(
            self.weight_decay >= 0 and math.isfinite(self.weight_decay),
            f"weight_decay must be >= 0, got {self.weight_decay!r}",
        )
        need(
            0.0 <= self.lr_min_ratio <= 1.0,
            f"lr_min_ratio must be in [0, 1], got {self.lr_min_ratio!r}",
        )
        need(
            isinstance(self.batch_size, int) and self.batch_size >= 1,
            f"batch_size must be an int >= 1, got {self.batch_size!r}",
        )
        need(
            self.epochs is None or (isinstance(self.epochs, int) and not isinstance(self.epochs, bool)
                                    and self.epochs >= 0),
            f"epochs must be an int >= 0 or None (the default rule), got {self.epochs!r}",
        )
        need(isinstance(self.feature_scaling, bool), "feature_scaling must be a bool")
        need(
            isinstance(self.seed, int) and self.seed >= 0,
            f"seed must be an int >= 0, got {self.seed!r}",
        )
        need(
            self.padding in PADDINGS,
            f"padding must be one of {PADDINGS}, got {self.padding!r}",
        )
        need(
            self.selection in SELECTIONS,
            f"selection must be one of {SELECTIONS}, got {self.selection!r}",
        )
        need(
            isinstance(self.select_weight_decays, tuple) and len(self.select_weight_decays) >= 1
            and all(isinstance(w, float) and w >= 0 and math.isfinite(w) for w in self.select_weight_decays),
            "select_weight_decays must be a non-empty tuple of floats >= 0, strongest first, "
            f"e.g. (100.0, 10.0, 1.0); got {self.select_weight_decays!r}",
        )
        need(
            isinstance(self.val_fraction, float) and 0.0 < self.val_fraction < 1.0,
            f"val_fraction must be a float in (0, 1) (0.2: the paper's 80/20), got {self.val_fraction!r}",
        )

        need(self.head in HEADS, f"head must be one of {HEADS}, got {self.head!r}")
        need(
            isinstance(self.gram_block, int) and not isinstance(self.gram_block, bool) and self.gram_block >= 0
            and (self.gram_block == 0 or self.head == "ridge"),
            "gram_block is the ridge head's block size (an int >= 0, 0: the default; head='ridge' "
            f"only), got {self.gram_block!r} with head={self.head!r}",
        )
        need(
            self.head != "ridge" or (self.feature_scaling and self.selection == "none"),
            "head='ridge' standardizes the features and chooses its own regularization: it needs "
            f"feature_scaling=True and selection='none' (got {self.feature_scaling!r}, {self.selection!r})",
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values (str, int, float, bool, a list of floats): msgpack- and JSON-able.

        The validation rule's fields appear only when not at their defaults, so that runs
        without the rule keep their configuration fingerprints."""
        out = asdict(self)
        for name in _QUIET_FIELDS:
            if out[name] == _DEFAULTS[name]:
                del out[name]
        if "select_weight_decays" in out:
            out["select_weight_decays"] = list(out["select_weight_decays"])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"ModelConfig: unknown keys {unknown}; known keys are {sorted(known)}"
            )
        values = dict(data)
        # msgpack/JSON may turn floats that are whole numbers into ints: accept them.
        for name in ("lr", "beta1", "beta2", "eps", "weight_decay", "lr_min_ratio", "val_fraction"):
            if name in values and isinstance(values[name], int) and not isinstance(values[name], bool):
                values[name] = float(values[name])
        if isinstance(values.get("select_weight_decays"), (list, tuple)):
            values["select_weight_decays"] = tuple(
                float(w) if isinstance(w, int) and not isinstance(w, bool) else w
                for w in values["select_weight_decays"])
        return cls(**values)

    def phase_weight_decay(self, phase: int, chosen: int) -> float:
        """The weight decay of stream phase ``phase`` (``protocol.stream.schedule``):
        candidate ``phase`` while selecting, then candidate ``chosen``; ``weight_decay``
        without the ``"decay"`` rule."""
        if self.selection != "decay":
            return self.weight_decay
        grid = self.select_weight_decays
        return grid[phase] if phase < len(grid) else grid[chosen]


#: Fields left out of :meth:`ModelConfig.to_dict` at their default (the validation rule's).
_QUIET_FIELDS = ("selection", "select_weight_decays", "val_fraction", "padding", "head", "gram_block")
_DEFAULTS = {"selection": "none", "select_weight_decays": (100.0, 10.0, 1.0), "val_fraction": 0.2,
             "padding": "alternate", "head": "sgd", "gram_block": 0}


#: Floats of one packet's payload (protocol.stream.packets.PACKET_PAYLOAD_BYTES / 4 B).
GRAM_ROW_FLOATS = PACKET_PAYLOAD_BYTES // 4


def gram_block_size(n_classes: int, requested: int = 0) -> int:
    """Samples per ridge Gram block, the width of a partial Gram row: ``requested``
    (``ModelConfig.gram_block``) if set, else as many float32 as one packet carries (25),
    since a device's partial logits take one packet whatever C <= 25 is, so the wider row
    costs no air time; C where C > 25 (the logits' own packets). Never under C (a test
    pass's logits ride in the same slot): ``ValueError``."""
    if requested and requested < n_classes:
        raise ValueError(f"gram_block={requested} is under the class count {n_classes}: a logit slot "
                         "must hold C values (use gram_block=0, the default, or >= C)")
    return int(requested) if requested else max(int(n_classes), GRAM_ROW_FLOATS)


def schedule_config(
    cfg: ModelConfig, n_train: int, n_test: int, n_devices: int, eval_every: int = 0,
    n_classes: int | None = None,
) -> ScheduleConfig:
    """The sample stream that trains this model (calibration pass iff feature scaling).

    ``n_classes`` is needed by the ridge head only: a partial Gram row rides in a logit
    slot, :func:`gram_block_size` values wide."""
    if cfg.head == "ridge" and (n_classes is None or n_classes < 2):
        raise ValueError("head='ridge' lays its Gram passes out by the class count: pass n_classes >= 2")
    return ScheduleConfig(
        n_train=n_train,
        n_test=n_test,
        n_devices=n_devices,
        epochs=n_epochs(n_train, cfg),
        # the ridge head's Gram items per exchange: C, so that an exchange lost to a dead node
        # costs the solve at most C samples (node/ml/ridge_head.py complete_samples; our choice)
        batch_size=int(n_classes) if cfg.head == "ridge" and n_classes is not None else effective_batch_size(n_train, cfg),
        seed=cfg.seed,
        eval_every=eval_every,
        calibrate=cfg.feature_scaling,
        selection=cfg.selection,
        n_candidates=len(cfg.select_weight_decays) if cfg.selection == "decay" else 1,
        val_fraction=cfg.val_fraction,
        gram_block=gram_block_size(n_classes, cfg.gram_block) if cfg.head == "ridge" and n_classes is not None else 0,
    )
