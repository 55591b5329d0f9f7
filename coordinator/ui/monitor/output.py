"""What ``rocknet monitor --jsonl`` prints: one JSON object a line, a snapshot or a feed message.

Every line has ``type`` (``snapshot`` | ``round`` | ``event``) and ``round``; a snapshot is the
coordinator's ``status`` answer (``round`` = its ``next_round`` - 1, ``resync: true`` when it
was taken after a gap in the feed), a round or event line is the feed message's data.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from coordinator.ui.feed_client import FeedMessage
from protocol.wire.frames import FeedRound


@dataclass(frozen=True)
class Output:
    """Something to print in ``--jsonl`` mode: a snapshot or a feed message."""

    kind: str  # "snapshot" | "round" | "event"
    snapshot: dict[str, Any] = field(default_factory=dict)
    message: FeedMessage | None = None
    resync: bool = False

    def line(self) -> dict[str, Any]:
        """The JSON object of this output (``type`` and ``round`` always present)."""
        if self.kind == "snapshot":
            out: dict[str, Any] = {"type": "snapshot"}
            out.update(self.snapshot)
            out["round"] = int(self.snapshot.get("next_round", 0)) - 1
            if self.resync:
                out["resync"] = True
            return out
        msg = self.message
        assert msg is not None
        if isinstance(msg, FeedRound):
            out = {"type": "round", "round": msg.round}
        else:
            out = {"type": "event", "round": msg.round, "event": msg.event}
        out.update({k: v for k, v in msg.data.items() if k not in out})
        return out


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types: numpy scalars and arrays as numbers and lists, bytes as
    hex, non-finite floats as None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    return value


def write_line(output: Output, out: TextIO) -> None:
    """Write ``output`` to ``out`` as one compact JSON line."""
    out.write(json.dumps(json_safe(output.line()), separators=(",", ":"), allow_nan=False) + "\n")
