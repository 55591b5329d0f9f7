"""Testbed speed and lifecycle, 20 node processes on this machine, side by side in one run.

Every figure is printed next to the baseline it is judged against, measured in the same run:

1. ``bare import``: ``python -c "import numpy, numba, zmq"`` in a fresh interpreter (median
   of ``--repeat``) — the floor of any Python process that does our kind of work;
2. ``main job``: ``rocknet run --nodes 20 --dataset GunPoint`` as a user types it (CLI in a
   subprocess, the reference included), wall time and its ratio to the bare import (target
   about 6x);
3. ``start-up``: ``run_testbed`` called -> the 20th ``node_registered`` (setup, dataset,
   zygote, 20 forks, WELCOMEs);
4. ``exchanges``: virtual time / wall time of the exchanges (target >= 300x, goal 1,000x), and
   the whole run's real-time factor;
5. ``lockstep``: the median lockstep round (one exchange per radio round) against a bare
   ZeroMQ ROUTER -> 20 DEALER processes -> ROUTER msgpack round trip (target <= 3 ms);
6. ``dead node``: ``kill -9`` of one node process mid-run -> its ``node_down`` event
   (target <= 1 s), and how many rounds the air resolved meanwhile;
7. ``stop``: SIGINT to ``rocknet run`` while it trains -> every process of the run gone
   (target <= 3 s);
8. ``USS``: unique memory of each node process (psutil), mean and max (target <= 30 MB).

Run: ``.venv/bin/python benchmarks/testbed.py [--nodes 20] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import psutil
import zmq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coordinator.service.launch import LaunchOptions, run_testbed  # noqa: E402
from coordinator.service.run_setup import RunArgs  # noqa: E402
from coordinator.service.server import CoordinatorOptions  # noqa: E402

MB = 2**20
PORTS = ["--node-port", "0", "--feed-port", "0", "--control-port", "0"]


def _echo(endpoint: str, name: bytes) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.ROUTING_ID, name)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    sock.send(msgpack.packb({"t": "HELLO"}))
    while True:
        msg = msgpack.unpackb(sock.recv())
        if msg.get("t") == "STOP":
            break
        sock.send(msgpack.packb({"t": "TX", "exchange": msg["exchange"], "logits": b"\0" * 8}))
    sock.close()
    ctx.term()


def bare_zeromq_round_ms(n: int, rounds: int = 500) -> float:
    """Median ms for ROUTER -> n DEALER processes -> ROUTER, msgpack frames."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    endpoint = f"tcp://127.0.0.1:{port}"
    procs = [mp.Process(target=_echo, args=(endpoint, f"n{i}".encode())) for i in range(n)]
    for p in procs:
        p.start()
    peers = [router.recv_multipart()[0] for _ in range(n)]
    times = []
    for r in range(rounds):
        t0 = time.perf_counter()
        for peer in peers:
            router.send_multipart([peer, msgpack.packb({"t": "ROUND", "exchange": r})])
        for _ in range(n):
            router.recv_multipart()
        times.append(time.perf_counter() - t0)
    for peer in peers:
        router.send_multipart([peer, msgpack.packb({"t": "STOP"})])
    for p in procs:
        p.join()
    router.close()
    ctx.term()
    return statistics.median(times) * 1e3


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def bare_import_s(repeat: int) -> float:
    return statistics.median(timed([sys.executable, "-c", "import numpy, numba, zmq"])
                             for _ in range(repeat))


def main_job(n: int, repeat: int, work: Path) -> tuple[float, dict[str, Any]]:
    """Median wall time of ``rocknet run --nodes n --dataset GunPoint`` and its last summary."""
    walls, summary = [], {}
    for i in range(repeat):
        out = work / f"main-{i}"
        walls.append(timed([sys.executable, "-m", "coordinator.ui.cli", "run", "--quiet", "--nodes",
                            str(n), "--dataset", "GunPoint", "--out", str(out), *PORTS]))
        summary = json.loads((out / "summary.json").read_text())
    return statistics.median(walls), summary


