"""Testbed speed: 20 node processes, Mixer, GunPoint, on this machine.

Prints, side by side in one process:
  (a) batch mode: wall time per emulated round and the real-time factor (virtual / wall);
  (b) lockstep: median coordinator round (exchange) time, against a bare ZeroMQ
      ROUTER/DEALER + msgpack round trip to 20 processes (the floor);
  (c) an epoch's wall time against the centralized in-process reference (same features
      cached, same sample order).
Last line: ``ratio: X.XX`` = lockstep round time / bare ZeroMQ round trip.

Run: ``.venv/bin/python benchmarks/testbed.py [--nodes 20] [--epochs 10]``
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path

import msgpack
import zmq


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--dataset", default="GunPoint")
    a = ap.parse_args()

    from coordinator.service.launch import LaunchOptions, run_testbed
    from coordinator.service.server import CoordinatorOptions
    from coordinator.service.run_setup import RunArgs, build_setup
    from node.offline.reference import train_reference

    def run(lockstep: bool, epochs: int) -> dict:
        out = Path(tempfile.mkdtemp(prefix="rocknet-bench-"))
        launch = LaunchOptions(out_dir=out, progress=False, reference=False, node_logs=False,
                               coordinator=CoordinatorOptions(node_port=0, feed_port=0, control_port=0,
                                                              lockstep=lockstep))
        return run_testbed(RunArgs(dataset=a.dataset, nodes=a.nodes, epochs=epochs), launch)

    floor_ms = bare_zeromq_round_ms(a.nodes)
    batch = run(lockstep=False, epochs=a.epochs)
    train_s = _training_wall_s(batch)
    rounds = batch["rounds"]
    print(f"batch mode: {rounds} rounds, virtual {batch['virtual_time_s']:.1f} s, "
          f"training wall {train_s:.2f} s")
    print(f"  wall per emulated round: {train_s / rounds * 1e3:.3f} ms; "
          f"real-time factor (virtual / training wall): {batch['virtual_time_s'] / train_s:.0f}x")
    lock = run(lockstep=True, epochs=1)
    print(f"lockstep: median coordinator round {lock['exchange_wall_ms_median']:.3f} ms over "
          f"{lock['exchanges']} rounds; bare ZeroMQ {a.nodes}-process round trip {floor_ms:.3f} ms")

    setup = build_setup(RunArgs(dataset=a.dataset, nodes=a.nodes, epochs=a.epochs))
    t0 = time.perf_counter()
    train_reference(setup.x_train, setup.y_train, setup.x_test, setup.y_test, setup.config.n_classes,
                    setup.config.model, a.nodes, setup.config.schedule)
    central_s = time.perf_counter() - t0
    print(f"epoch wall time: testbed {train_s / a.epochs * 1e3:.1f} ms, centralized in-process "
          f"{central_s / a.epochs * 1e3:.1f} ms (ratio {train_s / central_s:.1f}x)")
    print(f"ratio: {lock['exchange_wall_ms_median'] / floor_ms:.2f}")


def _training_wall_s(summary: dict) -> float:
    """Wall time of the exchanges alone (start-up and registration excluded)."""
    return summary["exchange_wall_s_total"]


if __name__ == "__main__":
    main()
