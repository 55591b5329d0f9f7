"""The radio resolved while the devices compute (``Air.speculate``) gives the run it gives
when resolved after the TXs are in: bitwise, with loss, Gilbert–Elliott bursts and a device
that misses exchanges (its guess is dropped then, and the rounds resolved anew)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from coordinator.backends.inprocess import in_process_run
from coordinator.engine.accounting import Totals
from coordinator.engine.engine import EngineOptions
from coordinator.engine.medium import Air
from coordinator.service.run_setup import RunArgs, build_setup

#: Device 2 misses these exchanges (its TX comes too late): the air's guess that every
#: device answers is wrong there.
SILENT = {4: {2}, 5: {2}, 11: {2}}


def _run(speculate: bool, lockstep: bool) -> tuple[list[Any], Air]:
    setup = build_setup(RunArgs(dataset="GunPoint", nodes=4, epochs=2, num_features=1000,
                                batch_size=8, loss=0.3, seed=2))
    setup.loss.set_gilbert_elliott(0.2, 0.4)  # bursts: state carried from round to round
    run = in_process_run(setup, EngineOptions(down_after=10**9, speculate=speculate, lockstep=lockstep),
                         late=lambda exchange, device: device in SILENT.get(exchange, set()))
    engine = run.run()
    return [agent.device for agent in run.agents], engine.air  # type: ignore[attr-defined]


@pytest.mark.parametrize("lockstep", [False, True])
def test_speculation_changes_nothing_but_when_the_radio_runs(lockstep: bool) -> None:
    ahead_devices, ahead = _run(True, lockstep)
    after_devices, after = _run(False, lockstep)
    assert ahead.speculation_hits > 0  # most exchanges used the radio resolved ahead
    assert ahead.speculation_misses >= 1  # the silent device's exchanges did not
    assert after.speculation_hits == after.speculation_misses == 0
    for a, b in zip(ahead_devices, after_devices):
        assert a.head.W.tobytes() == b.head.W.tobytes()
    for key in Totals.PARTS:
        assert ahead.totals.parts[key].tobytes() == after.totals.parts[key].tobytes()
    assert np.array_equal(ahead.totals.lost_packets, after.totals.lost_packets)
    assert ahead.totals.lost_packets.sum() > 0  # the loss bit
    assert ahead.virtual_time_s == after.virtual_time_s
    assert ahead.loss.to_state() == after.loss.to_state()  # the same burst states at the end


def test_a_fault_injected_while_the_devices_compute_drops_the_guess() -> None:
    setup = build_setup(RunArgs(dataset="GunPoint", nodes=4, epochs=1, num_features=1000, batch_size=8))
    cfg = setup.config
    air = Air(setup.stream, setup.topology, setup.loss, setup.protocol, cfg.model.seed,
              cfg.series_length, cfg.n_classes)
    everyone = np.ones(cfg.n_devices, dtype=bool)
    air.speculate(10, everyone)
    setup.loss.node_down(int(air.device_nodes[1]))  # injected before the TXs are in
    outcomes = air.resolve_until(10, everyone)
    assert air.speculation_hits == 0 and air.speculation_misses == 1
    # The rounds were resolved with the fault: device 1's node neither sent nor heard.
    node = int(air.device_nodes[1])
    assert all(int(o.air.tx_slots[node]) == 0 and not o.air.decoded[node].any() for o in outcomes)
