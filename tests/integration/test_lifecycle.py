"""Lifecycle of a local run: signals in every phase, finished run directories, dead nodes."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from coordinator.service.launch import FinishedRunDirectory, LaunchOptions, run_testbed
from coordinator.service.run_setup import RunArgs
from coordinator.service.server import CoordinatorOptions

pytestmark = pytest.mark.usefixtures("warm_numba")

REPO = Path(__file__).resolve().parents[2]


def processes_of(out: Path) -> list[psutil.Process]:
    """Live processes whose command line names the run directory (nodes, zygote, reference)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(out) in " ".join(proc.info["cmdline"] or []) and proc.pid != os.getpid():
            found.append(proc)
    return found


class Rocknet:
    """``rocknet run`` in a subprocess, its log lines readable as they come."""

    def __init__(self, out: Path, *flags: str) -> None:
        cmd = [sys.executable, "-m", "coordinator.ui.cli", "run", "--quiet", "--out", str(out),
               "--node-port", "0", "--feed-port", "0", "--control-port", "0", *flags]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # --quiet keeps INFO off: log what this test waits for at INFO anyway.
        cmd.remove("--quiet")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            self.lines.put(line)

    def wait_for_line(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                if text in self.lines.get(timeout=left):
                    return
            except queue.Empty:
                break
        self.proc.kill()
        raise AssertionError(f"no log line with {text!r} within {timeout_s} s:\n{''.join(self.log[-30:])}")

    def interrupt_and_time(self) -> float:
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        return time.monotonic() - t0


def gone_within(out: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while processes_of(out):
        if time.monotonic() > deadline:
            return False
        psutil.wait_procs(processes_of(out), timeout=0.1)
    return True


def test_sigint_during_setup_ends_everything_at_once(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = Rocknet(out, "--nodes", "20", "--epochs", "100000")
    run.wait_for_line("setting up", timeout_s=60)
    elapsed = run.interrupt_and_time()
    assert elapsed < 3.0, f"took {elapsed:.1f} s"
    assert run.proc.returncode == 130
    assert gone_within(out, 3.0), [p.cmdline() for p in processes_of(out)]


def test_sigint_while_running_stops_within_3_s_and_writes_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = Rocknet(out, "--nodes", "20", "--epochs", "2000")
    run.wait_for_line("event run_started", timeout_s=120)
    elapsed = run.interrupt_and_time()
    assert elapsed < 3.0, f"took {elapsed:.1f} s"
    assert gone_within(out, 3.0), [p.cmdline() for p in processes_of(out)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "signal SIGINT"
    assert summary["centralized_test_accuracy"] is None
    assert summary["reference"] == "absent: the run stopped before its end"
    assert summary["rounds"] < summary["rounds_planned"] and summary["phase"] == "finished"


def test_a_finished_run_directory_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    args = RunArgs(dataset="GunPoint", nodes=2, epochs=1, num_features=1000)
    launch = LaunchOptions(out_dir=tmp_path / "run", progress=False, reference=False,
                           coordinator=CoordinatorOptions(node_port=0, feed_port=0, control_port=0,
                                                          in_process=True))
    assert run_testbed(args, launch)["phase"] == "finished"
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "run").rglob("*") if p.is_file()}
    with pytest.raises(FinishedRunDirectory, match="holds a finished run.*give a new --out"):
        run_testbed(args, launch)
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert after == before


def test_kill_9_of_a_node_is_down_within_2_s_while_rounds_go_on_and_it_rejoins(tmp_path: Path) -> None:
    args = RunArgs(dataset="GunPoint", nodes=5, epochs=6, num_features=2000)
    state: dict[str, Any] = {"rounds_after_kill": 0}

    def started(coord: Any, backend: Any) -> None:
        state["coord"], state["backend"] = coord, backend

    def on_round(record: dict[str, Any]) -> None:
        if record["round"] == 100 and "killed" not in state:
            state["killed"] = time.monotonic()
            os.kill(state["backend"].pids[state["backend"].name(2)], signal.SIGKILL)
        elif "killed" in state and "down" not in state:
            state["rounds_after_kill"] += 1

    def on_event(record: dict[str, Any]) -> None:
        if record["event"] == "node_down" and record.get("device") == 2 and "down" not in state:
            state["down"] = time.monotonic()
            state["backend"].start(2)  # restarted: it rejoins from its checkpoint
        if record["event"] == "node_rejoined" and record.get("device") == 2:
            state["rejoined"] = record["round"]

    launch = LaunchOptions(out_dir=tmp_path / "run", progress=False, reference=False,
                           coordinator=CoordinatorOptions(node_port=0, feed_port=0, control_port=0))
    summary = run_testbed(args, launch, on_started=started, on_round=on_round, on_event=on_event)
    assert state["down"] - state["killed"] < 2.0
    assert "rejoined" in state and summary["per_node"][2]["joins"] == 2
    assert summary["phase"] == "finished" and summary["per_node"][2]["final_collected"]
    log = (tmp_path / "run" / "logs" / "node-02.log").read_text()
    assert "resumed from checkpoint" in log
