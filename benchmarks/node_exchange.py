"""A node's CPU per exchange, measured on captured frames, before and after side by side.

1. ``capture``: one in-process run (default: 20 devices, GunPoint, batch mode) whose agents
   record, per device, every frame the coordinator sent them (encoded, as a node process
   receives them), into one msgpack file.
2. ``replay``: fresh agents are fed those bytes, frame by frame, as ``node/process.py`` does:
   decode, :meth:`NodeAgent.handle`, encode the replies; ``time.process_time`` per phase
   and frame kind (no sockets, no profiler). What is printed is µs of CPU per exchange
   and per node.
3. the default: capture once, then replay alternately in this tree and in every tree given
   with ``--tree`` (e.g. an export of the base commit: ``git archive BASE | tar -x -C DIR``),
   each in its own interpreter (``PYTHONPATH`` = that tree), ``--repeats`` times, and print
   the medians side by side::

       python benchmarks/node_exchange.py --tree /tmp/base [--lockstep] [--devices 0,7]

4. ``interleave``: one forked process per device replays its frames, first all running
   freely side by side, then taking turns frame by frame round a token ring of pipes (device
   i handles one frame, then passes the token to i + 1), as the node processes of a run on
   few cores take turns. Only decode, handle and encode are timed, so the ratio is what
   running after N - 1 other processes (cold caches) costs the same work::

       python benchmarks/node_exchange.py interleave [--lockstep]

The frames come from this tree's coordinator: a tree whose wire differs cannot replay them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def capture(path: Path, nodes: int, dataset: str, lockstep: bool, loss: float) -> int:
    """Run once in-process and store the frames every device received; returns exchanges."""
    import msgpack

    from coordinator.engine.engine import EngineOptions, RunEngine
    from coordinator.engine.inprocess_link import InProcessLink, make_agents
    from coordinator.backends.interface import node_name
    from coordinator.service.run_setup import RunArgs, build_setup
    from protocol.wire.frames import Message, encode

    frames: dict[str, list[bytes]] = defaultdict(list)

    class Recorder:
        """An agent that keeps the encoded form of every frame it is handed."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.name = inner.name

        def hello(self) -> Any:
            return self.inner.hello()

        def handle(self, msg: Message) -> list[Message]:
            frames[self.name].append(encode(msg))
            return list(self.inner.handle(msg))

    setup = build_setup(RunArgs(dataset=dataset, nodes=nodes, loss=loss, head="sgd"))  # the frames measured in docs/speed.md
    agents = [Recorder(a) for a in make_agents(nodes, node_name)]
    engine = RunEngine(setup, InProcessLink(agents), EngineOptions(lockstep=lockstep, down_after=10**9))
    engine.run()
    path.write_bytes(msgpack.packb({"exchanges": len(engine.plans), "frames": dict(frames)}))
    return len(engine.plans)


def _digest(msg: Any, crc: int) -> int:
    """``crc`` updated with ``msg``'s fields (arrays bitwise; a TX's stats left out)."""
    for spec in msg._FIELDS:
        value = getattr(msg, spec.name)
        if spec.name == "stats" and type(msg).__name__ == "Tx":
            continue
        data = value.tobytes() if hasattr(value, "tobytes") else repr(value).encode()
        crc = zlib.crc32(data, crc)
    return crc


def replay(path: Path, devices: list[int] | None) -> dict[str, float]:
    """CPU seconds per phase, summed over the replayed devices (see the module docstring)."""
    import msgpack

    from node.agent import AgentOptions, NodeAgent
    from protocol.wire.frames import decode, encode

    doc = msgpack.unpackb(path.read_bytes())
    names = sorted(doc["frames"])
    if devices is not None:
        names = [names[d] for d in devices]
    cpu: dict[str, float] = defaultdict(float)
    digest = 0
    clock = time.process_time
    for name in names:
        agent = NodeAgent(AgentOptions(name=name))
        for raw in doc["frames"][name]:
            t0 = clock()
            msg = decode(raw)
            t1 = clock()
            replies = agent.handle(msg)
            t2 = clock()
            for reply in replies:
                encode(reply)
            t3 = clock()
            for reply in replies:  # what the device said, bitwise (not TX stats: wall times)
                digest = _digest(reply, digest)
            kind = type(msg).__name__.lower()
            if kind == "welcome":
                continue  # setup, not an exchange
            cpu[f"decode {kind}"] += t1 - t0
            cpu[f"handle {kind}"] += t2 - t1
            cpu[f"encode reply to {kind}"] += t3 - t2
    cpu["total"] = sum(cpu.values())
    scale = 1e6 / (doc["exchanges"] * len(names))  # µs per exchange and node
    out = {k: v * scale for k, v in cpu.items()}
    out["crc32 of every TX and FINAL (equal: same results)"] = float(digest)
    return out