def _uss(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            out.append(psutil.Process(pid).memory_full_info().uss)
        except psutil.Error:
            pass
    return out


def lifecycle(n: int, work: Path) -> dict[str, Any]:
    """One 3-epoch run: start-up, per-node USS, and a node killed at round 100."""
    marks: dict[str, Any] = {"rounds_while_down": 0}
    box: dict[str, Any] = {}

    def started(coord: Any, backend: Any) -> None:
        box["backend"] = backend

    def on_event(record: dict[str, Any]) -> None:
        if record["event"] == "node_registered" and record.get("registered") == n:
            marks["registered"] = time.perf_counter()
        if record["event"] == "node_down" and record.get("device") == 2 and "down" not in marks:
            marks["down"] = time.perf_counter()

    def on_round(record: dict[str, Any]) -> None:
        backend = box["backend"]
        if record["round"] == 50:
            marks["uss"] = _uss(list(backend.pids.values()))
        if record["round"] == 100 and "killed" not in marks:
            marks["killed"] = time.perf_counter()
            os.kill(backend.pids[backend.name(2)], signal.SIGKILL)
        elif "killed" in marks and "down" not in marks:
            marks["rounds_while_down"] += 1

    launch = LaunchOptions(out_dir=work / "lifecycle", progress=False, reference=False,
                           coordinator=CoordinatorOptions(node_port=0, feed_port=0, control_port=0))
    t0 = time.perf_counter()
    run_testbed(RunArgs(dataset="GunPoint", nodes=n, epochs=3), launch, on_started=started,
                on_round=on_round, on_event=on_event)
    return {"startup_s": marks["registered"] - t0, "dead_s": marks["down"] - marks["killed"],
            "rounds_while_down": marks["rounds_while_down"], "uss": marks["uss"]}


def lockstep_round_ms(n: int, work: Path) -> float:
    launch = LaunchOptions(out_dir=work / "lockstep", progress=False, reference=False, node_logs=False,
                           coordinator=CoordinatorOptions(node_port=0, feed_port=0, control_port=0,
                                                          lockstep=True))
    summary = run_testbed(RunArgs(dataset="GunPoint", nodes=n, epochs=1), launch)
    return float(summary["exchange_wall_ms_median"])


def _run_processes(out: Path) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"])
            if str(out) in " ".join(p.info["cmdline"] or []) and p.pid != os.getpid()]


def stop_s(n: int, work: Path) -> float:
    """SIGINT to a training ``rocknet run`` -> every process of the run gone."""
    out = work / "stop"
    proc = subprocess.Popen([sys.executable, "-m", "coordinator.ui.cli", "run", "--nodes", str(n),
                             "--epochs", "2000", "--out", str(out), *PORTS], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stderr is not None
    seen = threading.Event()

    def watch() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "event run_started" in line:
                seen.set()

    threading.Thread(target=watch, daemon=True).start()
    if not seen.wait(timeout=180):
        proc.kill()
        raise RuntimeError("the run never started")
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    while _run_processes(out):
        psutil.wait_procs(_run_processes(out), timeout=0.05)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rocknet-bench-"))
    n = a.nodes

    bare_s = bare_import_s(a.repeat)
    main_s, summary = main_job(n, a.repeat, work)
    life = lifecycle(n, work)
    floor_ms = bare_zeromq_round_ms(n)
    lock_ms = lockstep_round_ms(n, work)
    stopped_s = stop_s(n, work)

    ex_rtf = summary["virtual_time_s"] / summary["exchange_wall_s_total"]
    uss = life["uss"]
    rows = [
        ("main job (rocknet run, GunPoint)", f"{main_s:.2f} s", f"bare import {bare_s:.2f} s",
         f"{main_s / bare_s:.1f}x", "~6x"),
        ("start-up: call -> all registered", f"{life['startup_s']:.2f} s", f"bare import {bare_s:.2f} s",
         f"{life['startup_s'] / bare_s:.1f}x", "~1 s"),
        ("exchanges: virtual / wall", f"{summary['virtual_time_s']:.1f} s / "
         f"{summary['exchange_wall_s_total']:.2f} s", f"{summary['exchanges']} exchanges",
         f"{ex_rtf:.0f}x real time", ">= 300x"),
        ("whole run: virtual / wall", f"{summary['realtime_factor']:.0f}x", "", "", ""),
        ("lockstep round (median)", f"{lock_ms:.2f} ms", f"bare ZeroMQ {floor_ms:.2f} ms",
         f"{lock_ms / floor_ms:.1f}x", "<= 3 ms"),
        ("kill -9 -> node_down", f"{life['dead_s']:.2f} s",
         f"{life['rounds_while_down']} rounds resolved meanwhile", "", "<= 1 s"),
        ("SIGINT -> all processes gone", f"{stopped_s:.2f} s", "", "", "<= 3 s"),
        ("USS per node process", f"mean {statistics.mean(uss) / MB:.1f} MB, max {max(uss) / MB:.1f} MB",
         f"{len(uss)} processes", "", "<= 30 MB"),
    ]
    width = [max(len(r[i]) for r in rows) for i in range(5)]
    print(f"{n} node processes, {os.cpu_count()} cores; medians of {a.repeat} where repeated")
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, width)))
    print(f"ratio: {main_s / bare_s:.2f}")


if __name__ == "__main__":
    main()
