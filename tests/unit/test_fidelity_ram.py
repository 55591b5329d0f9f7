"""The firmware profile's RAM ledger against the official code's RAM table (issue 15)."""

from __future__ import annotations

import pytest

from node.mcu.firmware_memory import firmware_ledger
from protocol.config.model import ModelConfig

# GenerateCodeDistributedRocket.py (RockNet HEAD b5d2abc) ``offsets``: kB (1000 B) per device,
# 8-bit Adam, the firmware's RAM totals.
OSULEAF = {5: 144.3, 7: 106.6, 9: 91.7, 11: 76.7, 13: 69.4, 15: 62.1, 17: 54.7, 19: 55.0, 20: 55.1}
ELECTRIC = {5: 167.3, 7: 123.3, 9: 105.8, 11: 88.3, 13: 79.7, 15: 71.1, 17: 62.5, 19: 62.7, 20: 62.9}


@pytest.mark.parametrize(("shape", "table"), [((427, 6, 200, 242), OSULEAF), ((96, 7, 2200, 200), ELECTRIC)],
                         ids=["OSULeaf", "ElectricDevices"])
def test_firmware_ram_within_6_percent_of_the_official_table(shape: tuple[int, int, int, int],
                                                             table: dict[int, float]) -> None:
    length, n_classes, n_train, n_eval = shape
    for n, kb in table.items():
        led = firmware_ledger(ModelConfig(), n, length, n_classes, n_train, n_eval)
        assert abs(led.total_bytes / 1000 - kb) / kb <= 0.06, (n, led.total_bytes, kb)


def test_firmware_ram_hand_count_of_the_model_buffers() -> None:
    # OSULeaf, N = 20: device 0 holds 5 kernels x 6 dilations x 19 biases = 570 features.
    led = firmware_ledger(ModelConfig(), 20, 427, 6, 200, 242)
    assert led.n_features == 570
    e = led.entries
    assert e["weights W"] == e["gradient d_weight"] == 6 * 570 * 4
    assert e["Adam m, v (uint8)"] == 2 * 6 * 570
    assert e["convolution buffers (4 L float)"] == 16 * 427
    assert e["series pointer tables"] == 4 * 442


def test_firmware_ram_refuses_bad_counts() -> None:
    with pytest.raises(ValueError, match="n_train"):
        firmware_ledger(ModelConfig(), 5, 427, 6, -1, 0)
