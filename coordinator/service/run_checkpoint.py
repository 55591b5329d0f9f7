"""The coordinator's checkpoint: everything needed to resume a run after a crash.

Written after an exchange is resolved and *before* its RXs are sent, at most once a second
(:class:`coordinator.service.replay_log.Checkpointer`; the exchanges in between go to the
replay log), by temp file + rename; no fsync: it guards against a crashed or killed
coordinator process, whose written pages the OS keeps. A sealed file
(:func:`protocol.files.write_sealed`: one msgpack document behind a magic line and its
sha256). It holds the next exchange to run, the air (resolved rounds still needed,
per-device totals, virtual time, the loss model with its Gilbert–Elliott states), the
registry (device id by node name), the metrics file's length, and the encoded RXs of the
exchange. A restarted coordinator truncates ``metrics.jsonl`` to that length, sends those RXs
again (a node that already had one drops the duplicate: it no longer waits for that
exchange) and goes on with the next exchange, so no round is counted twice and no node
misses its RX.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from coordinator.engine.engine import RunEngine
from coordinator.engine.accounting import Totals
from coordinator.service.run_state import Progress, round_from_plain, round_to_plain
from coordinator.service.scenario import ScenarioEvent
from protocol.files import SealedFileError, read_sealed, write_sealed

FORMAT = "rocknet-coordinator-checkpoint/2"
FILENAME = "coordinator.ckpt"
#: First line of the file (:func:`protocol.files.write_sealed`).
MAGIC = b"rocknet-coordinator-checkpoint\n"


class CoordinatorCheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says what to do."""


#: What :func:`load` hands back besides the restored state (the progress it saved).
Resume = Progress


def run_fingerprint(engine: RunEngine) -> str:
    """The run's identity: configuration, protocol, topology and exchange mode."""
    return _fingerprint(engine)  # the same engine always has the same identity


@lru_cache(maxsize=8)
def _fingerprint(engine: RunEngine) -> str:
    text = json.dumps({
        "config": engine.config.fingerprint(),
        "protocol": engine.setup.protocol,
        "topology": np.asarray(engine.setup.topology.prr).round(9).tolist(),
        "exchanges": len(engine.plans),
    }, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save(path: Path, engine: RunEngine, next_plan: int, pending_rx: dict[int, bytes],
         metrics_offset: int, scenario: list[ScenarioEvent]) -> str:
    """Write the checkpoint atomically; returns its digest (the replay log is bound to it)."""
    air = engine.air
    t = air.totals
    totals: dict[str, np.ndarray] = {f"parts/{key}": value for key, value in t.parts.items()}
    for key in ("radio_on_s", "compute_s_modeled", "tx_slots", "rx_packets", "lost_packets"):
        totals[key] = getattr(t, key)
    document = {
        "format": FORMAT,
        "fingerprint": run_fingerprint(engine),
        "virtual_time_s": air.virtual_time_s,
        "rounds": [round_to_plain(o) for o in air.cached()],
        "totals": totals,
        "progress": Progress.of(engine, next_plan, pending_rx, metrics_offset, scenario),
    }
    return write_sealed(path, MAGIC, document, mode=0o600)


def load(path: Path, engine: RunEngine) -> tuple[Resume, str]:
    """Restore ``engine`` from ``path`` (all or nothing); returns what to resume with and the
    checkpoint's digest (:mod:`coordinator.service.replay_log` goes on from there)."""
    try:
        document, digest = read_sealed(path, MAGIC)
        fmt, fingerprint = document.get("format"), document.get("fingerprint")
    except SealedFileError as exc:
        raise CoordinatorCheckpointError(f"{path} is {exc}; move it away to start the run anew") from exc
    except AttributeError as exc:
        raise CoordinatorCheckpointError(f"{path} is damaged ({exc}); move it away to start anew") from exc
    if fmt != FORMAT:
        raise CoordinatorCheckpointError(f"{path} is not a {FORMAT} file; move it away to start anew")
    if fingerprint != run_fingerprint(engine):
        raise CoordinatorCheckpointError(
            f"{path} belongs to another run (configuration, topology or mode differ): use the same "
            "arguments as the interrupted run, or another --out directory"
        )
    air = engine.air
    try:
        cache = [round_from_plain(air, plain) for plain in document["rounds"]]
        saved = document["totals"]
        totals = Totals(air.n_devices)
        for key in Totals.PARTS:
            totals.parts[key] = np.array(saved[f"parts/{key}"], dtype=np.float64)
        for key in ("radio_on_s", "compute_s_modeled"):
            setattr(totals, key, np.array(saved[key], dtype=np.float64))
        for key in ("tx_slots", "rx_packets", "lost_packets"):
            setattr(totals, key, np.array(saved[key], dtype=np.int64))
        air.restore(cache, totals, next_round=int(document["progress"]["next_round"]),
                    virtual_time_s=float(document["virtual_time_s"]),
                    sample_s=air.sample_s, step_s=air.step_s)
        progress = Progress.apply(engine, document["progress"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CoordinatorCheckpointError(f"{path} is damaged ({exc}); move it away to start anew") from exc
    return progress, digest
