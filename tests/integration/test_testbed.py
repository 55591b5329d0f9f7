"""The running testbed with real node processes and real ZeroMQ sockets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

from coordinator.engine.medium import Air
from coordinator.service.launch import LaunchOptions, run_testbed
from coordinator.service.server import CoordinatorOptions, RunAborted
from coordinator.service.run_setup import RunArgs, SetupError, build_setup
from inprocess import assert_weights_file_equals, reference_of

pytestmark = pytest.mark.usefixtures("warm_numba")


def options(tmp_path: Path, **kw) -> LaunchOptions:
    coord = CoordinatorOptions(node_port=0, feed_port=0, control_port=0,
                               deadline_s=kw.pop("deadline_s", 30.0), down_after=kw.pop("down_after", 3),
                               lockstep=kw.pop("lockstep", False))
    return LaunchOptions(out_dir=tmp_path / "run", coordinator=coord, progress=False,
                         reference=kw.pop("reference", False), **kw)


def no_node_left(out_dir: Path) -> bool:
    """No process of this run (nodes write their checkpoints under out_dir) is alive."""
    marker = str(out_dir)
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "-m node" in cmd and marker in cmd:
            return False
    return True


def test_twenty_node_processes_train_and_equal_the_centralized_reference(tmp_path: Path) -> None:
    args = RunArgs(dataset="GunPoint", nodes=20, epochs=2)
    summary = run_testbed(args, options(tmp_path, reference=True))
    assert summary["phase"] == "finished"
    assert summary["rounds"] == summary["rounds_planned"]
    assert len(summary["per_node"]) == 20
    assert all(n["final_collected"] for n in summary["per_node"])
    setup = build_setup(args)
    ref = reference_of(setup)
    assert_weights_file_equals(tmp_path / "run" / "weights.npz", ref, 20)
    assert summary["test_accuracy"] == pytest.approx(ref.test_accuracy)
    assert summary["centralized_test_accuracy"] == pytest.approx(ref.test_accuracy)
    for key in ("dataset", "nodes", "protocol", "epochs", "rounds", "virtual_time_s", "wall_time_s"):
        assert key in summary
    for node in summary["per_node"]:
        assert node["ram_bytes"] > 0 and node["energy_mj"] > 0 and node["radio_on_s"] > 0
        assert node["compute_s_modeled"] > 0
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    rounds = [json.loads(x) for x in lines if '"type": "round"' in x]
    assert [r["round"] for r in rounds] == list(range(summary["rounds"]))
    assert no_node_left(tmp_path / "run")


@pytest.mark.parametrize("loss", [0.3, 0.8])
def test_lossy_run_reports_accuracy_and_the_air_s_exact_losses(tmp_path: Path, loss: float) -> None:
    args = RunArgs(dataset="GunPoint", nodes=5, epochs=3, loss=loss, num_features=2000)
    summary = run_testbed(args, options(tmp_path, reference=True))
    assert summary["phase"] == "finished"
    assert summary["test_accuracy"] is not None
    assert summary["centralized_test_accuracy"] is not None
    # Replay the air offline with the same seed: the run lost exactly these packets.
    setup = build_setup(args)
    air = Air(setup.stream, setup.topology, setup.loss, setup.protocol, setup.config.model.seed,
              setup.config.series_length, setup.config.n_classes)
    air.resolve_until(setup.stream.n_rounds, np.ones(5, dtype=bool))
    assert [n["lost_packets"] for n in summary["per_node"]] == [t.lost_packets for t in air.totals]
    if loss > 0.5:  # at 0.3 Mixer's 150 slots recover every packet on this layout
        assert summary["packet_loss_ratio"] > 0


def test_kill_9_of_a_node_mid_run_marks_it_down_and_it_rejoins(tmp_path: Path) -> None:
    args = RunArgs(dataset="GunPoint", nodes=4, epochs=12, num_features=2000)
    events: list[dict] = []
    state: dict = {}

    def started(coord, backend) -> None:
        state["coord"], state["backend"] = coord, backend

    def on_event(record: dict) -> None:
        events.append(record)
        if record["event"] == "node_rejoined":
            state["coord"].resume()  # the run goes on once the node is back

    def on_round(record: dict) -> None:
        backend, coord = state["backend"], state["coord"]
        victim = next(e.device for e in coord.registry.entries() if e.name == backend.name(2))
        state["victim"] = victim
        if record["round"] == 150 and "killed" not in state:
            backend.kill(2)
            state["killed"] = record["round"]
        if "killed" in state and "restarted" not in state and any(
            e["event"] == "node_down" and e.get("device") == victim for e in events
        ):
            # Hold the run (as an operator would with `rocknet pause`) until it rejoins.
            coord.pause()
            backend.start(2)
            state["restarted"] = record["round"]

    summary = run_testbed(args, options(tmp_path, deadline_s=2.0, down_after=1),
                          on_started=started, on_round=on_round, on_event=on_event)
    assert summary["phase"] == "finished"
    victim = state["victim"]
    downs = [e for e in events if e["event"] == "node_down" and e.get("device") == victim]
    rejoins = [e for e in events if e["event"] == "node_rejoined" and e.get("device") == victim]
    assert downs and rejoins and downs[0]["round"] <= rejoins[0]["round"]
    node = summary["per_node"][victim]
    assert node["joins"] == 2 and node["status"] == "up" and node["final_collected"]
    assert summary["test_accuracy"] is not None
    logged = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert '"node_down"' in logged and '"node_rejoined"' in logged
    # It resumed from its checkpoint: its log says so.
    log = (tmp_path / "run" / "logs" / f"{state['backend'].name(2)}.log").read_text()
    assert "resumed from checkpoint" in log
    assert no_node_left(tmp_path / "run")


def test_a_shard_over_the_ram_budget_is_refused_with_the_bytes_over(tmp_path: Path) -> None:
    args = RunArgs(dataset="GunPoint", nodes=2, epochs=1, ram_budget_bytes=20_000)
    with pytest.raises(RunAborted, match=r"[0-9,]+ B \([0-9.]+ KiB\) over the budget"):
        run_testbed(args, options(tmp_path))
    assert no_node_left(tmp_path / "run")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "NoSuchDataset"], "NoSuchDataset"),
        (["--nodes", "0"], "--nodes"),
        (["--head", "sgd", "--nodes", "421"], "--nodes 420 or fewer"),  # GunPoint, paper dilations: 84 x 5
        (["--loss", "1.5"], "--loss"),
    ],
)
def test_bad_arguments_fail_fast_with_a_clear_message(tmp_path: Path, argv: list[str], message: str) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "coordinator.ui.cli", "run", "--quiet", "--out", str(out),
         "--node-port", "0", "--feed-port", "0", "--control-port", "0", *argv],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert no_node_left(out)


def test_a_disconnected_topology_is_refused_naming_the_unreachable_nodes(tmp_path: Path) -> None:
    topo = tmp_path / "split.json"
    topo.write_text(json.dumps({
        "nodes": [{"id": i, "role": "compute", "position": [10.0 * i, 0.0]} for i in range(4)],
        "links": [{"a": 0, "b": 1, "prr": 1.0}, {"a": 2, "b": 3, "prr": 1.0}],
    }))
    with pytest.raises(SetupError, match="2"):
        build_setup(RunArgs(dataset="GunPoint", nodes=4, epochs=1, topology=topo))
