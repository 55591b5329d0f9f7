"""The fault records of a loss model: Bernoulli drops, GE links, downed links/nodes, jammers.

:class:`Faults` is the whole fault configuration of one :class:`~protocol.air.loss_model.LossModel`
plus the state that outlives a round (Gilbert–Elliott chain states, the jam-id counter, the
last resolved round); :class:`Jam` is one jammer. Validation of commands lives in the model;
these records hold values already checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from protocol.air.gilbert_elliott import GEParams

NO_ROUND_YET = -(1 << 62)
"""``Faults.last_round`` before the radio committed any round."""


class LossError(ValueError):
    """A loss command with bad arguments (unknown node, missing link, p outside [0, 1])."""


@dataclass(frozen=True)
class Jam:
    """A jammer: receivers in ``nodes`` or within ``region`` get PRR x ``prr_factor``."""

    jam_id: int
    nodes: tuple[int, ...]
    region: tuple[float, float, float] | None  # (x_m, y_m, radius_m)
    prr_factor: float
    from_round: int
    to_round: int | None

    def active(self, round_no: int) -> bool:
        """Whether the jammer is on in ``round_no`` (``from_round <= round_no < to_round``)."""
        return self.from_round <= round_no and (self.to_round is None or round_no < self.to_round)

    def receivers(self, positions_m: np.ndarray) -> np.ndarray:
        """bool [n]: the jammed receivers among nodes at ``positions_m`` (float [n, 2], metres)."""
        mask = np.zeros(positions_m.shape[0], dtype=bool)
        mask[list(self.nodes)] = True
        if self.region is not None:
            x, y, rad = self.region
            d2 = ((positions_m - np.array([x, y])) ** 2).sum(axis=1)
            mask |= d2 <= rad * rad
        return mask


@dataclass
class Faults:
    """Every fault of a loss model and the GE chain states (mutable; the model owns it).

    Links are directed pairs ``(a, b)`` of node indices; probabilities lie in [0, 1].
    """

    p_global: float = 0.0  # Bernoulli drop on every link
    p_link: dict[tuple[int, int], float] = field(default_factory=dict)  # per-link drop
    ge_global: GEParams | None = None  # GE on every link without its own parameters
    ge_link: dict[tuple[int, int], GEParams] = field(default_factory=dict)
    ge_state: dict[tuple[int, int], bool] = field(default_factory=dict)  # True: bad state
    down_links: set[tuple[int, int]] = field(default_factory=set)
    down_nodes: set[int] = field(default_factory=set)
    jams: list[Jam] = field(default_factory=list)
    next_jam: int = 0  # id of the next jammer
    last_round: int = NO_ROUND_YET  # last round committed by the radio
