"""A cycle model of the node's kernels on the nRF52840 (Cortex-M4F at 64 MHz).

The emulator's virtual clock does not use host time: a round's compute window is the
modeled MCU time of what the device does for one sample (:func:`compute_seconds_per_sample`)
and of an optimizer step (:func:`step_seconds`). The costs are per elementary operation of
our kernels, written as a Cortex-M4F would execute them (single-cycle integer ALU, 1-2
cycle loads/stores, single-precision FPU: VMLA 3, VDIV/VSQRT 14 cycles, ``expf`` ~100).
They are estimates, not measurements, and all live in :class:`CycleCosts`, which callers
may override.

Per sample, on device ``i`` with kernels ``K_i``:

* transform: per dilation, 9 shifted copies of the series (``shift_per_position`` per
  position); per (kernel, dilation) the kernel output over its positions
  (``conv_per_position``), then per bias a pass of compares over those positions
  (``ppv_per_compare``) and one division (``ppv_per_feature``);
* scaling: ``scale_per_feature`` per feature (if enabled);
* partial logits: ``mac_per_weight`` per weight;
* training samples, once the logits arrive: summing N partial logits
  (``logit_sum_per_value``), the softmax (``softmax_per_class``) and the gradient
  accumulation (``accumulate_per_weight``).

Per step: ``adam_per_param`` (float32) or ``adam8bit_per_param`` per parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.config.model import (ModelConfig, fit_dilations, kernels_at_dilation, unit_offsets,
                                   unit_ranges)

#: The nRF52840's CPU clock.
CPU_HZ = 64_000_000


@dataclass(frozen=True)
class CycleCosts:
    """Cycles per elementary operation (see the module docstring)."""

    shift_per_position: float = 20.0  # 9 loads/stores + 9 adds for alpha, per position
    conv_per_position: float = 6.0  # 3 loads + 3 adds + store
    ppv_per_compare: float = 3.0  # load, compare, conditional add
    ppv_per_feature: float = 20.0  # int -> float, VDIV, store
    scale_per_feature: float = 5.0  # 2 loads, VSUB, VMUL, store
    mac_per_weight: float = 4.0  # 2 loads + VMLA
    logit_sum_per_value: float = 3.0
    softmax_per_class: float = 120.0  # expf + VDIV
    accumulate_per_weight: float = 5.0  # 2 loads + VMLA + store
    adam_per_param: float = 45.0  # moments, VSQRT, VDIV, updates
    adam8bit_per_param: float = 90.0  # + dequantize, absmax, 8-step binary-search quantize
    sample_overhead: float = 2_000.0  # bookkeeping per sample (calls, loops)


DEFAULT_COSTS = CycleCosts()


def _shard_features(cfg: ModelConfig, n_devices: int, series_length: int, device: int) -> int:
    """F_i of ``device``: the features of its (kernel, dilation) units."""
    dilations, fpd = fit_dilations(series_length, cfg)
    u0, u1 = unit_ranges(n_devices, len(dilations))[device]
    offsets = unit_offsets(fpd)
    return int(offsets[u1] - offsets[u0])


def transform_cycles(
    cfg: ModelConfig, n_devices: int, series_length: int, device: int = 0, costs: CycleCosts = DEFAULT_COSTS
) -> float:
    """Cycles of the shard transform of one series on ``device``."""
    dilations, fpd = fit_dilations(series_length, cfg)
    n_dil = len(dilations)
    u0, u1 = unit_ranges(n_devices, n_dil)[device]
    length = series_length
    cycles = 0.0
    if u1 > u0:
        # one shifted copy per dilation the shard has (all D for whole kernels)
        cycles += min(n_dil, u1 - u0) * length * costs.shift_per_position
    for j, d in enumerate(dilations):
        # whole kernels: all of [k0, k1); past 84 devices only this shard's units at j
        for k in kernels_at_dilation(u0, u1, n_dil, j):
            n_pos = length if (j + k) % 2 == 0 else length - 8 * int(d)
            cycles += n_pos * costs.conv_per_position
            cycles += int(fpd[j]) * (n_pos * costs.ppv_per_compare + costs.ppv_per_feature)
    return cycles


def cycles_per_sample(
    cfg: ModelConfig,
    n_devices: int,
    series_length: int,
    n_classes: int,
    device: int = 0,
    training: bool = True,
    costs: CycleCosts = DEFAULT_COSTS,
) -> dict[str, float]:
    """Cycle breakdown of one sample on ``device`` (training adds the backward part)."""
    f_i = _shard_features(cfg, n_devices, series_length, device)
    out = {
        "transform": transform_cycles(cfg, n_devices, series_length, device, costs),
        "scaling": f_i * costs.scale_per_feature if cfg.feature_scaling else 0.0,
        "partial logits": n_classes * f_i * costs.mac_per_weight,
        "overhead": costs.sample_overhead,
    }
    if training:
        out["sum logits + softmax"] = n_devices * n_classes * costs.logit_sum_per_value + n_classes * costs.softmax_per_class
        out["gradient accumulation"] = n_classes * (f_i + (1 if device == 0 else 0)) * costs.accumulate_per_weight
    return out


def compute_seconds_per_sample(
    cfg: ModelConfig,
    n_devices: int,
    series_length: int,
    n_classes: int,
    device: int = 0,
    training: bool = True,
    costs: CycleCosts = DEFAULT_COSTS,
) -> float:
    """Modeled MCU seconds for one sample on ``device`` (at :data:`CPU_HZ`)."""
    return sum(cycles_per_sample(cfg, n_devices, series_length, n_classes, device, training, costs).values()) / CPU_HZ


def step_seconds(
    cfg: ModelConfig,
    n_devices: int,
    series_length: int,
    n_classes: int,
    device: int = 0,
    costs: CycleCosts = DEFAULT_COSTS,
) -> float:
    """Modeled MCU seconds of one optimizer step on ``device``."""
    n_params = n_classes * _shard_features(cfg, n_devices, series_length, device) + (
        n_classes if device == 0 else 0)
    per = costs.adam_per_param if cfg.optimizer == "adam" else costs.adam8bit_per_param
    return n_params * per / CPU_HZ
