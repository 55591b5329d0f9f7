"""The zygote: one pre-warmed parent that forks every local device process.

``python -m node.zygote [--parent PID] [--tag TEXT]`` imports the node code, loads the numba
kernels from the on-disk cache (compiling them once if the cache is cold), freezes its heap and
then serves spawn requests on stdin, one JSON object a line (a fork server, like
multiprocessing's ``forkserver`` with ``preload``)::

    -> {"spawn": "node-03", "id": 7, "argv": ["--connect", ...], "log": "/x/node-03.log",
        "env": {"ROCKNET_DEBUG_ALLOCATE_MB": "400"}}
    <- {"spawned": "node-03", "id": 7, "pid": 12345}      (or {"error": "...", "id": 7})
    <- {"exit": "node-03", "pid": 12345, "code": -9}      (when a child ends; -N: signal N)

    -> {"spawn": "reference", "id": 8, "main": "reference", "argv": [...], "log": null}
    -> {"log": "/x/logs/zygote.log", "id": 9}   <- {"logging": "/x/logs/zygote.log", "id": 9}

``main`` picks the child's entry point from :data:`ENTRY_POINTS` (default ``node``: a device;
``reference``: the centralized reference, ``node.offline.reference``), so the reference too
starts warm instead of paying its own interpreter, numba import and kernel loading (~0.5 s CPU).
A ``log`` request moves the zygote's own stderr to that file, with what it wrote so far: the
launcher may start the zygote before the run directory may be touched (``rocknet run`` starts
it first thing, so that its loading overlaps the launcher's own imports and setup), and give it
its log file once the setup was accepted.

It starts with ``{"ready": true, "pid": ..., "warm_s": ...}``. Every child is its own OS
process (own PID, session, socket, log file, checkpoint and memory cap) that runs its entry
point's ``main(argv)`` (a node: :func:`node.process.main`); it shares the zygote's pages
copy-on-write, which is why the node's memory cap counts USS (``node/watchdog.py``).

After ``fork`` the child (:func:`_child`), before anything else: starts its own session
(Ctrl-C reaches only the launcher), sets ``PR_SET_PDEATHSIG`` (SIGTERM when the zygote dies),
resets the signal handlers the zygote installed, closes every inherited file descriptor (the
request pipe included) and points stdout/stderr at its own log file, applies its env, reseeds
``random`` and ``numpy.random`` and re-enables the GC. No ZeroMQ context exists in the zygote:
the child creates its own (DESIGN 5, "fork after import").

The zygote dies with its launcher: ``PR_SET_PDEATHSIG`` (SIGTERM) when the launcher's thread
that started it ends, and it also stops when its stdin closes; either way it stops its
children (SIGTERM, then SIGKILL after a grace period) before it exits.
"""

from __future__ import annotations

import os

# Before numba is imported (here or by anything below): one thread per node, and the
# fork-safe threading layer (OpenMP/TBB layers are not fork-safe).
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import selectors  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from typing import Any  # noqa: E402

from protocol.parent_death import die_with_parent  # noqa: E402

log = logging.getLogger("rocknet.zygote")

#: Seconds the zygote gives its children to stop after SIGTERM when it is told to go.
STOP_GRACE_S = 3.0
#: Signals blocked around a fork (see :meth:`Zygote` spawn).
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}
#: What a spawn request's ``main`` may name: the module whose ``main(argv)`` a child runs.
ENTRY_POINTS = {"node": "node.process", "reference": "node.offline.reference"}


def preload() -> float:
    """Import everything a node needs and load its numba kernels; returns the seconds taken."""
    started = time.perf_counter()
    from protocol.numba_startup import load_array_support

    load_array_support()  # before any kernel loads: numba without scipy's BLAS (~0.1 s)
    import numpy  # noqa: F401
    import psutil  # noqa: F401
    import zmq  # noqa: F401  (the module only: a context must never cross the fork)

    for module in ENTRY_POINTS.values():
        importlib.import_module(module)
    from node.offline.warmup import warm_up

    warm_up()
    return time.perf_counter() - started


