"""An in-process testbed: coordinator exchanges + air + node devices, no sockets.

Exactly the code paths of a real run (the same :class:`~node.device.rocknet.Device` and
:class:`~coordinator.engine.medium.Air`), minus ZeroMQ and processes: what tests and the loss-robustness
benchmark use when they need many runs quickly.
"""

from __future__ import annotations

import numpy as np

from coordinator.engine.medium import Air
from coordinator.engine.exchanges import deliver, plan_exchanges
from coordinator.service.run_setup import RunSetup
from node.device.rocknet import Device, DeviceData
from protocol.wire.frames import Tx


def drive(setup: RunSetup, lockstep: bool, silent: dict[int, set[int]] | None = None) -> tuple[list[Device], Air]:
    """Run every exchange in-process; ``silent[exchange]`` = devices that miss it."""
    cfg = setup.config
    devices = [
        Device(device=d, config=cfg, data=DeviceData.from_shard(setup.shard(d)))
        for d in range(cfg.n_devices)
    ]
    air = Air(setup.stream, setup.topology, setup.loss, setup.protocol, cfg.model.seed,
              cfg.series_length, cfg.n_classes)
    for plan in plan_exchanges(setup.stream, lockstep=lockstep):
        off = (silent or {}).get(plan.exchange, set())
        txs = {}
        for dev in devices:
            if dev.device in off:
                continue
            s_items, series, labels = dev.series_payload(plan.series_from, plan.series_to)
            l_items, logits = dev.logits_payload(plan.logits_from, plan.logits_to)
            txs[dev.device] = Tx(exchange=plan.exchange, device=dev.device, series_items=s_items,
                                 series=series, labels=labels, logits_items=l_items, logits=logits,
                                 stats=dev.take_stats())
            air.sample_s[dev.device] = txs[dev.device].stats["model_sample_s"]
        alive = np.array([d.device in txs for d in devices])
        air.resolve_until(plan.last_round + 1, alive)
        rxs = deliver(plan, txs, air)
        for dev in devices:
            rx = rxs.get(dev.device)
            if rx is not None:
                dev.receive_series(plan.series_from, plan.series_to, rx.series_items, rx.series, rx.labels)
                dev.receive_logits(rx.logits_items, rx.logits, rx.logits_mask)
            dev.skip_items(plan.logits_from, plan.logits_to)
    return devices, air
