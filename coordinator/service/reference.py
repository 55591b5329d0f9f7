"""The centralized reference of a run, trained beside it in a subprocess.

The coordinator does not import ``node``, so the reference (``node.offline.reference``: the
same model trained on one machine in the same sample order) runs as ``python -m`` on the
run's int8 data: forked by the run's zygote when it has one (warm: no interpreter, numba
import or kernel loading of its own, ~0.5 s of CPU that would compete with the run's start),
else as ``python -m``. It never holds a run up: a run that stops before its end kills it and
reports it absent (a reference trained to the end would describe another run), and one
that finishes waits for it at most ``timeout_s``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coordinator.backends.processes import ZygoteClient, node_env
from coordinator.engine.setup import RunSetup

#: What ``summary.json``'s ``reference`` says.
TRAINED, OFF, NO_TEST_SET = "trained to the end of the run", "off (--no-reference)", "absent: no test set"
STOPPED, TIMED_OUT, FAILED = ("absent: the run stopped before its end", "absent: timed out",
                              "absent: the reference failed (see the coordinator log)")


@dataclass(frozen=True)
class ReferenceResult:
    """The reference's test accuracy (fraction; None when absent) and why."""

    test_accuracy: float | None
    status: str


class Reference:
    """One reference training in a subprocess (a child of ``zygote`` when given)."""

    def __init__(self, setup: RunSetup, zygote: ZygoteClient | None = None) -> None:
        self.work_dir = Path(tempfile.mkdtemp(prefix="rocknet-ref-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.zygote = zygote
        self.pid: int | None = None  # the process training it (None: no test set)
        if len(setup.y_test) == 0:
            return
        npz = self.work_dir / "reference_input.npz"
        np.savez(npz, x_train=setup.x_train, y_train=setup.y_train, x_test=setup.x_test,
                 y_test=setup.y_test)
        cfg = self.work_dir / "reference_config.json"
        cfg.write_text(json.dumps({
            "model": setup.config.model.to_dict(),
            "n_shards": setup.config.n_devices,
            "n_classes": setup.config.n_classes,
            "eval_every": setup.config.schedule.eval_every,
        }))
        argv = ["--npz", str(npz), "--config", str(cfg), "--out", str(self.work_dir / "reference.json")]
        if zygote is not None:
            self.pid = zygote.spawn("reference", argv, main="reference")
        else:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "node.offline.reference", *argv],
                env=node_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            self.pid = self.proc.pid

    def abandon(self) -> ReferenceResult:
        """The run stopped early: end the reference now."""
        self._kill()
        return ReferenceResult(None, STOPPED if self.pid is not None else NO_TEST_SET)

    def collect(self, timeout_s: float) -> ReferenceResult:
        """The run finished: wait up to ``timeout_s`` for the reference's accuracy."""
        if self.pid is None:
            return ReferenceResult(None, NO_TEST_SET)
        if not self._wait(timeout_s):
            self._kill()
            return ReferenceResult(None, TIMED_OUT)
        try:
            accuracy = float(json.loads((self.work_dir / "reference.json").read_text())["test_accuracy"])
        except (OSError, ValueError, KeyError, TypeError):
            return ReferenceResult(None, FAILED)
        return ReferenceResult(accuracy, TRAINED)

    def _wait(self, timeout_s: float | None) -> bool:
        """Wait until the reference's process ended; False if it still runs after ``timeout_s``."""
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return False
            return True
        assert self.zygote is not None and self.pid is not None
        return self.zygote.wait_exit([self.pid], timeout_s)

    def _kill(self) -> None:
        if self.pid is None or self._wait(0.0):
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._wait(None)
