"""Cycle model of the official RockNet firmware's kernels (``--profile firmware``).

An op count of the firmware's C kernels (github.com/Data-Science-in-Mechanical-Engineering/
RockNet, HEAD b5d2abc: ``c_src/cp_firmware/app/conv.c`` ``conv_multiple``/``conv_1``/
``conv3``/``add_timeseries``, ``linear_classifier.c`` ``classify_part``/
``calculate_and_accumulate_gradient``/``qadam_step``, ``dynamic_tree_quantization.c``) as
gcc -O1 would issue them for a Cortex-M4F with a single-precision FPU, each instruction
priced from the *Cortex-M4 Technical Reference Manual* (ARM DDI 0439B, table 3-1
"Cortex-M4 instruction set summary", and table 7-1 for the FPU):

* integer ALU / MUL / MLA: 1 cycle; LDR/LDRB: 2 (1 + 1, not pipelined with a dependent use);
  STR: 1; a taken branch 1 + P with P = 1 (the lowest refill the TRM allows: our own
  choice, no flash wait states assumed, as with the nRF52840's instruction cache hitting);
  a not-taken branch 1;
* VLDR 2, VSTR 1, VADD/VSUB/VMUL.F32 1, VMLA.F32 3, VCMP 1, VMRS 1, VCVT 1, VSQRT/VDIV 14.
* Software double arithmetic (``EPSILON`` is the double literal ``1e-8`` in
  ``linear_classifier.c``, so ``m / (sqrtf(v) + EPSILON)`` and the update of ``params`` go
  through libgcc's soft-float ``__aeabi_f2d``, ``__aeabi_dadd``, ``__aeabi_ddiv``,
  ``__aeabi_dsub``, ``__aeabi_d2f``): not in the TRM; ``double_ops_per_param`` is our own
  estimate of those calls (~20 + 60 + 20 + 220 + 20 + 60 + 30 cycles), labelled as such.

The count, per operation (the firmware computes every kernel over all L positions with
zero padding, a bounds test per tap):

* ``mult``: ``mult_1`` and ``mult3`` per position: LDRSB 2, MUL 1, VMOV+VCVT 2, VSTR 1,
  loop ADD/CMP/B 4 = 10.
* ``conv_1`` per position and tap (all 9 taps): loop ADDS+UXTB+CMP+B 5, index MLA+SUB 2,
  bounds CMP+B 2, VLDR 2, VADD 1, VSTR 1 (``out`` may alias ``in``: stored every tap) = 13;
  + 5 per position (store of 0, loop).
* ``conv3`` per position: 9 taps x (loop 5 + bit test LSL+TST 2 + branch 1.67 average,
  taken for the 6 clear bits) + 3 set taps x (index 2 + bounds 2 + VLDR 2 + VADD 1 +
  VSTR 1 = 8) + 5 per position = 9 x 8.67 + 24 + 5 = 107.
* ``add_timeseries`` per position: VLDR 2 + VLDR 2 + VADD 1 + VSTR 1 + loop 4 = 10.
* PPV per bias and position: VLDR conv 2, VLDR bias 2 (reloaded: ``features`` is stored
  through a float pointer that may alias it), VCMP+VMRS 2, branch 1.5, the increment
  ``features[idx]++`` VLDR+VADD+VSTR 4 taken half the time (a quantile bias) = 2, loop 4
  = 13.5.
* partial logits per weight: VLDR 2 + VLDR 2 + index 1 + VMLA 3 + VSTR 1 + loop 4 + the
  loop bound ``devices_num_features[rocket_node_idx]`` reloaded (-O1 has no strict
  aliasing) LDRB+LDR 4 = 17.
* gradient accumulation per weight: VLDR softmax 2, CMP+B 2, VLDR feature 2, VMUL 1,
  index 2, VLDR+VADD+VSTR 4, loop 4 + bound reload 4 = 21.
* 8-bit Adam per parameter: rescale ``d`` 8; dequantize m and v (LDRB + LDR table + VSTR +
  loop) 2 x 9; rescale m, v before and after 4 x 8; moments 2 VLDR + 2 VMUL + VADD + VSTR
  (m) and + 1 VMUL (v) 15; VSQRT 14; the double arithmetic above 430; absmax per buffer 2
  x 10; quantize m and v: an 8-step binary search (VLDR 2 + VCMP+VMRS 2 + B 2 + index 2 =
  8 a step) + final compare 10 + store 2, 2 x 76 = total 689.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.config.model import (ModelConfig, fit_dilations, kernels_at_dilation, unit_offsets,
                                   unit_ranges)


@dataclass(frozen=True)
class FirmwareCycleCosts:
    """Cycles per elementary operation of the firmware's kernels (see the module docstring)."""

    mult_per_position: float = 10.0
    conv1_per_tap: float = 13.0
    conv_per_position_overhead: float = 5.0
    conv3_per_position: float = 107.0
    add_per_position: float = 10.0
    ppv_per_compare: float = 13.5
    mac_per_weight: float = 17.0
    accumulate_per_weight: float = 21.0
    softmax_per_class: float = 120.0  # expf (~100, newlib single precision) + VDIV 14 + loads
    adam8bit_per_param: float = 689.0
    double_ops_per_param: float = 430.0  # included in adam8bit_per_param; our own estimate


