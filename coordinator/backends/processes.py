"""The local-process backend: one OS process per device on this machine (the default).

Every node is its own OS process with ``NUMBA_NUM_THREADS=1``, its own PID, session (Ctrl-C
reaches only the launcher, which then stops the nodes in order so that their final state is
collected), socket, log file, checkpoint and memory cap (``--mem-limit-mb``, a USS watchdog),
and none outlives a killed launcher. :meth:`ProcessBackend.terminate` stops them all (wait,
SIGTERM, SIGKILL).

By default (``zygote=True``) the nodes are forked by a zygote (``python -m node.zygote``, see
``node/zygote.py``): one pre-warmed parent that has imported the node code and loaded the
numba kernels once, so that a node starts in milliseconds instead of seconds and shares those
read-only pages with its siblings. This module never imports ``node``: it starts the zygote as
a subprocess and talks to it over its stdin/stdout, one JSON object a line
(:class:`ZygoteClient`). The zygote reports every child's exit at once, so
:meth:`ProcessBackend.poll_exits` (or ``on_exit``) tells the caller that a node died.
``zygote=False`` starts each node as ``python -m node`` (the fallback, and what containers do).

PR_SET_PDEATHSIG fires when the *thread* that started a process ends: start the backend (its
:meth:`~ProcessBackend.prepare`, or the first :meth:`~ProcessBackend.start`) from a thread that
lives as long as the run. Restarts go through the zygote, so they may come from any thread.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from coordinator.backends.interface import node_name

log = logging.getLogger("rocknet.launcher")

#: Seconds a zygote may take to import and load (or, with a cold cache, compile) the kernels.
ZYGOTE_READY_TIMEOUT_S = 600.0
#: Seconds to wait for the zygote's answer to one spawn request.
SPAWN_TIMEOUT_S = 30.0


def node_env() -> dict[str, str]:
    """Environment of a node process: one numba/BLAS thread each (N nodes share the cores)."""
    env = dict(os.environ)
    env.update({
        "NUMBA_NUM_THREADS": "1",
        "NUMBA_THREADING_LAYER": "workqueue",  # fork-safe (the zygote forks after import)
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    })
    return env


def warm_numba_cache(timeout_s: float = 600.0) -> None:
    """Compile the node kernels once before N processes would all compile them at once."""
    subprocess.run(
        [sys.executable, "-m", "node.offline.warmup"], env=node_env(), check=True, timeout=timeout_s,
        stdout=subprocess.DEVNULL,
    )


class ZygoteError(RuntimeError):
    """The zygote did not start, died, or refused a request."""


@dataclass(frozen=True)
class SpawnRequest:
    """One child for :meth:`ZygoteClient.spawn_many`: its name, ``main(argv)``, log file and
    environment on top of the node environment."""

    name: str
    argv: list[str]
    log_path: Path | None = None
    env: dict[str, str] | None = None
    main: str = "node"  # an entry point of node/zygote.py's ENTRY_POINTS


class ZygoteClient:
    """The launcher's end of one zygote process: spawn requests out, replies and exits in."""

    def __init__(self, tag: str = "", log_path: Path | None = None,
                 on_exit: Callable[[str, int, int], None] | None = None) -> None:
        """Start the zygote (it loads in the background: :meth:`wait_ready`).

        ``log_path``: its stderr; None keeps what it writes in an unnamed temporary file
        until :meth:`log_to` names the log (a zygote started before the run directory may
        change, see :func:`start_run_zygote`), so that nothing of it is lost.
        """
        self.on_exit = on_exit  # (name, pid, code), called on the reader thread
        self._cond = threading.Condition()
        self._replies: dict[int, dict[str, Any]] = {}
        self._codes: dict[int, int] = {}  # pid -> exit code of every child that ended
        self._next_id = 0
        self._ready: dict[str, Any] | None = None
        self._dead = False
        self._write_lock = threading.Lock()
        err: IO[bytes]
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            err = open(log_path, "ab")
        else:
            err = tempfile.TemporaryFile(prefix="rocknet-zygote-")
        cmd = [sys.executable, "-m", "node.zygote", "--parent", str(os.getpid())]
        if tag:
            cmd += ["--tag", tag]
        with err:  # the zygote holds its own copy of the descriptor
            self.proc = subprocess.Popen(cmd, env=node_env(), stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, start_new_session=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin: IO[bytes] = self.proc.stdin
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,),
                                        name="zygote-reader", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return not self._dead and self.proc.poll() is None

    # ------------------------------------------------------------------ reading
    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            try:
                msg = json.loads(raw)
            except ValueError:
                log.warning("zygote: unreadable line %r", raw[:200])
                continue
            callback: tuple[str, int, int] | None = None
            with self._cond:
                if msg.get("ready"):
                    self._ready = msg
                elif "exit" in msg:
                    self._codes[int(msg["pid"])] = int(msg["code"])
                    callback = (str(msg["exit"]), int(msg["pid"]), int(msg["code"]))
                elif msg.get("id") is not None:
                    self._replies[int(msg["id"])] = msg
                elif "error" in msg:  # preload failed, or a request it could not read
                    self._ready = msg
                self._cond.notify_all()
            if callback is not None and self.on_exit is not None:
                try:
                    self.on_exit(*callback)
                except Exception:  # noqa: BLE001 - a caller's bug must not stop the reader
                    log.exception("on_exit callback failed")
        with self._cond:
            self._dead = True
            self._cond.notify_all()

    # ------------------------------------------------------------------ requests
    def wait_ready(self, timeout_s: float = ZYGOTE_READY_TIMEOUT_S) -> dict[str, Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: self._ready is not None or self._dead, timeout_s):
                raise ZygoteError(f"the zygote (pid {self.pid}) was not ready within {timeout_s:.0f} s")
            ready = self._ready
        if ready is None or not ready.get("ready"):
            why = ready.get("error") if ready else f"exited with {self.proc.wait()}"
            raise ZygoteError(f"the zygote did not start: {why}")
        return ready

    def _send(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj) + "\n").encode()
        with self._write_lock:
            try:
                self._stdin.write(data)
                self._stdin.flush()
            except (BrokenPipeError, ValueError, OSError) as exc:
                raise ZygoteError(f"the zygote (pid {self.pid}) is gone: {exc}") from exc

    def _request_id(self) -> int:
        with self._cond:
            request_id = self._next_id
            self._next_id += 1
        return request_id

    def _reply(self, request_id: int, what: str, timeout_s: float) -> dict[str, Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: request_id in self._replies or self._dead, timeout_s):
                raise ZygoteError(f"the zygote did not answer {what} within {timeout_s:.0f} s")
            reply = self._replies.pop(request_id, None)
        if reply is None:
            raise ZygoteError(f"the zygote died during {what}")
        return reply

    def log_to(self, path: Path, timeout_s: float = SPAWN_TIMEOUT_S) -> None:
        """Move the zygote's stderr to ``path`` (with what it wrote before, see ``__init__``)."""
        self.wait_ready()
        request_id = self._request_id()
        self._send({"log": str(path), "id": request_id})
        reply = self._reply(request_id, f"the move of its log to {path}", timeout_s)
        if "logging" not in reply:
            raise ZygoteError(f"the zygote could not log to {path}: {reply.get('error')}")

    def spawn(self, name: str, argv: list[str], log_path: Path | None = None,
              env: dict[str, str] | None = None, timeout_s: float = SPAWN_TIMEOUT_S,
              main: str = "node") -> int:
        """Fork one child running ``main``'s ``main(ARGV)`` (``node``: ``python -m node
        ARGV``; ``reference``: the centralized reference, see ``node/zygote.py``); its PID."""
        return self.spawn_many([SpawnRequest(name, argv, log_path, env, main)], timeout_s)[0]

    def spawn_many(self, requests: list[SpawnRequest], timeout_s: float = SPAWN_TIMEOUT_S) -> list[int]:
        """Fork one child per request; returns their PIDs in order. Every request is sent
        before the first answer is awaited: the zygote forks them back to back instead of
        waiting for this thread to wake up between two (~5 ms a node on a loaded host)."""
        self.wait_ready()
        ids = []
        for req in requests:
            ids.append(self._request_id())
            self._send({"spawn": req.name, "id": ids[-1], "argv": req.argv, "main": req.main,
                        "log": None if req.log_path is None else str(req.log_path), "env": req.env or {}})
        deadline = time.monotonic() + timeout_s
        pids = []
        for req, request_id in zip(requests, ids):
            reply = self._reply(request_id, f"the spawn of {req.name}", max(deadline - time.monotonic(), 0.0))
            if "pid" not in reply:
                raise ZygoteError(f"the zygote could not spawn {req.name}: {reply.get('error')}")
            pids.append(int(reply["pid"]))
        return pids

    def exit_code(self, pid: int) -> int | None:
        with self._cond:
            return self._codes.get(pid)

    def wait_exit(self, pids: list[int], timeout_s: float | None) -> bool:
        """Wait until every one of ``pids`` has ended (or the zygote is gone); True if all did."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._dead or all(p in self._codes for p in pids), timeout_s)

    def close(self, timeout_s: float = 10.0, terminate: bool = False) -> None:
        """Close its stdin (it stops what is left of its children and exits); reap it.
        Idempotent. ``terminate``: SIGTERM it as well, for a zygote that may still be loading
        (it reads its stdin only once it is warm; a run that ends before needs it gone now)."""
        if terminate and self.proc.poll() is None:
            try:
                self.proc.terminate()
            except ProcessLookupError:
                pass
        with self._write_lock:
            try:
                self._stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5.0)


def start_run_zygote(out_dir: Path) -> ZygoteClient:
    """Start the zygote of a local run in ``out_dir`` before the run is set up: it loads the
    node code and kernels (~0.5 s of one core) while the launcher imports and builds the
    setup on the other. Nothing under ``out_dir`` is touched (its log waits in a temporary
    file, see :meth:`ZygoteClient.log_to`); its command line names ``out_dir`` as a backend's
    would. Hand it to :class:`ProcessBackend` (``prestarted``), or close it
    (``close(terminate=True)``) if the run never gets that far. Start it from a thread that
    lives as long as the run (``PR_SET_PDEATHSIG``, see the module docstring)."""
    return ZygoteClient(tag=str(Path(out_dir) / "checkpoints"))


@dataclass
class ProcessBackend:
    """N node processes on this machine (a :class:`~coordinator.backends.interface.NodeBackend`)."""

    connect: str
    n_nodes: int
    checkpoint_dir: Path | None = None
    mem_limit_mb: int = 1024
    log_dir: Path | None = None
    curve_dir: Path | None = None
    zygote: bool = True  # fork the nodes from a pre-warmed zygote (False: ``python -m node``)
    #: Called as ``on_exit(name, exit_code)`` when a node ends (zygote: at once, on its reader
    #: thread; without a zygote: from :meth:`poll_exits`).
    on_exit: Callable[[str, int], None] | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)  # zygote=False
    pids: dict[str, int] = field(default_factory=dict)  # name -> PID of its latest process
    #: A zygote started before this backend (:func:`start_run_zygote`): used (and closed by
    #: :meth:`terminate`) instead of starting one.
    prestarted: ZygoteClient | None = field(default=None, repr=False)
    _zygote: ZygoteClient | None = field(default=None, init=False, repr=False)
    _exits: list[tuple[str, int]] = field(default_factory=list, init=False, repr=False)
    _reported: set[int] = field(default_factory=set, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _warmed: bool = field(default=False, init=False, repr=False)

    def name(self, index: int) -> str:
        return node_name(index)

    @property
    def _node_names(self) -> set[str]:
        return {self.name(i) for i in range(self.n_nodes)}

    # ------------------------------------------------------------------ starting
    def prepare(self) -> None:
        """Get ready to start nodes: start the zygote and wait until it is warm (without a
        zygote: warm numba's on-disk cache once). Idempotent; :meth:`start` calls it."""
        if not self.zygote:
            if not self._warmed:
                warm_numba_cache()
                self._warmed = True
            return
        if self._zygote is not None and self._zygote.alive:
            return
        zlog = None if self.log_dir is None else self.log_dir / "zygote.log"
        if self.prestarted is not None and self._zygote is None:
            self._zygote, self.prestarted = self.prestarted, None
            self._zygote.on_exit = self._on_zygote_exit
            ready = self._zygote.wait_ready()
            if zlog is not None:
                self._zygote.log_to(zlog)
        else:
            tag = str(self.checkpoint_dir or self.log_dir or "")
            self._zygote = ZygoteClient(tag=tag, log_path=zlog, on_exit=self._on_zygote_exit)
            ready = self._zygote.wait_ready()
        log.info("zygote %d ready (%.1f s to load the node code and kernels)",
                 ready["pid"], ready.get("warm_s", 0.0))

    @property
    def zygote_client(self) -> ZygoteClient | None:
        """The zygote that forks the nodes (None without one, or before :meth:`prepare`)."""
        return self._zygote

    @property
    def zygote_pid(self) -> int | None:
        """PID of the zygote (None without one, or before :meth:`prepare`)."""
        return None if self._zygote is None else self._zygote.pid

    def node_argv(self, index: int) -> list[str]:
        """The ``python -m node`` arguments of node ``index``."""
        argv = ["--connect", self.connect, "--name", self.name(index),
                "--mem-limit-mb", str(self.mem_limit_mb)]
        if self.checkpoint_dir is not None:
            argv += ["--checkpoint-dir", str(self.checkpoint_dir)]
        if self.curve_dir is not None:
            argv += ["--curve-dir", str(self.curve_dir)]
        return argv

    def start(self, index: int) -> None:
        self.spawn(index)

    def spawn(self, index: int, env: dict[str, str] | None = None) -> int:
        """Start (or restart) node ``index``, with ``env`` on top of the node environment; a
        restarted node keeps its name and checkpoint. Returns its PID."""
        self.prepare()
        name = self.name(index)
        log_path = self._log_path(name)
        if self._zygote is not None:
            pid = self._zygote.spawn(name, self.node_argv(index), log_path, env)
        else:
            pid = self._popen(name, index, log_path, env).pid
        with self._lock:
            self.pids[name] = pid
        return pid

    def _popen(self, name: str, index: int, log_path: Path | None,
               env: dict[str, str] | None) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "node", *self.node_argv(index), "--parent-death"]
        out: Any = subprocess.DEVNULL if log_path is None else open(log_path, "ab")
        proc = subprocess.Popen(cmd, env={**node_env(), **(env or {})}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        if out is not subprocess.DEVNULL:
            out.close()
        self.processes[name] = proc
        return proc

    def _log_path(self, name: str) -> Path | None:
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self.log_dir / f"{name}.log"

    def start_all(self) -> None:
        """Start every node (with a zygote: all spawn requests at once, see
        :meth:`ZygoteClient.spawn_many`)."""
        self.prepare()
        if self._zygote is None:
            for i in range(self.n_nodes):
                self.start(i)
            return
        names = [self.name(i) for i in range(self.n_nodes)]
        pids = self._zygote.spawn_many([SpawnRequest(name, self.node_argv(i), self._log_path(name))
                                        for i, name in enumerate(names)])
        with self._lock:
            self.pids.update(zip(names, pids))

    # ------------------------------------------------------------------ exits
    def _on_zygote_exit(self, name: str, pid: int, code: int) -> None:
        if name not in self._node_names:  # another child of the zygote (the reference)
            return
        with self._lock:
            if pid in self._reported:
                return
            self._reported.add(pid)
            self._exits.append((name, code))
        if self.on_exit is not None:
            self.on_exit(name, code)

    def _code(self, name: str) -> int | None:
        pid = self.pids.get(name)
        if pid is None:
            return None
        if self._zygote is not None:
            return self._zygote.exit_code(pid)
        proc = self.processes.get(name)
        return None if proc is None else proc.poll()

    def poll_exits(self) -> list[tuple[str, int]]:
        """The ``(name, exit_code)`` of every node process that ended since the last call
        (a negative code: killed by that signal)."""
        if self._zygote is None:
            for name, proc in list(self.processes.items()):
                code = proc.poll()
                if code is not None and proc.pid not in self._reported:
                    self._reported.add(proc.pid)
                    with self._lock:
                        self._exits.append((name, code))
                    if self.on_exit is not None:
                        self.on_exit(name, code)
        with self._lock:
            exits, self._exits = self._exits, []
        return exits

    def exit_codes(self) -> dict[str, int | None]:
        return {name: self._code(name) for name in list(self.pids)}

    # ------------------------------------------------------------------ stopping
    def _signal(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to node ``index`` and wait until it has ended."""
        name = self.name(index)
        pid = self.pids.get(name)
        if pid is None or self._code(name) is not None:
            return
        if self._zygote is not None:
            self._signal(pid, sig)
            self._zygote.wait_exit([pid], timeout_s=None if sig == signal.SIGKILL else 60.0)
        else:
            proc = self.processes[name]
            proc.send_signal(sig)
            proc.wait()

    def _running(self) -> dict[str, int]:
        return {name: pid for name, pid in list(self.pids.items()) if self._code(name) is None}

    def terminate(self, grace_s: float = 10.0) -> None:
        """Stop every node: wait for clean exits, then SIGTERM, then SIGKILL; then the zygote."""
        if self.prestarted is not None:  # never used: no node of it to wait for
            self.prestarted.close(terminate=True)
            self.prestarted = None
        if self._zygote is None:
            self._terminate_popen(grace_s)
            return
        zygote = self._zygote
        pids = list(self._running().values())
        if not zygote.wait_exit(pids, timeout_s=grace_s):
            for pid in self._running().values():
                self._signal(pid, signal.SIGTERM)
            if not zygote.wait_exit(pids, timeout_s=3.0):
                for pid in self._running().values():
                    self._signal(pid, signal.SIGKILL)
                zygote.wait_exit(pids, timeout_s=10.0)
        zygote.close()

    def _terminate_popen(self, grace_s: float) -> None:
        deadline = time.monotonic() + grace_s
        for proc in self.processes.values():
            left = deadline - time.monotonic()
            try:
                proc.wait(timeout=max(left, 0.01))
            except subprocess.TimeoutExpired:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
