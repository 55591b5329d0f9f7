"""Load the coordinator's air kernel while the run's zygote is still loading the nodes'.

The first round the coordinator resolves loads its numba kernel from numba's on-disk cache
(and numba's CPU target with it): ~0.3 s of one core, inside the run's first exchange, with
every node waiting. A run of local node processes waits for its zygote anyway (~0.5 s from
the start of ``rocknet run``), so the launcher resolves one tiny round on a copy of the run's
loss model first (:func:`warm_air`): the run's first exchange then finds the kernel loaded.
"""

from __future__ import annotations

import copy
import logging
import time

import numpy as np

from coordinator.engine.medium import Air
from protocol.air.radio.resolve import resolve_batch
from protocol.numba_startup import load_array_support

log = logging.getLogger("rocknet.launcher")


def warm_air(air: Air) -> float:
    """Resolve round 0 with one packet over ``air``'s topology and protocol, on copies (the
    run's loss model, Gilbert–Elliott states included, is not touched); returns the seconds
    it took. The arguments have the types the run's own calls have (``Air._resolve_rounds``),
    so that numba picks (and loads) the same compiled version."""
    started = time.perf_counter()
    load_array_support()  # numba's target without scipy's BLAS (~0.1 s, protocol/numba_startup.py)
    sources = [np.asarray(air.device_nodes[:1], dtype=np.int16)]
    resolve_batch(air.protocol, air.topology, sources, [0], loss=copy.deepcopy(air.loss), seed=air.seed,
                  alive=np.ones(air.topology.n_nodes, dtype=np.bool_), payload_bytes=air.payload_bytes)
    took = time.perf_counter() - started
    log.debug("air kernel loaded (%.2f s)", took)
    return took
