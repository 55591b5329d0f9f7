"""The ridge head's RAM ledger, and the rule that picks the run's head (``--head auto``).

RAM (:func:`ridge_ledger`): the SGD ledger (:func:`protocol.config.ram_ledger.ledger`)
without what only SGD needs (gradient accumulators, Adam moments), plus what the ridge head
keeps (node/ml/ridge.py):

* the summed Gram matrix, lower triangle packed, float32: ``4 n (n + 1) / 2`` B;
* the Cholesky factor of one alpha, packed, float64: ``8 n (n + 1) / 2`` B (float64 because
  small alphas leave ``K + alpha I`` too ill-conditioned for float32; our choice);
* the Gram block, this device's features of ``B`` samples: ``4 B F_d`` B (``B`` =
  :func:`~protocol.config.model.gram_block_size`: 25, the floats of one packet), and the
  received slots ``4 N B`` instead of ``4 N C``;
* the dual coefficients ``A``, float32: ``4 n C`` B; one training label per sample, int16.

The scaler's calibration accumulators overlay the Cholesky factor (both never live at once).

The rule (:func:`resolve_head`): ``"auto"`` is the ridge head with aeon's dilations when
every device's ridge ledger fits the RAM budget and nothing SGD-specific was asked for,
else the SGD head; docs/ml-core.md "The ridge head".
"""

from __future__ import annotations

from dataclasses import replace

from protocol.config.model import ModelConfig, gram_block_size
from protocol.config.ram_ledger import FLOAT32_BYTES, Ledger, RamBudgetExceeded, ledger, over_budget

__all__ = ["HEAD_CHOICES", "check_ridge", "largest_ridge_ledger", "resolve_head", "ridge_ledger", "ridge_model"]

#: ``--head``: ``auto`` (the run's default: :func:`resolve_head`), ``sgd`` or ``ridge``.
HEAD_CHOICES = ("auto", "sgd", "ridge")
FLOAT64_BYTES = 8
INT16_BYTES = 2

#: SGD-only buffers the ridge head does not have.
_SGD_ONLY = ("gradient accumulators", "Adam m, v (float32)", "Adam m, v (uint8)", "Adam block scales",
             "scaler calibration (beyond overlay)")


def _triangle(n: int) -> int:
    return n * (n + 1) // 2


def ridge_ledger(cfg: ModelConfig, n_devices: int, series_length: int, n_classes: int, n_train: int,
                 device: int = 0, block_size: int | None = None) -> Ledger:
    """The RAM ledger of ``device`` with the ridge head (module docstring); ``block_size``:
    the Gram block (default :func:`~protocol.config.model.gram_block_size`, the run's)."""
    block = gram_block_size(n_classes, cfg.gram_block) if block_size is None else int(block_size)
    base = ledger(cfg, n_devices, series_length, n_classes, device=device)
    e = {k: v for k, v in base.entries.items() if k not in _SGD_ONLY}
    e["received partial logits"] = n_devices * block * FLOAT32_BYTES  # a slot is B wide
    e["Gram matrix (float32 triangle)"] = _triangle(n_train) * FLOAT32_BYTES
    factor = _triangle(n_train) * FLOAT64_BYTES
    e["Cholesky factor (float64 triangle)"] = factor
    if cfg.feature_scaling:  # float64 mean and M2 per feature, overlaid on the factor
        e["scaler calibration (beyond overlay)"] = max(0, 16 * base.n_features - factor)
    e["Gram block features"] = block * base.n_features * FLOAT32_BYTES
    e["dual coefficients A"] = n_train * n_classes * FLOAT32_BYTES
    e["training labels"] = n_train * INT16_BYTES
    return Ledger(device=base.device, n_devices=base.n_devices, n_kernels=base.n_kernels,
                  n_features=base.n_features, entries=e, total_bytes=sum(e.values()))


def largest_ridge_ledger(cfg: ModelConfig, n_devices: int, series_length: int, n_classes: int,
                         n_train: int) -> Ledger:
    """The ridge ledger of the device that needs the most: device 0 (the most kernels, and
    b) or device 1 (the most without b)."""
    ledgers = [ridge_ledger(cfg, n_devices, series_length, n_classes, n_train, device=d)
               for d in range(min(n_devices, 2))]
    return max(ledgers, key=lambda led: led.total_bytes)


def check_ridge(led: Ledger, n_train: int, budget_bytes: int) -> None:
    """Raise :class:`~protocol.config.ram_ledger.RamBudgetExceeded` if the ridge head's ``led`` does not
    fit, naming its largest buffers and the fix (the Gram matrix and its factor grow with
    n_train^2, the Gram block with the device's features: more devices shrink the block)."""
    overrun = over_budget(led, budget_bytes)
    if overrun is None:
        return
    over, biggest = overrun
    raise RamBudgetExceeded(
        f"device {led.device} of {led.n_devices} needs {led.total_bytes:,d} B of RAM with the ridge head "
        f"({n_train} training samples), {over:,d} B ({over / 1024:.1f} KiB) over the budget of "
        f"{budget_bytes:,d} B (largest: {biggest}). To fit: use --head sgd (or --head auto, which "
        "picks it), or more devices (a smaller Gram block), or a smaller training split."
    )


def ridge_model(cfg: ModelConfig) -> ModelConfig:
    """The ridge head's model: ``cfg`` with ``head="ridge"`` and aeon's dilations (the
    features ridge scores best on: docs/ml-core.md, "Where the gap is")."""
    return replace(cfg, head="ridge", dilation_style="aeon")


def resolve_head(requested: str, cfg: ModelConfig, *, sgd_asked: bool, n_devices: int, series_length: int,
                 n_classes: int, n_train: int, budget_bytes: int) -> ModelConfig:
    """The run's model for ``--head requested`` (one of :data:`HEAD_CHOICES`).

    ``"sgd"``: ``cfg``; ``"ridge"``: :func:`ridge_model`; ``"auto"``: the ridge model when
    ``sgd_asked`` is False (no epochs, batch size, optimizer, recipe, validation rule,
    firmware profile or non-rocknet mode was given: each only means something to SGD) and
    every device's :func:`ridge_ledger` fits ``budget_bytes``, with the default Gram block
    or else with blocks of C samples (``gram_block=C``); else ``cfg``."""
    if requested not in HEAD_CHOICES:
        raise ValueError(f"head must be one of {HEAD_CHOICES}, got {requested!r}")
    if requested == "sgd" or (requested == "auto" and sgd_asked):
        return cfg
    ridge = ridge_model(cfg)  # raises (ModelConfig) where cfg asks for what ridge has not
    if requested == "ridge":
        return ridge

    def fits(model: ModelConfig) -> bool:
        return largest_ridge_ledger(model, n_devices, series_length, n_classes, n_train).total_bytes <= budget_bytes

    # the packet-filling block if it fits, else blocks of C (the Gram block is C feature
    # vectors, not 25: more rounds, the same solution), else the SGD head
    for model in (ridge, replace(ridge, gram_block=max(n_classes, 1))):
        if fits(model):
            return model
    return cfg
