"""Crash recovery with real processes: kill -9 of the coordinator, restart, nothing lost."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from coordinator.service.run_setup import RunArgs, build_setup
from node.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from node.device.rocknet import Device, DeviceData
from inprocess import assert_weights_file_equals, reference_of

pytestmark = pytest.mark.usefixtures("warm_numba")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def rounds_logged(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [json.loads(line)["round"] for line in path.read_text().splitlines()
            if line.startswith('{"type": "round"')]


def test_coordinator_kill_9_and_restart_resumes_without_counting_a_round_twice(tmp_path: Path) -> None:
    # One full checkpoint at the first exchange, every later one in the replay log: the
    # restart must rebuild the run from the log.
    out = tmp_path / "run"
    ports = [free_port() for _ in range(3)]
    coordinator_cmd = [
        sys.executable, "-m", "coordinator.ui.cli", "coordinator", "--quiet", "--no-reference",
        "--nodes", "3", "--dataset", "GunPoint", "--epochs", "25", "--num-features", "2000",
        "--out", str(out), "--node-port", str(ports[0]), "--feed-port", str(ports[1]),
        "--control-port", str(ports[2]), "--deadline", "30", "--checkpoint-interval", "1000",
    ]
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    coord = subprocess.Popen(coordinator_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    nodes = [
        subprocess.Popen([sys.executable, "-m", "node", "--connect", f"tcp://127.0.0.1:{ports[0]}",
                          "--name", f"n{i}", "--checkpoint-dir", str(out / "checkpoints")],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in range(3)
    ]
    try:
        metrics = out / "metrics.jsonl"
        wait_for(lambda: len(rounds_logged(metrics)) > 300, 300, "300 rounds")
        coord.send_signal(signal.SIGKILL)
        coord.wait()
        crashed_at = len(rounds_logged(metrics))
        restarted = subprocess.run(coordinator_cmd, env=env, capture_output=True, text=True, timeout=300)
        assert restarted.returncode == 0, restarted.stderr[-2000:]
        for node in nodes:
            node.wait(timeout=120)
        assert [n.returncode for n in nodes] == [0, 0, 0], restarted.stderr[-3000:]
    finally:
        for proc in [coord, *nodes]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["phase"] == "finished"
    logged = rounds_logged(out / "metrics.jsonl")
    assert logged == list(range(summary["rounds_planned"])), "a round was lost or counted twice"
    assert crashed_at < len(logged)
    events = [json.loads(x)["event"] for x in (out / "metrics.jsonl").read_text().splitlines()
              if x.startswith('{"type": "event"')]
    assert "run_resumed" in events
    # Nothing lost: the resumed run still equals the centralized reference bitwise.
    args = RunArgs(dataset="GunPoint", nodes=3, epochs=25, num_features=2000)
    setup = build_setup(args)
    assert_weights_file_equals(out / "weights.npz", reference_of(setup), 3)


def _device(setup, d: int) -> Device:
    return Device(device=d, config=setup.config, data=DeviceData.from_shard(setup.shard(d)))


def test_node_checkpoint_round_trips_and_refuses_foreign_or_corrupt_files(tmp_path: Path) -> None:
    setup = build_setup(RunArgs(dataset="GunPoint", nodes=2, epochs=1, num_features=2000))
    dev = _device(setup, 0)
    dev.head.W[:] = 0.5
    dev.processed_item = 42
    path = tmp_path / "n.ckpt"
    save_checkpoint(path, dev)
    fresh = _device(setup, 0)
    load_checkpoint(path, fresh)
    assert np.array_equal(fresh.head.W, dev.head.W) and fresh.processed_item == 42
    other = _device(setup, 1)
    with pytest.raises(CheckpointError, match="device 0"):
        load_checkpoint(path, other)
    other_run = build_setup(RunArgs(dataset="GunPoint", nodes=2, epochs=2, num_features=2000))
    with pytest.raises(CheckpointError, match="another run"):
        load_checkpoint(path, _device(other_run, 0))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = b"\xa5" * 64  # (zeros could land on zeros)
    path.write_bytes(bytes(raw))
    untouched = _device(setup, 0)
    before = untouched.head.W.copy()
    with pytest.raises(CheckpointError):
        load_checkpoint(path, untouched)
    assert np.array_equal(untouched.head.W, before) and untouched.processed_item == -1


def test_repeated_kill_9_of_random_nodes_keeps_accuracy_within_1pp(tmp_path: Path) -> None:
    from coordinator.service.launch import LaunchOptions, run_testbed
    from coordinator.service.server import CoordinatorOptions

    # SGD's robustness (the ridge head's is pinned in test_ridge_run.py: a lost Gram part
    # costs the solve its block's samples)
    args = RunArgs(dataset="GunPoint", nodes=5, head="sgd")
    rng = np.random.default_rng(7)
    kill_rounds = [150, 400, 650]
    state: dict = {"pending": None, "killed": []}

    def started(coord, backend) -> None:
        state["coord"], state["backend"] = coord, backend

    def on_event(record: dict) -> None:
        victim = state["pending"]
        if victim is None:
            return
        coord, backend = state["coord"], state["backend"]
        entry = next(e for e in coord.registry.entries() if e.name == backend.name(victim))
        if record["event"] == "node_down" and record.get("device") == entry.device:
            backend.start(victim)  # restart it under the same name
        if record["event"] == "node_rejoined" and record.get("device") == entry.device:
            state["pending"] = None
            coord.resume()

    def on_round(record: dict) -> None:
        if kill_rounds and record["round"] >= kill_rounds[0] and state["pending"] is None:
            kill_rounds.pop(0)
            victim = int(rng.integers(0, 5))
            state["pending"] = victim
            state["killed"].append(victim)
            state["coord"].pause()  # hold the run until the node is back
            state["backend"].kill(victim)

    launch = LaunchOptions(out_dir=tmp_path / "run", progress=False, reference=True,
                           coordinator=CoordinatorOptions(node_port=0, feed_port=0, control_port=0,
                                                          deadline_s=2.0, down_after=1))
    summary = run_testbed(args, launch, on_started=started, on_round=on_round, on_event=on_event)
    assert summary["phase"] == "finished" and len(state["killed"]) == 3
    assert all(n["final_collected"] for n in summary["per_node"])
    with np.load(tmp_path / "run" / "weights.npz") as w:
        assert all(np.isfinite(w[k]).all() for k in w.files)
    undisturbed = summary["centralized_test_accuracy"]  # lossless, same seed and order
    assert abs(summary["test_accuracy"] - undisturbed) <= 0.01 + 1e-9
