"""The firmware cycle model against a hand count of one small shape (issue 15).

Per-operation costs are recounted here from the instruction lists in
node/mcu/firmware_cycles.py with the Cortex-M4 TRM's cycles (ALU 1, taken branch 2,
not-taken 1, VLDR 2, VSTR 1, VADD/VMUL 1, VMLA 3, VCMP 1, VMRS 1), not read from the class.
"""

from __future__ import annotations

import pytest

from node.mcu import firmware_cycles as fc
from protocol.config.model import ModelConfig

LOOP = 1 + 1 + 2  # ADD, CMP, taken B
TAP_LOOP = 1 + 1 + 1 + 2  # ADDS, UXTB, CMP, taken B
ADD_TAP = 2 + 2 + 2 + 1 + 1  # index MLA+SUB, bounds CMP+B, VLDR, VADD, VSTR


def test_per_operation_costs_recount() -> None:
    c = fc.FIRMWARE_COSTS
    assert c.mult_per_position == 2 + 1 + 2 + 1 + LOOP
    assert c.conv1_per_tap == TAP_LOOP + ADD_TAP  # every tap adds (conv_1 has no bit test)
    bit_test = 2 + (6 * 2 + 3 * 1) / 9  # LSL+TST, BEQ taken for the 6 clear bits
    assert c.conv3_per_position == pytest.approx(9 * (TAP_LOOP + bit_test) + 3 * ADD_TAP + 5)
    assert c.add_per_position == 2 + 2 + 1 + 1 + LOOP
    assert c.ppv_per_compare == pytest.approx(2 + 2 + 2 + 1.5 + 0.5 * (2 + 1 + 1) + LOOP)
    assert c.mac_per_weight == 2 + 2 + 1 + 3 + 1 + LOOP + 4


def test_small_shape_hand_count() -> None:
    # L = 9, one dilation, one bias per kernel (84 features), N = 84: one kernel a device, C = 2.
    cfg = ModelConfig(num_features=84)
    parts = fc.cycles_per_sample(cfg, 84, 9, 2, device=0)
    mult = 2 * 9 * 10
    conv1 = 9 * (9 * 13 + 5)
    conv3 = 9 * (107 + 10)
    ppv = 1 * 9 * 13.5
    assert parts["transform"] == pytest.approx(mult + conv1 + conv3 + ppv)  # 2452.5
    assert parts["partial logits"] == 2 * 1 * 17
    assert parts["sum logits + softmax"] == 84 * 2 * 4 + 2 * 120
    assert parts["gradient accumulation"] == 2 * (1 + 1) * 21
    assert fc.step_cycles(cfg, 84, 9, 2) == (2 * 1 + 2) * 689


def test_osuleaf_magnitudes_of_the_issue() -> None:
    # issue 15: ~66 ms a sample + ~37 ms a step at N = 20, ~1 s a sample at N = 1 (op counts).
    cfg = ModelConfig()
    s20 = sum(fc.cycles_per_sample(cfg, 20, 427, 6).values()) / 64e6
    s1 = sum(fc.cycles_per_sample(cfg, 1, 427, 6).values()) / 64e6
    assert 0.05 < s20 < 0.10 and 0.8 < s1 < 1.6
    assert 0.025 < fc.step_cycles(cfg, 20, 427, 6) / 64e6 < 0.05
