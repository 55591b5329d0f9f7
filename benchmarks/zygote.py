"""Benchmark of the zygote: node start-up and memory, forked from a zygote vs ``python -m node``.

One 20-node GunPoint run per mode (the same coordinator code, the local-process backend with
``zygote=True`` and ``zygote=False``). Reported per mode:

- ``prepare``: :meth:`ProcessBackend.prepare` (zygote: start it, import the node code, load the
  numba kernels from the cache; without: the launcher's cache warm-up subprocess);
- ``start -> all registered``: from ``backend.start_all()`` to the 20th ``node_registered``;
- USS / PSS / RSS per node process (psutil, ``memory_full_info``), sampled when the first
  round is recorded (every node has built its device from WELCOME and run its kernels) and
  again at the last round; the table gives the mean and the max over nodes of the later
  sample (each node's larger one);
- the memory the nodes cost this machine (the sum of PSS: every shared page split among the
  processes that map it, the zygote's included), and what 200 would cost at the same
  per-node figure.

``--zygote-only`` skips the ``python -m node`` run (e.g. ``--nodes 84 --zygote-only``; a run
has at most 84 x D devices, one (kernel, dilation) pair each: docs/scaling.md). ``--idle 200`` forks 200 node processes
from one zygote against a port nobody listens on (they wait to connect: no shard, no kernels
run) and reports the time to fork them and what they cost (sum of PSS, machine's used memory).

Run: ``.venv/bin/python benchmarks/zygote.py [--nodes 20] [--epochs 1]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coordinator.backends.processes import ProcessBackend  # noqa: E402
from coordinator.service.run_setup import RunArgs, build_setup  # noqa: E402
from coordinator.service.server import Coordinator, CoordinatorOptions  # noqa: E402

MB = 2**20


def _memory(pids: list[int]) -> dict[int, tuple[int, int, int]]:
    out = {}
    for pid in pids:
        try:
            m = psutil.Process(pid).memory_full_info()
            out[pid] = (m.uss, m.pss, m.rss)
        except psutil.Error:
            pass
    return out


def run_mode(zygote: bool, n: int, epochs: int, work: Path) -> dict[str, Any]:
    setup = build_setup(RunArgs(dataset="GunPoint", nodes=n, epochs=epochs))
    registered = threading.Event()
    marks: dict[str, float] = {}
    samples: list[dict[int, tuple[int, int, int]]] = []
    backend_box: dict[str, ProcessBackend] = {}
    rounds = setup.stream.n_rounds

    def on_event(record: dict[str, Any]) -> None:
        if record["event"] == "node_registered" and record.get("registered") == n:
            marks["registered"] = time.perf_counter()
            registered.set()

    def on_round(record: dict[str, Any]) -> None:
        if record["round"] in (0, rounds - 1):
            samples.append(_memory(list(backend_box["b"].pids.values())))

    coord = Coordinator(setup, CoordinatorOptions(node_port=0, feed_port=0, control_port=0),
                        on_event=on_event, on_round=on_round)
    backend = ProcessBackend(connect=coord.endpoints.nodes, n_nodes=n, zygote=zygote,
                             checkpoint_dir=work / "checkpoints", log_dir=work / "logs",
                             mem_limit_mb=1024)
    backend_box["b"] = backend
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            coord.run()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            registered.set()

    t = time.perf_counter()
    backend.prepare()
    prepare_s = time.perf_counter() - t
    runner = threading.Thread(target=serve, name="coordinator")
    runner.start()
    t0 = time.perf_counter()
    backend.start_all()
    spawned_s = time.perf_counter() - t0
    registered.wait(timeout=900)
    runner.join(timeout=900)
    zygote_rss = zygote_pss = 0
    if backend.zygote_pid is not None:
        zm = psutil.Process(backend.zygote_pid).memory_full_info()
        zygote_rss, zygote_pss = zm.rss, zm.pss
    backend.terminate(grace_s=10.0)
    coord.close()
    if errors:
        raise errors[0]
    per_node: dict[int, tuple[int, int, int]] = {}
    for sample in samples:
        for pid, m in sample.items():
            old = per_node.get(pid, (0, 0, 0))
            per_node[pid] = (max(old[0], m[0]), max(old[1], m[1]), max(old[2], m[2]))
    uss = [m[0] for m in per_node.values()]
    pss = [m[1] for m in per_node.values()]
    rss = [m[2] for m in per_node.values()]
    # What the machine pays: PSS (each shared page split among its sharers), the zygote's too.
    per_node_cost = statistics.mean(pss)
    return {
        "prepare_s": prepare_s,
        "spawn_s": spawned_s,
        "registered_s": marks["registered"] - t0,
        "uss_mean": statistics.mean(uss) / MB, "uss_max": max(uss) / MB,
        "pss_mean": statistics.mean(pss) / MB,
        "rss_mean": statistics.mean(rss) / MB,
        "zygote_rss": zygote_rss / MB,
        "zygote_pss": zygote_pss / MB,
        "total_n": (zygote_pss + n * per_node_cost) / MB,
        "total_200": (zygote_pss + 200 * per_node_cost) / MB,
        "phase": coord.state.phase,
    }


def idle(n: int, work: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    used0 = psutil.virtual_memory().used
    backend = ProcessBackend(connect=endpoint, n_nodes=n, log_dir=work / "logs", mem_limit_mb=1024)
    backend.prepare()
    t0 = time.perf_counter()
    backend.start_all()
    spawn_s = time.perf_counter() - t0
    time.sleep(2.0)  # let every child reach its poll loop
    mem = _memory(list(backend.pids.values()))
    assert backend.zygote_pid is not None
    zm = psutil.Process(backend.zygote_pid).memory_full_info()
    used = psutil.virtual_memory().used - used0
    alive = sum(1 for code in backend.exit_codes().values() if code is None)
    backend.terminate(grace_s=0.0)
    pss = sum(m[1] for m in mem.values()) + zm.pss
    print(f"{n} idle node processes from one zygote: forked in {spawn_s:.2f} s, {alive} alive; "
          f"USS {statistics.mean(m[0] for m in mem.values()) / MB:.1f} MB each; sum of PSS "
          f"{pss / MB:.0f} MB; machine used +{used / MB:.0f} MB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=20)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--zygote-only", action="store_true")
    p.add_argument("--idle", type=int, default=0, metavar="N")
    a = p.parse_args()
    if a.idle:
        with tempfile.TemporaryDirectory(prefix="rocknet-zygote-bench-") as tmp:
            idle(a.idle, Path(tmp))
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="rocknet-zygote-bench-") as tmp:
        for zygote in (True,) if a.zygote_only else (True, False):
            label = "zygote" if zygote else "python -m node"
            results[label] = run_mode(zygote, a.nodes, a.epochs, Path(tmp) / label.replace(" ", "_"))
    z = results["zygote"]
    p_ = results.get("python -m node", {k: float("nan") if isinstance(v, float) else v for k, v in z.items()})
    rows = [
        ("prepare (s)", "prepare_s", "{:.2f}"),
        ("start_all() returns (s)", "spawn_s", "{:.3f}"),
        (f"start -> all {a.nodes} registered (s)", "registered_s", "{:.2f}"),
        ("USS per node, mean (MB)", "uss_mean", "{:.1f}"),
        ("USS per node, max (MB)", "uss_max", "{:.1f}"),
        ("PSS per node, mean (MB)", "pss_mean", "{:.1f}"),
        ("RSS per node, mean (MB)", "rss_mean", "{:.1f}"),
        ("zygote RSS (MB)", "zygote_rss", "{:.1f}"),
        ("zygote PSS (MB)", "zygote_pss", "{:.1f}"),
        (f"{a.nodes} nodes cost, sum of PSS (MB)", "total_n", "{:.0f}"),
        ("200 nodes would cost (MB)", "total_200", "{:.0f}"),
    ]
    phases = "/".join(str(r["phase"]) for r in results.values())
    print(f"GunPoint, {a.nodes} node processes, {a.epochs} epoch(s); run(s) {phases}")
    print(f"{'':36s} {'zygote':>10s} {'python -m node':>15s} {'ratio':>8s}")
    for title, key, fmt in rows:
        ratio = p_[key] / z[key] if z[key] else float("nan")
        print(f"{title:36s} {fmt.format(z[key]):>10s} {fmt.format(p_[key]):>15s} {ratio:>7.1f}x")


if __name__ == "__main__":
    main()
