"""The nodes as a round record shows them: status, RAM, energy and packets so far."""

from __future__ import annotations

import numpy as np

from coordinator.engine.accounting import RoundTally, Totals
from coordinator.engine.records import NodeRoundViews
from coordinator.engine.registry import DOWN, NodeEntry


def node_round_views(entries: list[NodeEntry], totals: Totals | RoundTally) -> NodeRoundViews:
    """The registered devices from the run's totals or from a round's tally (the totals
    right after that round): energy in mJ rounded to 1 nJ, cumulative counts."""
    ids = [e.device for e in entries]
    return NodeRoundViews(
        id=ids,
        status=[DOWN if e.forced_down else e.status for e in entries],
        ram_bytes=[None if e.last_stats is None else e.last_stats.ram_bytes for e in entries],
        energy_mj=np.round(totals.energy_mj[ids], 6).tolist(),
        rx_packets=totals.rx_packets[ids].tolist(),
        lost_packets=totals.lost_packets[ids].tolist(),
        tx_slots=totals.tx_slots[ids].tolist(),
    )
