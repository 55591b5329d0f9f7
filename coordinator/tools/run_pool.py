"""Runs in parallel "as far as the cores allow": one worker process per run, a bounded pool.

``rocknet run|compare|sweep --seeds K`` (and a sweep's N and datasets) hand their runs to
:func:`run_tasks`. Each :class:`Task` names the OS processes its run keeps busy
(:func:`processes_per_run`: N + 1 for a process-backend run of N devices, the coordinator
and its nodes; 1 for an in-process run); the pool starts a task while the processes of the
running tasks plus its own fit ``os.cpu_count()`` (one always runs, however large). With
``jobs=J`` (``--jobs J``) it runs up to J tasks at once whatever their size.

Every run is a fresh worker process, forked from the caller before the run opens any socket
(so a worker starts in milliseconds with the coordinator already imported, and a script
that calls the pool needs no ``if __name__ == "__main__"`` guard); a run in the pool is the
same run as one started alone: results do not depend on the order or the number of jobs
(tested: parallel == sequential, per seed).

Lifecycle, built on the one a single run has (:class:`~coordinator.service.signals.StopSignals`
inside :func:`~coordinator.service.launch.run_testbed`, nodes that die with their launcher):

* a worker runs in its own process group (Ctrl-C at the terminal reaches only the pool's
  process) and gets SIGTERM if its parent dies (``PR_SET_PDEATHSIG``; it is a
  direct child of the caller), so no worker outlives a killed caller;
* the first SIGINT/SIGTERM to the caller starts no further task and forwards SIGTERM to every
  running worker: each stops its run as ``rocknet run`` does (summary written);
* a second one forwards a second SIGTERM (each run is interrupted, its summary still
  written), waits up to :data:`KILL_AFTER_S` for the workers, kills what is left and raises
  :class:`RepetitionsStopped`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing import connection
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

from coordinator.service.signals import RunInterrupted, StopSignals
from protocol.parent_death import die_with_parent

log = logging.getLogger("rocknet.pool")

T = TypeVar("T")
#: Seconds the pool waits for its workers after a second signal before it kills them.
KILL_AFTER_S = 10.0


class RepetitionsStopped(RunInterrupted):
    """A signal stopped the pool; ``results`` holds what the finished tasks returned."""

    def __init__(self, message: str, results: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.results = list(results)


@dataclass(frozen=True)
class Task(Generic[T]):
    """One run for the pool: ``fn(*args)`` in a worker (``fn`` a module-level function, the
    args picklable), keeping ``processes`` OS processes busy; ``label`` names it in logs."""

    fn: Callable[..., T]
    args: tuple[Any, ...]
    processes: int = 1
    label: str = ""


@dataclass(frozen=True)
class _Outcome:
    """What a worker sends back: the task's value, or the exception it raised."""

    value: Any
    error: BaseException | None


def processes_per_run(nodes: int, in_process: bool) -> int:
    """OS processes one run keeps busy: N + 1 (coordinator and N nodes), 1 in-process."""
    return 1 if in_process else nodes + 1


def default_cpus() -> int:
    """The cores the pool fills (``os.cpu_count()``, at least 1)."""
    return max(1, os.cpu_count() or 1)


def concurrent_runs(processes: Sequence[int], jobs: int | None = None, cpus: int | None = None) -> int:
    """How many runs of these sizes run at once at most (the first ones, in order)."""
    if jobs is not None:
        return max(1, min(jobs, len(processes)))
    budget, used, count = cpus or default_cpus(), 0, 0
    for p in processes:
        if count and used + p > budget:
            break
        used, count = used + p, count + 1
    return max(1, count)


