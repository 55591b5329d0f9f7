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
(:class:`~coordinator.backends.zygote_client.ZygoteClient`); a zygote started before the
backend (``rocknet run`` starts it first thing: :func:`start_run_zygote`) is handed in as
``prestarted``. The zygote reports every child's exit at once, so
:meth:`ProcessBackend.poll_exits` (or ``on_exit``) tells the caller that a node died.
``zygote=False`` starts each node as ``python -m node`` (the fallback, and what containers do).

PR_SET_PDEATHSIG fires when the *thread* that started a process ends: start the backend (its
:meth:`~ProcessBackend.prepare`, or the first :meth:`~ProcessBackend.start`) from a thread that
lives as long as the run. Restarts go through the zygote, so they may come from any thread.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.backends.interface import node_name
from coordinator.backends.zygote_client import (
    SPAWN_TIMEOUT_S,
    ZYGOTE_READY_TIMEOUT_S,
    SpawnRequest,
    ZygoteClient,
    ZygoteError,
    node_env,
    start_run_zygote,
)

log = logging.getLogger("rocknet.launcher")

def warm_numba_cache(timeout_s: float = 600.0) -> None:
    """Compile the node kernels once before N processes would all compile them at once."""
    subprocess.run(
        [sys.executable, "-m", "node.offline.warmup"], env=node_env(), check=True, timeout=timeout_s,
        stdout=subprocess.DEVNULL,
    )


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


__all__ = ["SPAWN_TIMEOUT_S", "ZYGOTE_READY_TIMEOUT_S", "ProcessBackend", "SpawnRequest", "ZygoteClient",
           "ZygoteError", "node_env", "start_run_zygote", "warm_numba_cache"]
