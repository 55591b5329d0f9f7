"""In-process runs for tests and benchmarks: the production engine over in-process agents.

A thin wrapper of :func:`coordinator.backends.inprocess.in_process_run` that returns the
devices (to compare their weights) and the air (to compare what went over it).
"""

from __future__ import annotations

from typing import Any

from coordinator.backends.inprocess import in_process_run
from coordinator.engine.engine import EngineOptions
from coordinator.engine.medium import Air
from coordinator.engine.setup import RunSetup


def drive(setup: RunSetup, lockstep: bool, silent: dict[int, set[int]] | None = None) -> tuple[list[Any], Air]:
    """Run the whole stream in-process; ``silent[exchange]`` = devices whose TX misses it."""
    late = None if not silent else (lambda exchange, device: device in silent.get(exchange, set()))
    run = in_process_run(setup, EngineOptions(lockstep=lockstep, down_after=10**9), late=late)
    engine = run.run()
    devices = [agent.device for agent in run.agents]  # type: ignore[attr-defined]
    return devices, engine.air


def reference_of(setup: RunSetup, n_shards: int | None = None) -> Any:
    """The centralized reference of ``setup`` (``n_shards``: default its device count)."""
    from node.offline.reference import train_reference

    return train_reference(setup.x_train, setup.y_train, setup.x_test, setup.y_test,
                           setup.config.n_classes, setup.config.model,
                           n_shards or setup.config.n_devices, setup.config.schedule)


def assert_weights_file_equals(path: Any, ref: Any, n_devices: int) -> None:
    """A run's ``weights.npz`` holds exactly the reference's W_i (and b on device 0)."""
    import numpy as np

    with np.load(path) as w:
        for d in range(n_devices):
            assert np.array_equal(w[f"W_{d}"], ref.weights[d]), f"device {d} differs"
        assert np.array_equal(w["b_0"], ref.bias)
