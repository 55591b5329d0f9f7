"""The nodes as a round record shows them: status, RAM, energy and packets so far."""

from __future__ import annotations

import numpy as np

from coordinator.engine.accounting import RoundTally, Totals
from coordinator.engine.records import NodeRoundView
from coordinator.engine.registry import DOWN, NodeEntry


def node_round_views(entries: list[NodeEntry], totals: Totals | RoundTally) -> list[NodeRoundView]:
    """One view per registered device (energy in mJ, rounded to 1 nJ; cumulative counts),
    from the run's totals or from a round's tally (the totals right after that round)."""
    energy = np.round(totals.energy_mj, 6).tolist()
    rx, lost, tx = totals.rx_packets.tolist(), totals.lost_packets.tolist(), totals.tx_slots.tolist()
    return [
        NodeRoundView(id=e.device, status=DOWN if e.forced_down else e.status,
                      ram_bytes=None if e.last_stats is None else e.last_stats.ram_bytes,
                      energy_mj=energy[e.device], rx_packets=rx[e.device],
                      lost_packets=lost[e.device], tx_slots=tx[e.device])
        for e in entries
    ]
