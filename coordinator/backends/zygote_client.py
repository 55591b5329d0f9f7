"""The launcher's end of the zygote (``node/zygote.py``): start it, ask it to fork, hear exits.

The zygote is a subprocess (``python -m node.zygote``; the coordinator never imports ``node``)
that talks one JSON object a line over its stdin/stdout. :class:`ZygoteClient` sends spawn
requests (:meth:`~ZygoteClient.spawn_many` sends them all before awaiting the answers), and
its reader thread collects the answers and every child's exit notice. :func:`start_run_zygote`
starts the zygote of a run before the run is set up (``rocknet run`` does it first thing):
it writes nothing under the run directory until it is told where its log goes.

PR_SET_PDEATHSIG fires when the *thread* that started the zygote ends: start it from a thread
that lives as long as the run.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

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
