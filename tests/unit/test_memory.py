"""RAM ledger (MCU bytes) and the cycle model."""

from __future__ import annotations

import pytest

from node.mcu.cycles import CycleCosts, compute_seconds_per_sample, step_seconds, transform_cycles
from protocol.config.ram_ledger import RamBudgetExceeded, check, ledger, per_device_table
from protocol.config.model import ModelConfig


def test_ledger_pinned_against_a_hand_calculation():
    # L = 17: dilations 1, 2 (8 * 2 < 17); 840 features -> 5 biases per (kernel, dilation),
    # 10 per kernel. N = 4 -> device 0 has kernels 0..20: F_0 = 210. C = 3, 8-bit Adam.
    cfg = ModelConfig(num_features=840, optimizer="adam8bit")
    led = ledger(cfg, n_devices=4, series_length=17, n_classes=3, device=0)
    hand = {
        "weights W": 3 * 210 * 4,  # 2520
        "bias b": 3 * 4,  # device 0 owns b
        "gradient accumulators": (630 + 3) * 4,  # 2532
        "Adam m, v (uint8)": 2 * 633,
        "Adam block scales": 2 * (3 + 1) * 4,  # ceil(630/256) + ceil(3/256) blocks, m and v
        "kernel biases": 210 * 4,
        "kernel tables": 21 * 3 + 2 * 2 * 4,  # 3 index bytes per kernel, 2 int32 per dilation
        "feature buffer": 210 * 4,
        "convolution buffers": 11 * 17 * 4,
        "int8 series buffer": 17,
        "received partial logits": 4 * 3 * 4,
        "scaler mean, 1/std": 2 * 210 * 4,
        "scaler calibration (beyond overlay)": 16 * 210 - 2532,  # 828
        "radio packet buffers": (6 + 1) * (4 + 2 * 1 + 100),  # G = 1 + 1 + 4 packets
    }
    assert led.entries == hand
    assert led.total_bytes == 12_184 == sum(hand.values())
    assert (led.n_kernels, led.n_features) == (21, 210)

    other = ledger(cfg, n_devices=4, series_length=17, n_classes=3, device=3)
    assert other.entries["bias b"] == 0
    assert other.entries["gradient accumulators"] == 630 * 4
    assert other.total_bytes < led.total_bytes


@pytest.mark.parametrize("optimizer", ["adam", "adam8bit"])
def test_twenty_devices_need_at_least_80_percent_less_than_one(optimizer):
    cfg = ModelConfig(optimizer=optimizer)
    one = ledger(cfg, 1, series_length=427, n_classes=6).total_bytes  # OSULeaf's shape
    twenty = ledger(cfg, 20, series_length=427, n_classes=6).total_bytes
    assert twenty <= 0.2 * one, (one, twenty)
    rows = per_device_table(427, 6, cfg, range(1, 21))
    for a, b in zip(rows, rows[1:]):
        if b["n_kernels"] < a["n_kernels"]:
            assert b["total_bytes"] < a["total_bytes"]
        else:  # same kernels on device 0: only logits and radio buffers grow with N
            assert 0 <= b["total_bytes"] - a["total_bytes"] < 1024
    assert not rows[0]["fits"] and rows[-1]["fits"]


def test_float32_adam_costs_more_than_8bit():
    a = ledger(ModelConfig(optimizer="adam"), 5, 427, 6).total_bytes
    b = ledger(ModelConfig(optimizer="adam8bit"), 5, 427, 6).total_bytes
    assert a > b


def test_over_budget_error_says_by_how_much_and_what_fits():
    cfg = ModelConfig(optimizer="adam8bit")
    led = ledger(cfg, 1, 427, 6)
    check(ledger(cfg, 20, 427, 6))  # fits: no error
    with pytest.raises(RamBudgetExceeded) as info:
        check(led, cfg=cfg, series_length=427, n_classes=6)
    msg = str(info.value)
    over = led.total_bytes - 256 * 1024
    assert f"{over:,d} B" in msg and "over the budget" in msg
    n_needed = int(msg.split("use at least ")[1].split(" devices")[0])
    assert ledger(cfg, n_needed, 427, 6).total_bytes <= 256 * 1024 < ledger(cfg, n_needed - 1, 427, 6).total_bytes
    max_feat = int(msg.split("num_features <= ")[1].split(";")[0].rstrip("."))
    from dataclasses import replace

    assert ledger(replace(cfg, num_features=max_feat), 1, 427, 6).total_bytes <= 256 * 1024
    assert ledger(replace(cfg, num_features=max_feat + 1), 1, 427, 6).total_bytes > 256 * 1024
    assert isinstance(info.value, ValueError)
    with pytest.raises(RamBudgetExceeded, match="more devices"):
        check(led)


def test_cycle_model_scales_with_the_shard():
    cfg = ModelConfig()
    one = compute_seconds_per_sample(cfg, 1, 427, 6)
    twenty = compute_seconds_per_sample(cfg, 20, 427, 6)
    assert 0.01 < one < 10 and twenty < 0.15 * one
    total = sum(transform_cycles(cfg, 5, 427, d) for d in range(5))
    shifts = 6 * 427 * CycleCosts().shift_per_position  # 6 dilations: each device shifts too
    assert total == pytest.approx(transform_cycles(cfg, 1, 427) + 4 * shifts)
    assert step_seconds(ModelConfig(optimizer="adam8bit"), 1, 427, 6) > step_seconds(cfg, 1, 427, 6)
    assert step_seconds(cfg, 20, 427, 6) < step_seconds(cfg, 1, 427, 6) / 10
    slow = CycleCosts(ppv_per_compare=6.0)
    assert transform_cycles(cfg, 1, 427, costs=slow) > transform_cycles(cfg, 1, 427)
    inference = compute_seconds_per_sample(cfg, 1, 427, 6, training=False)
    assert inference < one