FIRMWARE_COSTS = FirmwareCycleCosts()


def _shard_features(cfg: ModelConfig, n_devices: int, series_length: int, device: int) -> int:
    """F_i of ``device``: the features of its (kernel, dilation) units."""
    dilations, fpd = fit_dilations(series_length, cfg)
    u0, u1 = unit_ranges(n_devices, len(dilations))[device]
    offsets = unit_offsets(fpd)
    return int(offsets[u1] - offsets[u0])


def transform_cycles(cfg: ModelConfig, n_devices: int, series_length: int, device: int = 0,
                     costs: FirmwareCycleCosts = FIRMWARE_COSTS) -> float:
    """Cycles of ``conv_multiple`` for one series on ``device`` (all L positions, every kernel)."""
    dilations, fpd = fit_dilations(series_length, cfg)
    n_dil = len(dilations)
    u0, u1 = unit_ranges(n_devices, n_dil)[device]
    length = series_length
    cycles = 2 * length * costs.mult_per_position
    for j in range(n_dil):
        # kernels of this shard at dilation j: u0 <= k * D + j < u1 (all n_k for whole kernels)
        n_k = len(kernels_at_dilation(u0, u1, n_dil, j))
        if n_k == 0:
            continue  # past 84 devices a shard may lack a dilation: no shifted copies for it
        cycles += length * (9 * costs.conv1_per_tap + costs.conv_per_position_overhead)
        per_kernel = length * (costs.conv3_per_position + costs.add_per_position)
        per_kernel += int(fpd[j]) * length * costs.ppv_per_compare
        cycles += n_k * per_kernel
    return cycles


def cycles_per_sample(cfg: ModelConfig, n_devices: int, series_length: int, n_classes: int,
                      device: int = 0, training: bool = True,
                      costs: FirmwareCycleCosts = FIRMWARE_COSTS) -> dict[str, float]:
    """The firmware's cycles for one sample on ``device``, by phase (same keys as
    :func:`node.mcu.cycles.cycles_per_sample`; the firmware has no feature scaling)."""
    f_i = _shard_features(cfg, n_devices, series_length, device)
    out = {
        "transform": transform_cycles(cfg, n_devices, series_length, device, costs),
        "scaling": 0.0,
        "partial logits": n_classes * f_i * costs.mac_per_weight,
        "overhead": 0.0,
    }
    if training:
        out["sum logits + softmax"] = n_devices * n_classes * 4.0 + n_classes * costs.softmax_per_class
        out["gradient accumulation"] = n_classes * (f_i + 1) * costs.accumulate_per_weight
    return out


def step_cycles(cfg: ModelConfig, n_devices: int, series_length: int, n_classes: int,
                device: int = 0, costs: FirmwareCycleCosts = FIRMWARE_COSTS) -> float:
    """Cycles of ``update_weights`` (8-bit Adam over W_i and b: every device holds a bias)."""
    n_params = n_classes * _shard_features(cfg, n_devices, series_length, device) + n_classes
    return n_params * costs.adam8bit_per_param
