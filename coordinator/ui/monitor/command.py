"""``rocknet monitor``: follow a running coordinator, as a live dashboard or as JSON lines."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import TextIO

from rich.console import Console, RenderableType
from rich.live import Live

from coordinator.ui.control_client import ControlTimeout
from coordinator.ui.feed_client import EndpointError, resolve_endpoints
from coordinator.ui.monitor.follow import CoordinatorGone, Follower, SnapshotRefused
from coordinator.ui.monitor.output import Output, write_line
from coordinator.ui.monitor.render import View, render_dashboard
from coordinator.ui.monitor.state import MonitorState, number
from coordinator.ui.monitor.text import fmt

#: Dashboard refreshes per second.
REFRESH_HZ = 4.0
#: Seconds without any answer from the coordinator before ``--jsonl`` gives up.
LOST_AFTER_S = 30.0
#: Seconds each page of healthy nodes stays on screen when not all nodes fit.
PAGE_S = 3.0


def _run_jsonl(follower: Follower, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    count = int(args.count or 0)
    rounds = 0

    def emit(outputs: Sequence[Output]) -> bool:
        nonlocal rounds
        for item in outputs:
            write_line(item, out)
            if item.kind == "round":
                rounds += 1
                if count and rounds >= count:
                    out.flush()
                    return True
        out.flush()
        return False

    if emit(follower.attach(args.wait, err)):
        return 0
    state = follower.state
    while not state.finished:
        if emit(follower.poll(0.5)):
            return 0
        if state.lost_since_s is not None and follower.clock() - state.lost_since_s > LOST_AFTER_S:
            print(f"rocknet monitor: the coordinator at {follower.endpoints.control} stopped "
                  f"answering {LOST_AFTER_S:.0f} s ago; giving up", file=err)
            return 1
    if count and rounds < count:
        print(f"rocknet monitor: the run ended ({state.run.get('phase')}) after {rounds} of "
              f"{count} rounds", file=err)
        return 1
    return 0


def _run_dashboard(follower: Follower, args: argparse.Namespace, err: TextIO) -> int:
    follower.attach(args.wait, err)
    console = Console()
    state = follower.state
    count = int(args.count or 0)
    period = 1.0 / REFRESH_HZ
    start = follower.clock()

    def frame() -> RenderableType:
        now = follower.clock()
        size = console.size
        return render_dashboard(state, View(width=size.width, height=size.height,
                                            page=int((now - start) // PAGE_S), now_s=now))

    if not console.is_terminal:
        print("rocknet monitor: stdout is not a terminal: the dashboard is printed once, when "
              "the monitor stops (use --jsonl for a stream of JSON lines)", file=err)
        try:
            while not (count and state.rounds_applied >= count):
                follower.poll(period)
        finally:
            console.print(frame())
        return 0
    with Live(frame(), console=console, screen=True, auto_refresh=False,
              redirect_stderr=False) as live:
        next_frame = follower.clock()
        while not (count and state.rounds_applied >= count):
            follower.poll(max(0.0, next_frame - follower.clock()))
            if follower.clock() >= next_frame:
                live.update(frame(), refresh=True)
                next_frame = follower.clock() + period
    return 0


def _goodbye(state: MonitorState, out: TextIO) -> None:
    acc = state.accuracy
    print(f"rocknet monitor: {state.run.get('phase', '?')} at round {max(state.round, 0)}"
          f"/{state.run.get('rounds', '?')}, train acc {fmt(number(acc.get('train_accuracy')), '.3f')}"
          f", eval acc {fmt(number(acc.get('eval_accuracy')), '.3f')}", file=out)


@contextlib.contextmanager
def _ctrl_c_quits() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt here even if whoever started the monitor ignored
    SIGINT (a background job of a script, ``nohup``: Python then keeps it ignored and the
    dashboard could not be quit); the previous handler comes back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_monitor(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``rocknet monitor`` (:func:`_monitor`), quit with Ctrl-C wherever it was started from."""
    with _ctrl_c_quits():
        return _monitor(args, out, err)


def _monitor(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``rocknet monitor``: 0 when done or on Ctrl-C, 1 if the run ended early or the
    coordinator vanished, 2 for bad arguments, 4 if no coordinator appeared within ``--wait``."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        endpoints = resolve_endpoints(args.connect, args.control_port, args.feed_port)
    except EndpointError as exc:
        print(f"rocknet monitor: {exc}", file=err)
        return 2
    if args.count < 0 or args.wait < 0:
        print("rocknet monitor: --count and --wait must be >= 0", file=err)
        return 2
    follower = Follower(endpoints)
    try:
        if args.jsonl:
            return _run_jsonl(follower, args, out, err)
        code = _run_dashboard(follower, args, err)
        _goodbye(follower.state, out)
        return code
    except KeyboardInterrupt:
        if not args.jsonl and follower.state.snapshots:
            _goodbye(follower.state, out)
        return 0
    except (CoordinatorGone, ControlTimeout, SnapshotRefused) as exc:
        print(f"rocknet monitor: {exc}", file=err)
        return 4
    except BrokenPipeError:  # `rocknet monitor --jsonl | head`: the reader is done
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        follower.close()