def _worker(conn: Connection, parent_pid: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """A worker's body: own process group, die with the parent, run, send the outcome."""
    for sig in StopSignals.SIGNALS:  # not the caller's handlers: the run installs its own
        signal.signal(sig, signal.SIG_DFL)
    os.setpgid(0, 0)
    die_with_parent(signal.SIGTERM)
    if os.getppid() != parent_pid:  # the caller died before the death signal was armed
        os._exit(1)
    try:
        outcome = _Outcome(fn(*args), None)
    except BaseException as exc:  # sent back and raised in the caller
        try:
            pickle.loads(pickle.dumps(exc))
            error: BaseException = exc
        except Exception:
            error = RuntimeError(f"{type(exc).__name__}: {exc}")
        outcome = _Outcome(None, error)
    conn.send(outcome)
    conn.close()


def _context() -> Any:
    return multiprocessing.get_context("fork")


@dataclass
class _Running:
    index: int
    process: Any
    conn: Connection
    processes: int


class _Pool:
    def __init__(self, tasks: Sequence[Task[Any]], jobs: int | None, cpus: int) -> None:
        if jobs is not None and jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {jobs}")
        self.tasks = list(tasks)
        self.jobs = jobs
        self.cpus = cpus
        self.ctx = _context()
        self.next = 0
        self.running: dict[Connection, _Running] = {}
        self.outcomes: list[_Outcome | None] = [None] * len(self.tasks)
        self.stop_reason: str | None = None
        self.failed = False

    def _fits(self, task: Task[Any]) -> bool:
        if not self.running:
            return True
        if self.jobs is not None:
            return len(self.running) < self.jobs
        return sum(r.processes for r in self.running.values()) + task.processes <= self.cpus

    def _start_due(self) -> None:
        while (self.next < len(self.tasks) and self.stop_reason is None and not self.failed
               and self._fits(self.tasks[self.next])):
            task = self.tasks[self.next]
            ours, theirs = self.ctx.Pipe(duplex=False)
            proc = self.ctx.Process(target=_worker, args=(theirs, os.getpid(), task.fn, task.args),
                                    name=f"rocknet-run-{task.label or self.next}")
            proc.start()
            theirs.close()  # the worker's end: EOF on ours once it exits
            log.info("started %s (pid %s)", task.label or self.next, proc.pid)
            self.running[ours] = _Running(self.next, proc, ours, task.processes)
            self.next += 1

    def stop(self, reason: str) -> None:
        """First signal: no further task; every running worker is asked to stop its run."""
        self.stop_reason = reason
        self._signal_all(signal.SIGTERM)

    def _signal_all(self, sig: int) -> None:
        for r in self.running.values():
            if r.process.pid is not None and r.process.exitcode is None:
                try:
                    os.kill(r.process.pid, sig)
                except ProcessLookupError:
                    pass

    def _collect(self, timeout_s: float | None) -> None:
        for conn in connection.wait(list(self.running), timeout=timeout_s):
            assert isinstance(conn, Connection)
            r = self.running.pop(conn)
            try:
                outcome: _Outcome | None = conn.recv()
            except (EOFError, OSError):
                outcome = None  # died before it could answer (killed)
            conn.close()
            r.process.join()
            self.outcomes[r.index] = outcome
            if outcome is None or outcome.error is not None:
                self.failed = self.failed or outcome is not None

    def drain(self) -> None:
        """After a second signal: interrupt every run, wait a bounded time, kill the rest."""
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + KILL_AFTER_S
        while self.running:
            left: float | None = deadline - time.monotonic()
            if left is not None and left <= 0:
                self._signal_all(signal.SIGKILL)
                left = None  # SIGKILL always ends them
            try:
                self._collect(left)
            except RunInterrupted:
                self._signal_all(signal.SIGTERM)


def run_tasks(tasks: Sequence[Task[T]], jobs: int | None = None, cpus: int | None = None,
              on_done: Callable[[int, T], None] | None = None) -> list[T]:
    """Run every task in worker processes; their values in task order.

    ``jobs``: runs at once (None: as many as ``cpus`` cores hold, see :func:`concurrent_runs`).
    ``on_done(index, value)`` is called in this process as each task ends, in the order they
    end. A task's exception is raised here once the running tasks ended (no further task
    starts after it); a signal raises :class:`RepetitionsStopped` (see the module docstring).
    """
    pool = _Pool(tasks, jobs, cpus or default_cpus())
    done: set[int] = set()

    def report() -> None:
        for i, o in enumerate(pool.outcomes):
            if o is not None and o.error is None and i not in done:
                done.add(i)
                if on_done is not None:
                    on_done(i, o.value)

    with StopSignals() as signals:
        signals.request_stop = pool.stop
        try:
            while pool.running or (pool.next < len(pool.tasks) and pool.stop_reason is None
                                   and not pool.failed):
                pool._start_due()
                pool._collect(None)
                report()
        except RunInterrupted:  # the second signal
            pool.drain()
            report()
            raise RepetitionsStopped(f"runs interrupted ({', '.join(signals.received)})",
                                     [o.value if o and o.error is None else None for o in pool.outcomes])
    for o in pool.outcomes:
        if o is not None and o.error is not None:
            raise o.error
    if pool.stop_reason is not None or any(o is None for o in pool.outcomes):
        raise RepetitionsStopped(f"runs stopped ({pool.stop_reason or 'a worker was killed'})",
                                 [o.value if o and o.error is None else None for o in pool.outcomes])
    return [o.value for o in pool.outcomes if o is not None]
