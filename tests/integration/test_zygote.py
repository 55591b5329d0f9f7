"""The zygote (node/zygote.py) behind the local-process backend: forked nodes are still one
OS process each, with their own PID, session, log file and memory cap; one's crash does not
touch its siblings; and neither the zygote nor a node outlives a killed launcher."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from coordinator.backends.processes import ProcessBackend
from coordinator.service.run_setup import RunArgs, build_setup
from coordinator.service.server import Coordinator, CoordinatorOptions
from node.process import EXIT_MEMORY

pytestmark = pytest.mark.usefixtures("warm_numba")

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    """A coordinator running in a thread, its nodes forked by a zygote."""

    coord: Coordinator
    backend: ProcessBackend
    exits: dict[str, int] = field(default_factory=dict)
    exited: threading.Condition = field(default_factory=threading.Condition)
    rounds: list[int] = field(default_factory=list)
    round_seen: threading.Condition = field(default_factory=threading.Condition)
    registered: threading.Event = field(default_factory=threading.Event)

    def wait_exit(self, name: str, timeout_s: float = 60.0) -> int:
        with self.exited:
            assert self.exited.wait_for(lambda: name in self.exits, timeout_s), f"{name} did not exit"
            return self.exits[name]

    def wait_round(self, at_least: int, timeout_s: float = 120.0) -> None:
        with self.round_seen:
            assert self.round_seen.wait_for(
                lambda: (self.rounds and self.rounds[-1] >= at_least) or self.coord.state.phase != "running",
                timeout_s), f"no round {at_least}"


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@contextmanager
def zygote_run(tmp_path: Path, n: int, mem_limit_mb: int = 1024,
               env: dict[int, dict[str, str]] | None = None) -> Iterator[Run]:
    setup = build_setup(RunArgs(dataset="GunPoint", nodes=n, epochs=20, num_features=2000))
    box: dict[str, Run] = {}

    def on_event(record: dict[str, Any]) -> None:
        if record["event"] == "node_registered" and record.get("registered") == n:
            box["run"].registered.set()

    def on_round(record: dict[str, Any]) -> None:
        run = box["run"]
        with run.round_seen:
            run.rounds.append(record["round"])
            run.round_seen.notify_all()

    def on_exit(name: str, code: int) -> None:
        run = box["run"]
        with run.exited:
            run.exits[name] = code
            run.exited.notify_all()

    coord = Coordinator(setup, CoordinatorOptions(node_port=0, feed_port=0, control_port=0,
                                                  deadline_s=1.0, down_after=1, final_timeout_s=5.0),
                        on_event=on_event, on_round=on_round)
    backend = ProcessBackend(connect=coord.endpoints.nodes, n_nodes=n, mem_limit_mb=mem_limit_mb,
                             checkpoint_dir=tmp_path / "checkpoints", log_dir=tmp_path / "logs",
                             on_exit=on_exit)
    run = box["run"] = Run(coord, backend)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            coord.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test
            errors.append(exc)
        finally:
            with run.round_seen:
                run.round_seen.notify_all()

    runner = threading.Thread(target=serve, name="coordinator", daemon=True)
    runner.start()
    try:
        backend.prepare()
        for i in range(n):
            backend.spawn(i, env=(env or {}).get(i))
        assert run.registered.wait(120), "the nodes did not register"
        yield run
    finally:
        coord.request_stop("test over")
        runner.join(timeout=60)
        backend.terminate(grace_s=5.0)
        coord.close()
    assert not runner.is_alive()
    assert not errors, errors


def test_children_are_separate_processes_each_with_its_own_memory_cap(tmp_path: Path) -> None:
    # node-00 holds 200 MB once registered; its cap is 120 MB of USS. A cap that counted the
    # zygote's shared pages (RSS ~90 MB before any work) would also stop its siblings.
    with zygote_run(tmp_path, 3, mem_limit_mb=120, env={0: {"ROCKNET_DEBUG_ALLOCATE_MB": "200"}}) as run:
        backend = run.backend
        pids = dict(backend.pids)
        assert len(set(pids.values())) == 3 and backend.zygote_pid not in pids.values()
        for pid in pids.values():
            child = psutil.Process(pid)
            assert child.ppid() == backend.zygote_pid  # forked by the zygote...
            assert os.getsid(pid) == pid  # ...each in its own session (Ctrl-C is the launcher's)
        assert run.wait_exit("node-00") == EXIT_MEMORY
        message = (tmp_path / "logs" / "node-00.log").read_text()
        assert "memory cap exceeded" in message and "--mem-limit-mb 120" in message
        # Its siblings run on (same cap, their own small USS) and the run goes on without it.
        at = run.rounds[-1] if run.rounds else 0
        run.wait_round(at + 5)
        assert alive(pids["node-01"]) and alive(pids["node-02"])
        codes = backend.exit_codes()
        assert codes["node-00"] == EXIT_MEMORY and codes["node-01"] is None and codes["node-02"] is None
        for name in ("node-01", "node-02"):
            uss = psutil.Process(pids[name]).memory_full_info().uss
            assert uss < 120 * 2**20
            assert f"node[{name}]" in (tmp_path / "logs" / f"{name}.log").read_text()  # its own log
        assert backend.poll_exits() == [("node-00", EXIT_MEMORY)]


def test_a_sigkilled_child_does_not_touch_its_siblings(tmp_path: Path) -> None:
    with zygote_run(tmp_path, 3) as run:
        run.wait_round(3)
        backend = run.backend
        pids = dict(backend.pids)
        backend.kill(1)  # returns once the zygote reported the exit
        assert backend.exit_codes()["node-01"] == -signal.SIGKILL
        assert backend.poll_exits() == [("node-01", -signal.SIGKILL)]
        assert not alive(pids["node-01"])
        at = run.rounds[-1]
        run.wait_round(at + 5)
        assert run.coord.state.phase == "running" and run.rounds[-1] >= at + 5
        assert alive(pids["node-00"]) and alive(pids["node-02"])
        assert alive(backend.zygote_pid or -1)


LAUNCHER = textwrap.dedent("""
    import json, sys, threading
    from pathlib import Path
    from coordinator.backends.processes import ProcessBackend
    backend = ProcessBackend(connect=sys.argv[1], n_nodes=3, log_dir=Path(sys.argv[2]))
    backend.start_all()
    print(json.dumps({"zygote": backend.zygote_pid, "nodes": list(backend.pids.values())}), flush=True)
    threading.Event().wait()
