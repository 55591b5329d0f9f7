"""A resolved round as the engine keeps it: its packets, what the air did, its timing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocol.air.radio.resolve import AirResult
from protocol.stream.schedule import RoundPackets


@dataclass(frozen=True)
class RoundOutcome:
    """A resolved round: its packets, the radio result and its modeled timing."""

    round_no: int
    packets: RoundPackets
    air: AirResult
    alive_devices: np.ndarray  # bool [N]
    compute_s: float  # modeled compute window (slowest device), seconds
    latency_s: float  # compute window + slots x slot length, seconds
    series_ok: np.ndarray  # bool [N]: device decoded every packet of the round's series
    logits_ok: np.ndarray  # bool [N receivers, N sources]: ... of that source's partial logits
    grad_ok: np.ndarray | None = None  # bool [N]: ... of the owner's g (private labels)
    # bool [N receivers, N sources]: ... of that source's part of a sync in this round
    # (True where the source has no packet in the round; data-parallel)
    sync_ok: np.ndarray | None = None
