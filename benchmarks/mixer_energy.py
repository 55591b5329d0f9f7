"""Radio slots and energy of one Mixer round, OSULeaf N = 20 (G = 26), idealized vs coordinated.

100 lossless rounds of the default 21-node layout (seed 3); per device and round: TX/RX/
listened-through/off slots, complete rounds, packets lost, TX and RX energy (mJ) by
``AirResult.energy_mj()``. Run: ``.venv/bin/python benchmarks/mixer_energy.py`` (seconds).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from protocol.air.topology import Topology  # noqa: E402
from protocol.air.radio import resolve_batch  # noqa: E402


def main() -> None:
    t = Topology.default_testbed()
    src = np.array([0] * 6 + list(range(20)), dtype=np.int16)  # OSULeaf N=20: G = 26
    assert src.size == 26
    for proto in ("mixer", "mixer-coordinated"):
        rs = resolve_batch(proto, t, [src] * 100, range(100), seed=3)
        dev = t.device_nodes
        tx = np.mean([r.energy_mj().tx_mj[dev].mean() for r in rs])
        rx = np.mean([r.energy_mj().rx_mj[dev].mean() for r in rs])
        lp = np.mean([r.energy_mj().low_power_mj[dev].mean() for r in rs])
        txs = np.mean([r.tx_slots[dev].mean() for r in rs]); rxs = np.mean([r.rx_slots[dev].mean() for r in rs])
        oks = np.mean([r.rx_ok_slots[dev].mean() for r in rs]); offs = np.mean([r.off_slots[dev].mean() for r in rs])
        ls = np.mean([(r.rx_listen_slots[dev].mean() if r.rx_listen_slots is not None else 0.0) for r in rs])
        comp = np.mean([r.complete for r in rs]); lost = 1 - np.mean([r.decoded[dev].mean() for r in rs])
        print(f"{proto:18s} slot {rs[0].slot_s*1e6:.0f}us TX {tx:.4f} mJ RX {rx:.4f} mJ LP {lp:.4f} | slots tx {txs:.1f} rx {rxs:.1f} ok {oks:.1f} listen {ls:.1f} off {offs:.1f} | complete {comp:.2f} lost {lost:.4f}")


if __name__ == "__main__":
    main()