def _interleaved(path: Path, ring: bool) -> float:
    """µs of CPU per exchange and node (mean over the devices) with one forked process per
    device; ``ring``: the processes take turns frame by frame round a token ring."""
    import msgpack

    from node.agent import AgentOptions, NodeAgent
    from protocol.wire.frames import decode, encode

    doc = msgpack.unpackb(path.read_bytes())
    names = sorted(doc["frames"])
    pipes = [os.pipe() for _ in names]
    results = os.pipe()
    children = []
    for i, name in enumerate(names):
        pid = os.fork()
        if pid == 0:  # the child: its device's frames, then its CPU seconds on the results pipe
            agent = NodeAgent(AgentOptions(name=name))
            token_in, token_out = pipes[i][0], pipes[(i + 1) % len(names)][1]
            cpu = 0.0
            for k, raw in enumerate(doc["frames"][name]):
                if ring:
                    os.read(token_in, 1)
                t0 = time.process_time()
                for reply in agent.handle(decode(raw)):
                    encode(reply)
                if k > 0:  # frame 0 is the WELCOME: setup, not an exchange
                    cpu += time.process_time() - t0
                if ring:
                    os.write(token_out, b"t")
            os.write(results[1], f"{cpu:.9f}\n".encode())
            os._exit(0)
        children.append(pid)
    if ring:
        os.write(pipes[0][1], b"t")
    for pid in children:
        os.waitpid(pid, 0)
    with os.fdopen(results[0]) as out:
        os.close(results[1])
        total = sum(float(line) for line in out)
    return total * 1e6 / (doc["exchanges"] * len(names))


def interleave(frames: Path, repeats: int) -> None:
    """Print the free-running and the token-ring figure side by side (medians)."""
    free, ring = [], []
    for _ in range(repeats):  # alternately: both see the same machine load
        free.append(_interleaved(frames, ring=False))
        ring.append(_interleaved(frames, ring=True))
    f, r = statistics.median(free), statistics.median(ring)
    print(f"µs of CPU per exchange and node, decode + handle + encode (median of {repeats})")
    print(f"{'side by side, free-running':<34}{f:>10.1f}")
    print(f"{'taking turns frame by frame':<34}{r:>10.1f}   {r / f:.2f}x")


def _replay_in(tree: Path, frames: Path, devices: str | None) -> dict[str, float]:
    cmd = [sys.executable, str(REPO / "benchmarks" / "node_exchange.py"), "replay", str(frames)]
    if devices:
        cmd += ["--devices", devices]
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        key, _, value = line.rpartition(" ")
        rows[key.strip()] = float(value)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", nargs="?", default="compare", choices=("compare", "capture", "replay", "interleave"))
    p.add_argument("frames", nargs="?", type=Path)
    p.add_argument("--tree", type=Path, action="append", default=[], help="another tree to replay in")
    p.add_argument("--nodes", type=int, default=20)
    p.add_argument("--dataset", default="GunPoint")
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--lockstep", action="store_true")
    p.add_argument("--devices", help="comma-separated devices to replay (default: all)")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    if a.command == "capture":
        print(f"{capture(a.frames, a.nodes, a.dataset, a.lockstep, a.loss)} exchanges")
        return 0
    if a.command == "replay":
        devices = [int(d) for d in a.devices.split(",")] if a.devices else None
        for key, value in replay(a.frames, devices).items():
            print(f"{key} {value:.3f}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        frames = a.frames or Path(tmp) / "frames.msgpack"
        if a.frames is None or not frames.exists():
            n = capture(frames, a.nodes, a.dataset, a.lockstep, a.loss)
            print(f"captured {n} exchanges ({'lockstep' if a.lockstep else 'batch'}), "
                  f"{a.nodes} devices, {a.dataset}, loss {a.loss}")
        if a.command == "interleave":
            interleave(frames, a.repeats)
            return 0
        trees = [REPO, *a.tree]
        runs: dict[Path, list[dict[str, float]]] = {t: [] for t in trees}
        for _ in range(a.repeats):  # alternately: both see the same machine load
            for tree in trees:
                runs[tree].append(_replay_in(tree, frames, a.devices))
    keys = list(runs[REPO][0])
    print("µs of CPU per exchange and node (median of %d)" % a.repeats)
    print(f"{'phase':<28}" + "".join(f"{t.name[:14]:>16}" for t in trees))
    for key in keys:
        print(f"{key:<28}" + "".join(
            f"{statistics.median(r.get(key, 0.0) for r in runs[t]):>16.1f}" for t in trees))
    return 0


if __name__ == "__main__":
    if "replay" not in sys.argv[1:2]:  # a replay imports from the tree PYTHONPATH names
        sys.path.insert(0, str(REPO))
    sys.exit(main())
