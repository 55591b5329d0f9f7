"""Energy of known slot patterns against the hand calculation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from protocol.air.energy import EnergyConstants, node_energy_mj, radio_energy_mj
from protocol.air.radio import resolve
from protocol.air.topology import Topology


def test_known_slot_pattern_equals_hand_calculation() -> None:
    slot, air = 681e-6, 484e-6
    # 2 TX slots, 3 RX slots of which 1 received, 5 off slots; 10 ms CPU, 20 ms idle
    e = node_energy_mj(2, 3, 5, slot, air, cpu_s=0.010, idle_s=0.020, rx_ok_slots=1)
    v, ramp = 3.0, 3.0 * 13.0 * 70e-6  # ramp-up energy in mJ
    tx = 2 * (ramp + v * 13.63 * air)
    rx = 1 * (ramp + v * 6.4 * air) + 2 * (ramp + v * 6.0 * 140e-6)
    lp = v * 0.205 * (2 * (slot - 70e-6 - air) + 1 * (slot - 70e-6 - air)
                      + 2 * (slot - 70e-6 - 140e-6) + 5 * slot + 0.020)
    cpu = v * 3.71 * 0.010
    assert e.tx_mj == pytest.approx(tx, rel=1e-12)
    assert e.rx_mj == pytest.approx(rx, rel=1e-12)
    assert e.low_power_mj == pytest.approx(lp, rel=1e-12)
    assert e.cpu_mj == pytest.approx(cpu, rel=1e-12)
    assert e.total_mj == pytest.approx(tx + rx + lp + cpu, rel=1e-12)
    d = e.as_dict()
    assert d["total_mj"] == pytest.approx(tx + rx + lp + cpu)


def test_rx_ok_default_counts_every_listening_slot_as_a_reception() -> None:
    a = radio_energy_mj(0, 4, 0, 681e-6, 484e-6)
    b = radio_energy_mj(0, 4, 0, 681e-6, 484e-6, rx_ok_slots=4)
    assert a.rx_mj == b.rx_mj and a.rx_mj > radio_energy_mj(0, 4, 0, 681e-6, 484e-6, rx_ok_slots=0).rx_mj


def test_constants_are_overridable_and_checked() -> None:
    c = dataclasses.replace(EnergyConstants(), tx_ma=20.0)
    assert radio_energy_mj(1, 0, 0, 1e-3, 5e-4, c).tx_mj > radio_energy_mj(1, 0, 0, 1e-3, 5e-4).tx_mj
    with pytest.raises(ValueError, match="tx_ma"):
        EnergyConstants(tx_ma=-1.0)
    with pytest.raises(ValueError, match="shorter"):
        radio_energy_mj(1, 0, 0, 100e-6, 484e-6)
    with pytest.raises(ValueError, match="rx_ok_slots"):
        radio_energy_mj(0, 1, 0, 681e-6, 484e-6, rx_ok_slots=2)


def test_per_node_arrays_and_air_result_energy() -> None:
    t = Topology.full_mesh(5)
    res = resolve("mixer", t, np.arange(5, dtype=np.int16), 0, seed=1)
    e = res.energy_mj()
    assert e.total_mj.shape == (5,)
    manual = radio_energy_mj(res.tx_slots, res.rx_slots, res.off_slots, res.slot_s, res.air_s,
                             rx_ok_slots=res.rx_ok_slots)
    np.testing.assert_allclose(e.total_mj, manual.total_mj)
    # all-off for the whole round costs exactly low power x round length
    off = radio_energy_mj(0, 0, res.n_slots, res.slot_s, res.air_s)
    assert off.total_mj == pytest.approx(3.0 * 0.205 * res.n_slots * res.slot_s)
    assert np.all(e.total_mj > off.total_mj)


def test_listened_through_slots_cost_rx_current_for_the_whole_slot() -> None:
    slot, air = 689e-6, 492e-6
    e = radio_energy_mj(0, 10, 0, slot, air, rx_ok_slots=2, rx_listen_slots=5)
    v, ramp = 3.0, 3.0 * 13.0 * 70e-6
    hand = 2 * (ramp + v * 6.4 * air) + 3 * (ramp + v * 6.0 * 140e-6) + 5 * v * 6.4 * slot
    assert abs(float(e.rx_mj) - hand) < 1e-15
    lp = v * 0.205 * (2 * (slot - 70e-6 - air) + 3 * (slot - 70e-6 - 140e-6))
    assert abs(float(e.low_power_mj) - lp) < 1e-15
    with pytest.raises(ValueError, match="rx_listen_slots"):
        radio_energy_mj(0, 4, 0, slot, air, rx_ok_slots=2, rx_listen_slots=3)


def test_rx_energy_of_a_node_that_hears_nobody_is_slots_times_slot_times_rx_current() -> None:
    topo = Topology.line(3, prr=1.0)
    alive = np.array([False, True, True])  # the initiator is dead: nobody ever synchronizes
    r = resolve("mixer-coordinated", topo, np.array([0, 1, 2], dtype=np.int16), 0, alive=alive)
    e = r.energy_mj()
    exact = r.n_slots * r.slot_s * 6.4 * 3.0  # listening slots x slot length x RX current x V
    assert r.rx_listen_slots[1] == r.n_slots == 150
    assert np.allclose(e.rx_mj[1:], exact, rtol=1e-12, atol=0.0)
    assert np.all(e.tx_mj == 0.0) and np.all(e.low_power_mj[1:] == 0.0)