class Zygote:
    """The serving loop: requests on fd ``req_fd``, replies and exit notices on ``out_fd``."""

    def __init__(self, req_fd: int, out_fd: int) -> None:
        self.req_fd = req_fd
        self.out_fd = out_fd
        self.children: dict[int, str] = {}  # pid -> name
        self._buffer = b""
        self._stop = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        self.selector = selectors.DefaultSelector()

    # ------------------------------------------------------------------ wire
    def reply(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj) + "\n").encode()
        try:
            while data:
                data = data[os.write(self.out_fd, data):]
        except (BrokenPipeError, OSError):
            self._stop = True  # the launcher is gone

    # ------------------------------------------------------------------ loop
    def serve(self) -> None:
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the selector via the wakeup fd
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the launcher's
        signal.signal(signal.SIGHUP, self._on_stop_signal)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        self.selector.register(self.req_fd, selectors.EVENT_READ, "req")
        self.selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stop:
                for key, _ in self.selector.select(timeout=1.0):
                    if key.data == "wake":
                        try:
                            while os.read(self._wake_r, 512):
                                pass
                        except BlockingIOError:
                            pass
                    else:
                        self._read_requests()
                self._reap()
        finally:
            self.stop_children()

    def _on_stop_signal(self, *_: Any) -> None:
        self._stop = True

    def _read_requests(self) -> None:
        try:
            chunk = os.read(self.req_fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:  # stdin closed: the launcher is done (or gone)
            self._stop = True
            return
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            if line.strip():
                self._handle(line)

    def _handle(self, line: bytes) -> None:
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("a request is a JSON object")
        except ValueError as exc:
            self.reply({"error": f"bad request: {exc}", "id": None})
            return
        if "spawn" in req:
            self._spawn(req)
        elif "log" in req:
            self._log_to(req)
        elif req.get("stop"):
            self._stop = True
        elif req.get("ping"):
            self.reply({"pong": True, "id": req.get("id"), "children": len(self.children)})
        else:
            self.reply({"error": f"unknown request {sorted(req)}", "id": req.get("id")})

    def _log_to(self, req: dict[str, Any]) -> None:
        """Move stderr (and fd 1, see :func:`main`) to the file ``req["log"]``, copying what
        was written so far when stderr is a regular file (the launcher's temporary one)."""
        path = str(req["log"])
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            self.reply({"error": f"cannot log to {path}: {exc}", "id": req.get("id")})
            return
        sys.stderr.flush()
        try:
            if os.lseek(2, 0, os.SEEK_CUR) > 0:  # a regular file with content: keep it
                os.lseek(2, 0, os.SEEK_SET)
                while chunk := os.read(2, 65536):
                    os.write(fd, chunk)
        except OSError:  # a pipe or a terminal: nothing to copy
            pass
        os.dup2(fd, 2)
        os.dup2(fd, 1)
        os.close(fd)
        self.reply({"logging": path, "id": req.get("id")})

    def _spawn(self, req: dict[str, Any]) -> None:
        name = str(req["spawn"])
        entry = ENTRY_POINTS.get(str(req.get("main", "node")))
        if entry is None:
            self.reply({"error": f"unknown entry point {req.get('main')!r} (one of {sorted(ENTRY_POINTS)})",
                        "id": req.get("id"), "spawn": name})
            return
        argv = [str(a) for a in req.get("argv", [])]
        log_path = req.get("log")
        env = {str(k): str(v) for k, v in (req.get("env") or {}).items()}
        sys.stdout.flush()
        sys.stderr.flush()
        gc.freeze()  # whatever the loop allocated since the last fork joins the shared heap
        # Stop signals stay pending across the fork until the child has reset the zygote's
        # handlers: a SIGTERM in between (the zygote dying at once) must kill the child, not
        # run the zygote's handler in it.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        zygote_pid = os.getpid()  # taken before the fork: the child may start after we died
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
            self.reply({"error": f"fork failed: {exc}", "id": req.get("id"), "spawn": name})
            return
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        if pid == 0:  # the child: never returns
            code = 1
            try:
                code = _child(self, zygote_pid, entry, argv, log_path, env)
            except SystemExit as exc:  # argparse
                code = exc.code if isinstance(exc.code, int) else 2
            except BaseException:  # noqa: BLE001 - report and exit, never back into the loop
                traceback.print_exc()
            finally:
                try:
                    logging.shutdown()
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        self.children[pid] = name
        self.reply({"spawned": name, "id": req.get("id"), "pid": pid})

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            name = self.children.pop(pid, None)
            if name is None:
                continue
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.waitstatus_to_exitcode(status)
            self.reply({"exit": name, "pid": pid, "code": code})

    def stop_children(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM every child still running, then SIGKILL after ``grace_s``; reap them all."""
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while self.children and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.02)
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            name = self.children.pop(pid, None)
            if name is not None:
                code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.waitstatus_to_exitcode(status)
                self.reply({"exit": name, "pid": pid, "code": code})


def _child(zygote: Zygote, zygote_pid: int, entry: str, argv: list[str], log_path: str | None,
           env: dict[str, str]) -> int:
    """Turn a fresh fork of the zygote (``zygote_pid``, taken before the fork) into one
    process running ``entry``'s ``main(argv)`` (a node, or the reference); returns its exit
    code."""
    os.setsid()  # its own session: Ctrl-C on the launcher's terminal does not reach it
    die_with_parent(signal.SIGTERM)
    if os.getppid() != zygote_pid:  # the zygote died before prctl took effect
        return 1
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh interpreter
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    # Its own stdio: stdin from /dev/null, stdout and stderr to its log file.
    devnull = os.open(os.devnull, os.O_RDWR)
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    else:
        out = devnull
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    # Every other inherited descriptor (the request/reply pipes, the selector, the wakeup
    # pipe...) goes: the child owns nothing of the zygote's but its memory.
    zygote.selector = None  # type: ignore[assignment]
    os.closerange(3, _max_fd())
    os.environ.update(env)
    # Reseed: every child would otherwise draw the zygote's random sequence.
    random.seed()
    try:
        import numpy as np

        np.random.seed(int.from_bytes(os.urandom(4), "little"))
    except ImportError:
        pass
    for handler in list(logging.root.handlers):
        logging.root.removeHandler(handler)
    # The zygote's objects stay frozen (a collection here does not touch their pages);
    # what this node allocates is collected as usual.
    gc.enable()
    return int(importlib.import_module(entry).main(argv))


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 4096


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m node.zygote", description=__doc__.splitlines()[0])
    p.add_argument("--parent", type=int, default=0,
                   help="PID of the launcher: exit at once if it is already gone")
    p.add_argument("--tag", default="",
                   help="free text kept in this process's command line (and its children's), "
                        "so that a run's processes can be found with ps")
    a = p.parse_args(argv)
    die_with_parent(signal.SIGTERM)
    if a.parent and os.getppid() != a.parent:
        return 1  # the launcher died before prctl took effect
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s zygote %(levelname)s %(message)s")
    # The replies get their own descriptor; fd 1 becomes stderr, so that a stray print in
    # some import can never corrupt the protocol.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    gc.disable()  # no collection while loading: the heap is frozen below
    try:
        warm_s = preload()
    except BaseException as exc:  # noqa: BLE001 - the launcher must see why
        Zygote(0, out_fd).reply({"error": f"preload failed: {type(exc).__name__}: {exc}", "id": None})
        raise
    gc.collect()
    # Everything loaded so far stays out of the GC's reach: a collection in a child does not
    # write to (and so copy) the shared pages of the zygote's objects.
    gc.freeze()
    zygote = Zygote(0, out_fd)
    log.info("ready: %.2f s to load the node code and kernels", warm_s)
    zygote.reply({"ready": True, "pid": os.getpid(), "warm_s": round(warm_s, 3)})
    zygote.serve()
    return 0


def _exit_now(code: int) -> None:
    """End the zygote without the interpreter's teardown of numba, LLVM and the rest (~30 ms
    of CPU that the launcher waits for at the end of every run): its children are reaped and
    its replies written by now; only the log needs flushing."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
