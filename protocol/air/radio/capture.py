"""The capture model of concurrent Mixer transmissions: who, if anyone, a listener decodes.

**What Mixer puts on the air.** Concurrent Mixer senders transmit *different* packets: each
sends its own random combination of its rows, and the header differs anyway (sender id, slot
number, full-rank map; Mixer's ``Packet`` in ``mixer_internal.h``). So unlike Glossy's
identical packets there is nothing for constructive interference to add up; on BLE's FSK even
identical packets only "beat" (frequency offsets), and Mixer's own code lowers its discovery
transmit probability outside IEEE 802.15.4 mode for this reason ("In 802.15.4 mode we use
MX_DISCOVERY_PTX because of the favorable capture behavior", ``mixer_processing.c``). What a
listener sees is co-channel interference, resolved by the **capture effect**: it decodes the
strongest signal when that one exceeds the sum of all the others by the co-channel rejection
ratio, and nothing otherwise.

**The model** (:func:`capture`): of the transmitting in-neighbours whose link is usable in the
slot (success probability ``q > 0``), take the one with the largest received power ``w``
(linear, mW; ties: the first, i.e. the lowest node index). It is captured when
``w_max >= ratio * (sum(w) - w_max)`` (``ratio = 10 ** (threshold_db / 10)``), i.e. its
signal-to-interference ratio reaches ``threshold_db``; then the packet arrives with that
link's ``q`` (the PRR and the loss model: noise, fading, bursts), else the slot is lost.
One sender: SIR is infinite, success = its ``q``. ``k >= 2`` senders of equal power: SIR
``= -10 log10(k - 1) <= 0 dB``, nothing is received for any threshold above 0 dB.

**Received powers** (:func:`link_power_mw`): from the node positions by the log-distance model
of :class:`~protocol.air.path_loss.PathLoss` (the model the default layout's PRRs come from;
the absolute level cancels in the ratio, only ``10 eta log10(d_j / d_i)`` matters). Left out:
the shadowing draws of ``random_geometric`` (they are in its PRRs, not in its positions), the
interference of senders beyond the link range (PRR 0: below the receiver's sensitivity), noise
added to the interference (noise enters through the PRR only), and the timing condition of
capture (the stronger frame has to start within the preamble; Mixer's senders are synchronous
to within a microsecond, ``MAX_PROPAGATION_DELAY`` in ``mixer_transport_ble.c``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from protocol.air.jit import njit

from protocol.air.path_loss import PathLoss
from protocol.air.rng import rng_uniform
from protocol.air.topology_record import Topology

#: Co-channel rejection of the nRF52840 in BLE 2 Msps mode, dB: the "C/I co-channel" entry of
#: the RX selectivity table of the nRF52840 Product Specification v1.1 (wanted signal at
#: -67 dBm, interferer raised until the BER reaches 0.1 %, the test method Nordic describes
#: on devzone.nordicsemi.com/f/nordic-q-a/10365). We quote 7 dB from that table and could not
#: re-read the table from here: check it before relying on the exact value. It matches the
#: 3-7 dB capture thresholds reported for FSK/O-QPSK receivers in the synchronous-transmission
#: literature (Glossy, Ferrari et al. IPSN 2011; Mixer, Herrmann et al. SenSys 2018).
BLE_2M_CO_CHANNEL_DB = 7.0


@dataclass(frozen=True)
class CaptureModel:
    """Capture threshold ``threshold_db`` (dB, >= 0): the SIR at which the strongest of
    concurrent senders is decoded (module docstring)."""

    threshold_db: float = BLE_2M_CO_CHANNEL_DB

    def __post_init__(self) -> None:
        if not math.isfinite(self.threshold_db) or self.threshold_db < 0.0:
            raise ValueError(f"capture threshold_db must be a finite number >= 0 dB, got {self.threshold_db}")

    @property
    def ratio(self) -> float:
        """The threshold as a linear power ratio."""
        return float(10.0 ** (self.threshold_db / 10.0))


DEFAULT_CAPTURE = CaptureModel()


def link_power_mw(topology: Topology, path_loss: PathLoss | None = None) -> np.ndarray:
    """float64 [n, n] received power (mW) of ``a``'s signal at ``b`` from the positions by the
    log-distance model of ``path_loss`` (default :class:`PathLoss`); 0 on the diagonal."""
    model = path_loss or PathLoss()
    pos = np.asarray(topology.positions, dtype=np.float64)
    d = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
    mw = 10.0 ** (model.rx_power_dbm(d) / 10.0)
    np.fill_diagonal(mw, 0.0)
    return np.ascontiguousarray(mw)


def check_power(topology: Topology, rx_power_dbm: np.ndarray) -> np.ndarray:
    """Validate a caller's received-power matrix (dBm, [n, n], finite off the diagonal) and
    return it in mW."""
    n = topology.n_nodes
    p = np.asarray(rx_power_dbm, dtype=np.float64)
    if p.shape != (n, n):
        raise ValueError(f"rx_power_dbm must have shape ({n}, {n}), got {p.shape}")
    off = ~np.eye(n, dtype=bool)
    if not np.all(np.isfinite(p[off])):
        raise ValueError("rx_power_dbm must be finite for every pair a != b")
    mw = np.where(off, 10.0 ** (np.where(off, p, 0.0) / 10.0), 0.0)
    return np.ascontiguousarray(mw)


@njit(cache=True)
def capture(cand_p: np.ndarray, cand_w: np.ndarray, nc: int, ratio: float, rng: np.ndarray) -> int:
    """Index (into the ``nc`` candidates) of the sender a listener decodes, or -1.

    ``cand_p[j]``: the link's success probability, ``cand_w[j]``: its received power (mW).
    The strongest is captured when ``w_max >= ratio * (sum(w) - w_max)`` and then arrives
    with its ``cand_p`` (one draw from ``rng``; no draw when nothing is captured).
    """
    if nc == 0:
        return -1
    best = 0
    best_w = cand_w[0]
    total = cand_w[0]
    for j in range(1, nc):
        w = cand_w[j]
        total += w
        if w > best_w:
            best_w = w
            best = j
    if best_w < ratio * (total - best_w):
        return -1
    return best if rng_uniform(rng) < cand_p[best] else -1
