"""The model's configuration and the pure geometry of MiniRocket shards (numpy only).

Shared by the coordinator and the nodes: which dilations and how many features per dilation
a series length gets, which training series fit the biases of each (kernel, dilation), how
the 84 kernels (up to 84 devices) or the ``84 * D`` (kernel, dilation) pairs (past 84) and
the feature vector are split over devices, the learning-rate schedule.

Feature order is *kernel-major*: ``(kernel, dilation, bias)``, so a contiguous kernel range
is a contiguous slice of the feature vector. (aeon orders features dilation-major:
``(dilation, kernel, bias)``; :func:`aeon_to_kernel_major` gives the permutation.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from protocol.config.training_length import rule_epochs
from protocol.stream.schedule import ScheduleConfig, contiguous_split
from protocol.stream.validation import SELECTIONS

#: Which positions a feature's PPV counts: ``"alternate"`` (aeon MiniRocket: all L
#: zero-padded positions when kernel + dilation index is even, else only the valid ones) or
#: ``"zero"`` (the official RockNet firmware, ``c_src/cp_firmware/app``: all L zero-padded
#: positions for every kernel; set by ``--profile firmware``).
PADDINGS = ("alternate", "zero")
#: MiniRocket's kernels: all choices of 3 positions out of 9 (weight 2, the others -1).
N_KERNELS = 84
#: Length of every MiniRocket kernel.
KERNEL_LENGTH = 9
#: aeon's cap on dilations per kernel (its ``max_dilations_per_kernel`` default).
AEON_MAX_DILATIONS = 32

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
_QUIET_FIELDS = ("selection", "select_weight_decays", "val_fraction", "padding", "head")
_DEFAULTS = {"selection": "none", "select_weight_decays": (100.0, 10.0, 1.0), "val_fraction": 0.2,
             "padding": "alternate", "head": "sgd"}


# ----------------------------------------------------------------------------- dilations


def _check_length(series_length: int) -> None:
    if series_length < KERNEL_LENGTH:
        raise ValueError(
            f"series length {series_length} is shorter than MiniRocket's kernel "
            f"({KERNEL_LENGTH}): zero-pad the series to at least {KERNEL_LENGTH} samples"
        )


def _aeon_dilations(series_length: int, num_features: int) -> tuple[np.ndarray, np.ndarray]:
    """aeon MiniRocket's dilation rule (re-derived: log-spaced, unique, remainder spread)."""
    per_kernel = num_features // N_KERNELS
    n_dil_max = min(per_kernel, AEON_MAX_DILATIONS)
    multiplier = per_kernel / n_dil_max
    max_exponent = np.log2((series_length - 1) / (KERNEL_LENGTH - 1))
    raw = np.logspace(0, max_exponent, n_dil_max, base=2).astype(np.int32)
    dilations, counts = np.unique(raw, return_counts=True)
    per_dilation = (counts * multiplier).astype(np.int32)
    remainder = per_kernel - int(per_dilation.sum())
    i = 0
    while remainder > 0:
        per_dilation[i] += 1
        remainder -= 1
        i = (i + 1) % len(per_dilation)
    return dilations.astype(np.int32), per_dilation.astype(np.int32)


