"""Loss models on top of the topology's link PRRs: the import point for the loss names.

A facade (no code of its own): :class:`LossModel` and the model's parts live in

* :mod:`protocol.air.loss_model` -- :class:`LossModel`, the commands and the realization
  (the full description of the loss composition is there),
* :mod:`protocol.air.faults` -- the fault records :class:`Jam`, ``Faults`` and :class:`LossError`,
* :mod:`protocol.air.loss_state` -- faults as plain values (status listing, checkpoints),
* :mod:`protocol.air.gilbert_elliott` -- the burst chains (:class:`GEArrays`, numba kernels),
* :mod:`protocol.air.round_loss` -- the radio's per-round view :class:`RoundLoss`,
* :mod:`protocol.air.rng` -- SplitMix64 (:func:`rng_next`, :func:`rng_uniform`, :func:`stream_seed`).
"""

from __future__ import annotations

from protocol.air.faults import Jam, LossError
from protocol.air.gilbert_elliott import GEArrays, ge_advance, link_prob
from protocol.air.loss_model import LossModel
from protocol.air.rng import rng_next, rng_uniform, stream_seed
from protocol.air.round_loss import RoundLoss

__all__ = [
    "GEArrays",
    "Jam",
    "LossError",
    "LossModel",
    "RoundLoss",
    "ge_advance",
    "link_prob",
    "rng_next",
    "rng_uniform",
    "stream_seed",
]
