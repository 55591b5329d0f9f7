"""Link quality from geometry: a log-distance path-loss model and a non-coherent FSK PRR.

Used by ``Topology.random_geometric``, ``Topology.default_testbed`` and topology files with a
``[path_loss]`` section; see :class:`PathLoss` (distances in metres, powers in dBm, gains dB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from protocol.air.topology_base import TopologyError


@dataclass(frozen=True)
class PathLoss:
    """Log-distance path loss -> PRR model (units in the names).

    Received power ``P_rx = tx_power_dbm - (pl_d0_db + 10 * exponent * log10(d / d0_m)) + S``
    where ``S`` is a log-normal shadowing term (``shadowing_db`` standard deviation, equal in
    both directions of a pair, plus an independent ``asymmetry_db`` part per direction).
    The SNR over ``noise_floor_dbm`` gives the bit error rate of non-coherent FSK,
    ``BER = 0.5 * exp(-SNR / 2)`` (SNR linear), and the packet success is
    ``PRR = (1 - BER) ** (8 * frame_bytes)``. Links whose PRR falls below ``min_prr`` are
    dropped (PRR 0). Defaults: 0 dBm TX power, 40 dB at 1 m (2.4 GHz free space), indoor
    exponent 3.5 and a -100 dBm noise floor: ~100% PRR up to ~22 m, ~0 beyond ~27 m.
    """

    tx_power_dbm: float = 0.0
    pl_d0_db: float = 40.0
    d0_m: float = 1.0
    exponent: float = 3.5
    noise_floor_dbm: float = -100.0
    shadowing_db: float = 0.0
    asymmetry_db: float = 0.0
    frame_bytes: int = 121
    min_prr: float = 0.01

    def __post_init__(self) -> None:
        if self.exponent <= 0:
            raise TopologyError(f"path-loss exponent must be > 0, got {self.exponent}")
        if self.d0_m <= 0:
            raise TopologyError(f"path-loss reference distance d0_m must be > 0, got {self.d0_m}")
        if self.shadowing_db < 0 or self.asymmetry_db < 0:
            raise TopologyError("shadowing_db and asymmetry_db must be >= 0")
        if self.frame_bytes < 1:
            raise TopologyError(f"frame_bytes must be >= 1, got {self.frame_bytes}")
        if not 0.0 <= self.min_prr <= 1.0:
            raise TopologyError(f"min_prr must lie in [0, 1], got {self.min_prr}")

    def rx_power_dbm(self, d_m: np.ndarray, extra_db: np.ndarray | float = 0.0) -> np.ndarray:
        """Received power (dBm) at distances ``d_m`` (metres, floored at 1 mm), without shadowing
        unless given as ``extra_db``."""
        d = np.maximum(np.asarray(d_m, dtype=np.float64), 1e-3)
        path_loss_db = self.pl_d0_db + 10.0 * self.exponent * np.log10(d / self.d0_m)
        out: np.ndarray = self.tx_power_dbm - path_loss_db + extra_db
        return out

    def prr_of_distance(self, d_m: np.ndarray, extra_db: np.ndarray | float = 0.0) -> np.ndarray:
        """PRR for distances ``d_m`` (metres) with an extra gain ``extra_db`` (dB)."""
        snr_db = self.rx_power_dbm(d_m, extra_db) - self.noise_floor_dbm
        snr = 10.0 ** (snr_db / 10.0)
        ber = 0.5 * np.exp(-snr / 2.0)
        prr = np.exp(8.0 * self.frame_bytes * np.log1p(-ber))
        return np.where(prr < self.min_prr, 0.0, prr)

    def prr_matrix(self, positions: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Directed PRR matrix for ``positions`` (float [n, 2] metres); diagonal 0."""
        pos = np.asarray(positions, dtype=np.float64)
        n = pos.shape[0]
        d = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
        extra = np.zeros((n, n))
        if rng is not None and (self.shadowing_db > 0 or self.asymmetry_db > 0):
            sym = rng.normal(0.0, self.shadowing_db, size=(n, n))
            sym = np.triu(sym, 1)
            extra = sym + sym.T + rng.normal(0.0, self.asymmetry_db, size=(n, n))
        prr = self.prr_of_distance(d, extra)
        np.fill_diagonal(prr, 0.0)
        return prr

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> PathLoss:
        """A model from a ``[path_loss]`` table (field name -> value); unknown keys are errors."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise TopologyError(
                f"unknown path_loss keys {sorted(unknown)}; allowed: {sorted(known)}"
            )
        try:
            values: dict[str, Any] = {k: (int(v) if k == "frame_bytes" else float(v))
                                      for k, v in data.items()}
            return cls(**values)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, TopologyError):
                raise
            raise TopologyError(f"bad path_loss section: {exc}") from exc