def fit_dilations(series_length: int, cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """Dilations and biases per (kernel, dilation) for series of ``series_length`` samples.

    Returns ``(dilations int32[D], features_per_dilation int32[D])``; each kernel has
    ``features_per_dilation[j]`` features at dilation ``j``, so the model has
    ``84 * features_per_dilation.sum()`` features.
    """
    _check_length(series_length)
    if cfg.dilation_style == "aeon":
        return _aeon_dilations(series_length, cfg.num_features)
    max_exp = int(math.floor(math.log2((series_length - 1) / (KERNEL_LENGTH - 1))))
    # guard against float round-off at exact powers of two
    while 2 ** (max_exp + 1) * (KERNEL_LENGTH - 1) <= series_length - 1:
        max_exp += 1
    while max_exp > 0 and 2**max_exp * (KERNEL_LENGTH - 1) > series_length - 1:
        max_exp -= 1
    dilations = (2 ** np.arange(max_exp + 1)).astype(np.int32)
    per = cfg.num_features // (len(dilations) * N_KERNELS)
    if per < 1:
        raise ValueError(
            f"num_features={cfg.num_features} gives no feature per (kernel, dilation) for "
            f"{len(dilations)} dilations: use num_features >= {len(dilations) * N_KERNELS}"
        )
    return dilations, np.full(len(dilations), per, dtype=np.int32)


def n_features_total(features_per_dilation: np.ndarray) -> int:
    """Length of the full feature vector."""
    return N_KERNELS * int(np.sum(features_per_dilation))


# ----------------------------------------------------------------------------- biases


def bias_fit_rows(n_train: int, n_dilations: int, cfg: ModelConfig) -> np.ndarray:
    """Training sample (index into the training set) that fits each (kernel, dilation).

    Returns int32[84, D]. ``"first"``: all zeros; ``"random"``: uniform draws from
    ``np.random.default_rng([seed, 1])``, drawn dilation-major as aeon does.
    """
    if n_train < 1:
        raise ValueError("bias fitting needs at least one training series")
    if n_dilations < 1:
        raise ValueError(f"n_dilations must be >= 1, got {n_dilations}")
    if cfg.bias_source == "first":
        return np.zeros((N_KERNELS, n_dilations), dtype=np.int32)
    rng = np.random.default_rng([cfg.seed, 1])
    rows = rng.integers(0, n_train, size=(n_dilations, N_KERNELS))
    return np.ascontiguousarray(rows.T.astype(np.int32))


def shard_fit_series(
    rows: np.ndarray, kernel_start: int, kernel_stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`shard_fit_series_units` of the kernels ``[kernel_start, kernel_stop)`` (the
    units ``[kernel_start * D, kernel_stop * D)``)."""
    d = np.shape(rows)[1]
    return shard_fit_series_units(rows, kernel_start * d, kernel_stop * d)


def shard_fit_series_units(
    rows: np.ndarray, unit_start: int, unit_stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """What a shard of units ``[unit_start, unit_stop)`` needs to fit its biases.

    A unit is one (kernel, dilation) pair, ``u = kernel * D + dilation_index`` (see
    :func:`unit_ranges`); a kernel range ``[k0, k1)`` is the units ``[k0 * D, k1 * D)``.
    Returns ``(train_indices int64[k], local_rows int32[84, D])``: the training series to
    "flash" to the device (sorted, unique) and ``rows`` rewritten as indices into that list
    (rows of units outside the shard are set to 0 and never read).
    """
    flat = np.asarray(rows).reshape(-1)  # kernel-major: flat[u] is unit u's row
    sub = flat[unit_start:unit_stop]
    train_indices = np.unique(sub).astype(np.int64)
    local = np.zeros(flat.shape, dtype=np.int32)
    local[unit_start:unit_stop] = np.searchsorted(train_indices, sub).astype(np.int32)
    return train_indices, local.reshape(np.shape(rows))


def quantile_positions(features_per_dilation: np.ndarray) -> np.ndarray:
    """Quantile of every feature's bias, in kernel-major order (float32[F]).

    MiniRocket's low-discrepancy sequence ``frac(i * golden_ratio)``, ``i = 1, 2, ...``
    numbered in aeon's dilation-major feature order, so that fitted on the same series our
    biases are aeon's biases permuted.
    """
    total = n_features_total(features_per_dilation)
    phi = (np.sqrt(5.0) + 1.0) / 2.0
    seq = ((np.arange(1, total + 1, dtype=np.float64) * phi) % 1.0).astype(np.float32)
    biases: np.ndarray = seq[aeon_to_kernel_major(features_per_dilation)]
    return biases


def aeon_to_kernel_major(features_per_dilation: np.ndarray) -> np.ndarray:
    """Permutation ``perm`` with ``ours = aeon_features[..., perm]`` (int64[F]).

    aeon orders features ``(dilation, kernel, bias)``; we order ``(kernel, dilation, bias)``.
    """
    fpd = np.asarray(features_per_dilation, dtype=np.int64)
    dil_start = np.concatenate([[0], np.cumsum(fpd)[:-1]])  # per kernel, within a kernel
    perm = np.empty(n_features_total(fpd), dtype=np.int64)
    pos = 0
    for k in range(N_KERNELS):
        for j, n in enumerate(fpd):
            aeon_start = N_KERNELS * dil_start[j] + k * n
            perm[pos : pos + n] = np.arange(aeon_start, aeon_start + n)
            pos += n
    return perm


# ----------------------------------------------------------------------------- shards


def kernel_ranges(n_devices: int) -> list[tuple[int, int]]:
    """Contiguous kernel range ``[start, stop)`` of each device (remainder to the first).

    Only for ``n_devices <= 84``; past that the model is split below the kernel
    (:func:`unit_ranges`)."""
    if not isinstance(n_devices, (int, np.integer)) or n_devices < 1 or n_devices > N_KERNELS:
        raise ValueError(
            f"n_devices must be between 1 and {N_KERNELS} for a split by kernel, got "
            f"{n_devices!r}; more devices split (kernel, dilation) pairs: use unit_ranges"
        )
    return contiguous_split(N_KERNELS, int(n_devices))


def max_devices(n_dilations: int) -> int:
    """The finest split: one (kernel, dilation) pair per device, ``84 * D`` devices."""
    return N_KERNELS * int(n_dilations)


def check_n_devices(n_devices: int, n_dilations: int, series_length: int | None = None) -> None:
    """``ValueError`` naming the maximum when ``n_devices`` exceeds the finest split."""
    top = max_devices(n_dilations)
    if not isinstance(n_devices, (int, np.integer)) or not 1 <= n_devices <= top:
        length = f"series of length {series_length}, " if series_length is not None else ""
        raise ValueError(
            f"--nodes must be between 1 and {top} for this dataset and model ({length}"
            f"{n_dilations} dilations x {N_KERNELS} kernels = {top} (kernel, dilation) pairs, "
            f"one per device at least), got {n_devices!r}: use --nodes {top} or fewer"
        )


def unit_ranges(n_devices: int, n_dilations: int) -> list[tuple[int, int]]:
    """Each device's contiguous range ``[start, stop)`` of units, ``u = kernel * D + j``.

    A unit is one (kernel, dilation) pair in kernel-major order, so a unit range is a
    contiguous slice of the feature vector. Up to 84 devices the split is by kernel, as
    :func:`kernel_ranges` (device ``i`` gets units ``[k0 * D, k1 * D)``); past 84 the
    ``84 * D`` units are split contiguously (remainder to the first devices), at most
    :func:`max_devices` devices.
    """
    check_n_devices(n_devices, n_dilations)
    d = int(n_dilations)
    if n_devices <= N_KERNELS:
        return [(a * d, b * d) for a, b in kernel_ranges(int(n_devices))]
    return contiguous_split(max_devices(d), int(n_devices))


def unit_offsets(features_per_dilation: np.ndarray) -> np.ndarray:
    """Start of every unit in the feature vector, and its end (int64[84 * D + 1])."""
    fpd = np.asarray(features_per_dilation, dtype=np.int64)
    per_unit = np.tile(fpd, N_KERNELS)
    return np.concatenate([[0], np.cumsum(per_unit)]).astype(np.int64)


def kernels_of_units(unit_start: int, unit_stop: int, n_dilations: int) -> tuple[int, int]:
    """The kernels ``[start, stop)`` that units ``[unit_start, unit_stop)`` touch."""
    d = int(n_dilations)
    if unit_stop <= unit_start:
        return unit_start // d, unit_start // d
    return unit_start // d, -(-unit_stop // d)


def kernels_at_dilation(unit_start: int, unit_stop: int, n_dilations: int, j: int) -> range:
    """The kernels ``k`` with unit ``k * D + j`` in ``[unit_start, unit_stop)``."""
    d = int(n_dilations)
    lo = max(0, -(-(unit_start - j) // d))
    hi = max(lo, (unit_stop - 1 - j) // d + 1) if unit_stop > j else lo
    return range(lo, hi)


def feature_ranges(n_devices: int, features_per_dilation: np.ndarray) -> list[tuple[int, int]]:
    """Each device's ``[start, stop)`` in the full (kernel-major) feature vector."""
    offsets = unit_offsets(features_per_dilation)
    return [(int(offsets[a]), int(offsets[b]))
            for a, b in unit_ranges(n_devices, len(features_per_dilation))]


# ----------------------------------------------------------------------------- training


def effective_batch_size(n_train: int, cfg: ModelConfig) -> int:
    """The batch size used: ``min(cfg.batch_size, n_train)``."""
    return max(1, min(cfg.batch_size, n_train))


def steps_per_epoch(n_train: int, cfg: ModelConfig) -> int:
    """Optimizer steps of one epoch (the last, partial batch of an epoch steps too)."""
    return math.ceil(n_train / effective_batch_size(n_train, cfg))


def n_epochs(n_train: int, cfg: ModelConfig) -> int:
    """The run's epochs: ``cfg.epochs`` when set, else the default rule
    (:func:`protocol.config.training_length.rule_epochs`): the fewest epochs >= 15 after
    which the decoupled weight decay has shrunk the random init to 1 % (``weight_decay`` and
    this schedule's learning rates; 15 without decay)."""
    if cfg.head == "ridge":
        return 0  # no SGD epochs: Gram passes and one solve (protocol.stream.schedule)
    if cfg.epochs is not None:
        return cfg.epochs
    return rule_epochs(steps_per_epoch(n_train, cfg), lambda t, s: lr_at(t, s, cfg), cfg.weight_decay)


def total_steps(n_train: int, cfg: ModelConfig) -> int:
    """Optimizer steps of the run (the last, partial batch of an epoch steps too; the ridge
    head's one solve counts as its one step)."""
    if cfg.head == "ridge":
        return 1
    return n_epochs(n_train, cfg) * steps_per_epoch(n_train, cfg)


def schedule_config(
    cfg: ModelConfig, n_train: int, n_test: int, n_devices: int, eval_every: int = 0,
    n_classes: int | None = None,
) -> ScheduleConfig:
    """The sample stream that trains this model (calibration pass iff feature scaling).

    ``n_classes`` is needed by the ridge head only: its Gram blocks are C samples wide (a
    partial Gram row rides in a logit slot)."""
    if cfg.head == "ridge" and (n_classes is None or n_classes < 2):
        raise ValueError("head='ridge' lays its Gram passes out by the class count: pass n_classes >= 2")
    return ScheduleConfig(
        n_train=n_train,
        n_test=n_test,
        n_devices=n_devices,
        epochs=n_epochs(n_train, cfg),
        batch_size=effective_batch_size(n_train, cfg),
        seed=cfg.seed,
        eval_every=eval_every,
        calibrate=cfg.feature_scaling,
        selection=cfg.selection,
        n_candidates=len(cfg.select_weight_decays) if cfg.selection == "decay" else 1,
        val_fraction=cfg.val_fraction,
        gram_block=int(n_classes) if cfg.head == "ridge" and n_classes is not None else 0,
    )


def lr_at(step: int, n_steps: int, cfg: ModelConfig) -> float:
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
