"""The coordinator's checkpoint + replay log: a restart rebuilds the air bitwise, a torn
record is dropped, a log of another checkpoint is ignored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coordinator.backends.inprocess import in_process_run
from coordinator.engine.engine import EngineOptions, RunEngine
from coordinator.engine.state import ExchangeDone
from coordinator.service.replay_log import Checkpointer, read_records
from coordinator.service.run_checkpoint import FILENAME
from coordinator.service.run_setup import RunArgs, build_setup
from protocol.wire.frames import encode

pytestmark = pytest.mark.usefixtures("warm_numba")

ARGS = RunArgs(dataset="GunPoint", nodes=3, epochs=2, num_features=1000, loss=0.2)


def air_state(engine: RunEngine) -> dict[str, Any]:
    air, t = engine.air, engine.air.totals
    state: dict[str, Any] = {f"parts/{k}": v.copy() for k, v in t.parts.items()}
    for key in ("radio_on_s", "compute_s_modeled", "tx_slots", "rx_packets", "lost_packets"):
        state[key] = np.array(getattr(t, key))
    state.update(virtual=air.virtual_time_s, next_round=air.next_round,
                 cached=[o.round_no for o in air.cached()], loss=engine.setup.loss.to_state())
    return state


def run_recorded(out: Path, interval_s: float, stop_after: int | None = None
                 ) -> tuple[RunEngine, list[dict[str, Any]]]:
    """An in-process run whose exchanges go through a Checkpointer; returns the engine and its
    air state after every exchange."""
    run = in_process_run(build_setup(ARGS), EngineOptions(down_after=10**9))
    engine = run.engine
    checkpointer = Checkpointer(out / FILENAME, engine, interval_s)
    states: list[dict[str, Any]] = []

    def hook(done: ExchangeDone) -> None:
        checkpointer.save(done, {d: encode(rx) for d, rx in done.rxs.items()}, 0, [])
        states.append(air_state(engine))
        if stop_after is not None and done.next_plan == stop_after:
            engine.request_stop("test")

    engine.on_exchange = hook
    engine.run()
    checkpointer.close()
    return engine, states


def restored(out: Path) -> tuple[RunEngine, int]:
    engine = in_process_run(build_setup(ARGS), EngineOptions()).engine
    return engine, Checkpointer(out / FILENAME, engine).load().next_plan


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert np.array_equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


def test_checkpoint_plus_log_rebuilds_the_air_bitwise(tmp_path: Path) -> None:
    _, states = run_recorded(tmp_path, interval_s=1e9, stop_after=9)  # one checkpoint, 8 records
    assert len(read_records(tmp_path / "coordinator.replay", _digest(tmp_path))) == 8
    engine, next_plan = restored(tmp_path)
    assert next_plan == 9
    assert_same(air_state(engine), states[8])


def test_a_torn_last_record_is_dropped_and_that_exchange_runs_again(tmp_path: Path) -> None:
    _, states = run_recorded(tmp_path, interval_s=1e9, stop_after=6)
    log = tmp_path / "coordinator.replay"
    log.write_bytes(log.read_bytes()[:-7])  # the crash cut the last append short
    engine, next_plan = restored(tmp_path)
    assert next_plan == 5
    assert_same(air_state(engine), states[4])


def test_a_log_of_an_older_checkpoint_is_ignored(tmp_path: Path) -> None:
    old_log = tmp_path / "old"
    old_log.mkdir()
    run_recorded(old_log, interval_s=1e9, stop_after=4)
    _, states = run_recorded(tmp_path, interval_s=0.0, stop_after=3)  # checkpoints only
    (tmp_path / "coordinator.replay").write_bytes((old_log / "coordinator.replay").read_bytes())
    engine, next_plan = restored(tmp_path)
    assert next_plan == 3
    assert_same(air_state(engine), states[2])


def _digest(out: Path) -> str:
    from coordinator.service.run_checkpoint import load

    engine = in_process_run(build_setup(ARGS), EngineOptions()).engine
    return load(out / FILENAME, engine)[1]
