"""The coordinator's replay log: every exchange since the last checkpoint, appended.

A full checkpoint (:mod:`coordinator.service.run_checkpoint`: temp file, rename, the whole
air state) costs a few milliseconds; in lockstep mode that is one per radio round. So the
:class:`Checkpointer` writes one at most every ``interval_s`` (1 s by default) and, for the
exchanges in between, appends one record to ``coordinator.replay``: the rounds the exchange
resolved (their air arrays and compute windows), the cached rounds it dropped, and the run's
progress after it (:class:`coordinator.service.run_state.Progress`: next plan, loss-model
state, registry, accuracy, counters, metrics length, scenario, modeled costs, the encoded
RXs). An append is one ``write`` to a file kept open; no rename, no fsync.

File layout: a header record naming the checkpoint the log continues (its sha256), then
records, each ``u32 length | 32-byte sha256 | msgpack body``. A restart loads the checkpoint,
then replays every whole record whose chain starts at that checkpoint: each round is
accounted again by :meth:`coordinator.engine.medium.Air.replay` with the costs it had, so
totals and virtual time come out bitwise as they were, and the last record's progress says
where to go on (its RXs are sent again, ``metrics.jsonl`` is cut to its length). A record
torn by the crash fails its digest and ends the replay there: that exchange is run again,
its RXs never left (they are sent only after the record is written). A log of an older
checkpoint (a crash between the checkpoint's rename and the log's restart) is ignored.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from coordinator.engine.engine import RunEngine
from coordinator.engine.state import ExchangeDone
from coordinator.service import run_checkpoint
from coordinator.service.run_state import Progress, round_from_plain, round_to_plain
from coordinator.service.scenario import ScenarioEvent
from protocol.wire import codec

FILENAME = "coordinator.replay"
#: Longest wall time between two full checkpoints (s): our choice, the replay of a second of
#: exchanges takes a fraction of a second at restart.
CHECKPOINT_INTERVAL_S = 1.0
_HEAD = struct.Struct("<I32s")


def _frame(body: bytes) -> bytes:
    return _HEAD.pack(len(body), hashlib.sha256(body).digest()) + body


def read_records(path: Path, checkpoint_digest: str) -> list[dict[str, Any]]:
    """The log's whole records that continue the checkpoint ``checkpoint_digest``, in order
    (empty if the log is missing, of another checkpoint, or torn before its first record)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records: list[dict[str, Any]] = []
    at = 0
    while at + _HEAD.size <= len(data):
        length, digest = _HEAD.unpack_from(data, at)
        body = data[at + _HEAD.size: at + _HEAD.size + length]
        if len(body) != length or hashlib.sha256(body).digest() != digest:
            break  # torn by a crash: what follows never happened
        try:
            record = codec.unpack(body, len(body))
        except codec.ProtocolError:
            break
        if not records and not (isinstance(record, dict) and record.get("checkpoint") == checkpoint_digest):
            return []  # the log of another (older) checkpoint
        records.append(record)
        at += _HEAD.size + length
    return records[1:]


def replay(engine: RunEngine, records: list[dict[str, Any]]) -> Progress | None:
    """Apply ``records`` to an engine just restored from their checkpoint; returns the last
    record's progress (None when there is none). KeyError/TypeError/ValueError if damaged."""
    air = engine.air
    for record in records:
        # The costs the rounds were resolved with (set from the exchange's TXs before them).
        air.sample_s = np.array(record["progress"]["sample_s"], dtype=np.float64)
        air.step_s = np.array(record["progress"]["step_s"], dtype=np.float64)
        for plain in record["resolved"]:
            air.replay(round_from_plain(air, plain))
        air.forget_before(int(record["forget_before"]))
    # The rest of the progress is the last record's alone.
    return Progress.apply(engine, records[-1]["progress"]) if records else None


class Checkpointer:
    """The engine's exchange hook: a full checkpoint at most every ``interval_s``, a replay
    record for every exchange in between (module docstring)."""

    def __init__(self, checkpoint_path: Path, engine: RunEngine,
                 interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        self.checkpoint_path = checkpoint_path
        self.log_path = checkpoint_path.with_name(FILENAME)
        self.engine = engine
        self.interval_s = interval_s
        self._log: BinaryIO | None = None
        self._last_full = float("-inf")

    def save(self, done: ExchangeDone, pending_rx: dict[int, bytes], metrics_offset: int,
             scenario: list[ScenarioEvent]) -> None:
        """Record exchange ``done`` before its RXs leave (``pending_rx``: them, encoded)."""
        now = time.monotonic()
        if self._log is None or now - self._last_full >= self.interval_s:
            self._full(done.next_plan, pending_rx, metrics_offset, scenario)
            self._last_full = now
            return
        record = {
            "resolved": [round_to_plain(o) for o in done.resolved],
            "forget_before": done.forget_before,
            "progress": Progress.of(self.engine, done.next_plan, pending_rx, metrics_offset, scenario),
        }
        self._log.write(_frame(codec.pack(record)))
        self._log.flush()  # to the OS: a killed process loses nothing written

    def _full(self, next_plan: int, pending_rx: dict[int, bytes], metrics_offset: int,
              scenario: list[ScenarioEvent]) -> None:
        digest = run_checkpoint.save(self.checkpoint_path, self.engine, next_plan, pending_rx,
                                     metrics_offset, scenario)
        self.close()
        # Start the log anew for this checkpoint (a crash before this leaves the old log,
        # which names the old checkpoint and is ignored).
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._log = os.fdopen(fd, "wb")
        self._log.write(_frame(codec.pack({"checkpoint": digest})))
        self._log.flush()

    def load(self) -> Progress:
        """Restore the engine from the checkpoint and the log after it
        (:class:`~coordinator.service.run_checkpoint.CoordinatorCheckpointError` if unusable)."""
        progress, digest = run_checkpoint.load(self.checkpoint_path, self.engine)
        try:
            replayed = replay(self.engine, read_records(self.log_path, digest))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise run_checkpoint.CoordinatorCheckpointError(
                f"{self.log_path} is damaged ({exc}); move it and {self.checkpoint_path.name} "
                "away to start anew") from exc
        return replayed if replayed is not None else progress

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
