"""BLE air time, Mixer slot and round length."""

from __future__ import annotations

import pytest

from protocol.air.timing import (air_time_s, glossy_flood_slots, mixer_slots, phy_payload_bytes,
                             round_s, slot_s)


def test_paper_slot_for_g_23() -> None:
    assert phy_payload_bytes(23) == 4 + 2 * 3 + 100
    assert air_time_s(110) == pytest.approx(484e-6)
    assert slot_s(23) == pytest.approx(681e-6)


def test_phy_modes_and_sizes() -> None:
    assert air_time_s(110, "1M") == pytest.approx((10 + 110) * 8e-6)
    assert phy_payload_bytes(8) == 4 + 2 + 100 and phy_payload_bytes(9) == 4 + 4 + 100
    assert slot_s(64) > slot_s(23)
    with pytest.raises(ValueError, match="PHY"):
        air_time_s(10, "coded")
    with pytest.raises(ValueError, match="G = 0"):
        phy_payload_bytes(0)


def test_slots_and_round_length() -> None:
    assert mixer_slots(23) == 150 and mixer_slots(50) == 150 and mixer_slots(51) == 153
    assert glossy_flood_slots(3, 3) == 9
    assert round_s(0.1, 150, 681e-6) == pytest.approx(0.1 + 150 * 681e-6)
    with pytest.raises(ValueError):
        round_s(-1.0, 150, 681e-6)