""")


def test_killing_the_launcher_leaves_no_zygote_and_no_node_behind(tmp_path: Path) -> None:
    # The nodes connect to a port nobody listens on: they wait (ZeroMQ retries) until stopped.
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, endpoint, str(tmp_path / "logs")],
                                env=env, stdout=subprocess.PIPE, text=True)
    procs: list[psutil.Process] = []
    try:
        assert launcher.stdout is not None
        line = launcher.stdout.readline()
        assert line, "the launcher did not start its nodes"
        started = json.loads(line)
        zygote = psutil.Process(started["zygote"])
        nodes = [psutil.Process(pid) for pid in started["nodes"]]
        procs = [zygote, *nodes]
        assert zygote.ppid() == launcher.pid
        assert all(node.ppid() == zygote.pid for node in nodes)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 20.0
        while any(_running(p) for p in procs):
            assert time.monotonic() < deadline, [p.pid for p in procs if _running(p)]
            time.sleep(0.05)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        for p in procs:
            if _running(p):
                p.kill()


def _running(proc: psutil.Process) -> bool:
    """Alive and the same process (is_running checks the start time: no PID reuse)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_without_a_zygote_nodes_are_plain_processes_and_exits_are_reported(tmp_path: Path) -> None:
    backend = ProcessBackend(connect="tcp://127.0.0.1:9", n_nodes=1, zygote=False, log_dir=tmp_path)
    backend._warmed = True  # the session fixture warmed the cache; no second warm-up process
    pid = backend.spawn(0)
    assert "-m node" in " ".join(psutil.Process(pid).cmdline())
    backend.kill(0)
    assert backend.poll_exits() == [("node-00", -signal.SIGKILL)]
    assert backend.exit_codes() == {"node-00": -signal.SIGKILL}
    backend.terminate(grace_s=1.0)


def test_nodes_die_with_a_sigkilled_zygote(tmp_path: Path) -> None:
    # The zygote cannot clean up after SIGKILL: its children's PR_SET_PDEATHSIG (SIGTERM) does.
    backend = ProcessBackend(connect="tcp://127.0.0.1:9", n_nodes=2, log_dir=tmp_path)
    try:
        backend.start_all()
        nodes = [psutil.Process(pid) for pid in backend.pids.values()]
        assert backend.zygote_pid is not None
        os.kill(backend.zygote_pid, signal.SIGKILL)
        deadline = time.monotonic() + 20.0
        while any(_running(p) for p in nodes):
            assert time.monotonic() < deadline, [p.pid for p in nodes if _running(p)]
            time.sleep(0.05)
    finally:
        backend.terminate(grace_s=0.5)
