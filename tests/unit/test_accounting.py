"""The air's accounting over many rounds at once is bitwise the accounting one round at a
time, and its per-round tallies are the run's totals as they stood after each round."""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.engine.accounting import Totals
from coordinator.engine.medium import Air
from coordinator.service.run_setup import RunArgs, build_setup

N_ROUNDS = 60


def _air(loss: float) -> Air:
    setup = build_setup(RunArgs(dataset="GunPoint", nodes=5, epochs=2, num_features=1000,
                                batch_size=8, loss=loss, seed=3))
    cfg = setup.config
    air = Air(setup.stream, setup.topology, setup.loss, setup.protocol, cfg.model.seed,
              cfg.series_length, cfg.n_classes)
    # Distinct modeled MCU times per device, so compute and idle energy differ by device.
    air.sample_s[:] = np.linspace(0.011, 0.019, air.n_devices)
    air.step_s[:] = np.linspace(0.003, 0.001, air.n_devices)
    return air


def _alive(round_no: int, n: int) -> np.ndarray:
    alive = np.ones(n, dtype=bool)
    if 20 <= round_no < 35:
        alive[3] = False  # a device down for a while: it is charged nothing then
    return alive


def _resolve(air: Air, stops: list[int]) -> list:
    outcomes = []
    start = 0
    for stop in stops:
        outcomes += air.resolve_until(stop, _alive(start, air.n_devices))
        start = stop
    return outcomes


def _state(air: Air) -> dict[str, np.ndarray]:
    t = air.totals
    out = {f"part_{k}": t.parts[k] for k in Totals.PARTS}
    out.update(radio_on_s=t.radio_on_s, compute=t.compute_s_modeled, tx=t.tx_slots,
               rx=t.rx_packets, lost=t.lost_packets, vt=np.array([air.virtual_time_s]))
    tr = air.traffic
    out.update(tr_rounds=tr.rounds, tr_slots=tr.slots, tr_latency=tr.latency_s, tr_packets=tr.packets,
               tr_payload=tr.payload_bytes, tr_on_air=tr.bytes_on_air, tr_energy=tr.energy_mj)
    return out


@pytest.mark.parametrize("loss", [0.0, 0.85])
def test_batched_accounting_is_bitwise_one_round_at_a_time(loss: float) -> None:
    # Batches that cut where the alive mask changes (it is one mask per batch).
    batched, single = _air(loss), _air(loss)
    _resolve(batched, [7, 20, 35, N_ROUNDS])
    _resolve(single, list(range(1, N_ROUNDS + 1)))
    a, b = _state(batched), _state(single)
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
        assert a[key].tobytes() == b[key].tobytes(), key  # bitwise, signed zeros included
    for r in range(N_ROUNDS):
        ta, tb = batched.tally(r), single.tally(r)
        assert ta is not None and tb is not None
        assert ta.virtual_time_s == tb.virtual_time_s
        assert np.array_equal(ta.energy_mj, tb.energy_mj) and np.array_equal(ta.rx_packets, tb.rx_packets)


def test_tallies_are_the_totals_after_each_round() -> None:
    air = _air(0.85)
    outcomes = _resolve(air, [7, 20, 35, N_ROUNDS])
    nodes = air.device_nodes
    tx, vt, lost = np.zeros(air.n_devices, dtype=np.int64), 0.0, np.zeros(air.n_devices, dtype=np.int64)
    for o in outcomes:
        live = o.alive_devices
        tx += np.where(live, o.air.tx_slots[nodes], 0)
        vt += o.latency_s
        tally = air.tally(o.round_no)
        assert tally is not None
        assert np.array_equal(tally.tx_slots, tx)
        assert tally.virtual_time_s == vt
        # Lost + received is every packet of another live source, for every live device.
        assert np.all(tally.received <= tally.expected)
        lost += np.where(live, tally.expected - tally.received, 0)
        assert np.array_equal(tally.lost_packets, lost)
    assert outcomes[-1].round_no == N_ROUNDS - 1
    last = air.tally(N_ROUNDS - 1)
    assert last is not None
    assert np.array_equal(last.energy_mj, air.totals.energy_mj)
    assert np.array_equal(last.tx_slots, air.totals.tx_slots)
    # The down device was charged nothing while down, the others were.
    down = [o for o in outcomes if not o.alive_devices[3]]
    assert down, "the scenario takes device 3 down"
    before, after = air.tally(down[0].round_no - 1), air.tally(down[-1].round_no)
    assert before is not None and after is not None
    assert after.energy_mj[3] == before.energy_mj[3]
    assert np.all(after.energy_mj[[0, 1, 2, 4]] > before.energy_mj[[0, 1, 2, 4]])
    assert air.totals.lost_packets.sum() > 0  # the loss is real: some packets never arrive
