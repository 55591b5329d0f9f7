"""``rocknet model``: the device and round model without training, for planning.

It lives on the node side (the cycle and RAM models are here; ``coordinator`` never imports
``node``): ``coordinator/ui/model_cli.py`` finds a dataset's shape and runs
``python -m node.mcu.plan``.

Per N: the largest device's RAM, the Mixer round (G, slots, slot length), the testbed's
round period, the largest device's compute per training sample (optimizer step amortized
over a batch) and the energy per training sample per device, and ``reduction`` against the
first N by the paper's method (``PlotMeasurements.py``): latency = max compute (a sample
plus the step, the round that steps) + the full Mixer round; the energy = CPU current for
that compute + radio for the round; a one-device reference has no radio round and no radio
energy (the paper extrapolates it as 7 x the N = 7 compute; here we model N = 1 directly).
Radio energy is the firmware's slot budget with every node listening in every slot (an
upper bound until the coordinated Mixer lands; docs/fidelity.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, replace
from typing import Any

from node.mcu import profiles
from protocol.air import timing
from protocol.air.energy import DEFAULT_CONSTANTS, EnergyConstants
from protocol.air.radio.firmware_round import firmware_round
from protocol.config.model import ModelConfig, fit_dilations, max_devices
from protocol.stream.schedule import PACKET_PAYLOAD_BYTES, SERIES_HEADER_BYTES, packets_for

#: Shapes (L, C, training series, evaluation series) of the datasets the paper uses, as the
#: official generator compiles them (UCR 2018; training capped at 2200 for ElectricDevices,
#: evaluation at 200 but 242 for OSULeaf: GenerateCodeDistributedRocket.py l. 390-405).
KNOWN_SHAPES: dict[str, tuple[int, int, int, int]] = {
    "OSULeaf": (427, 6, 200, 242),
    "ElectricDevices": (96, 7, 2200, 200),
    "FaceAll": (131, 14, 560, 200),
    "GunPoint": (150, 2, 50, 150),
}


@dataclass(frozen=True)
class ModelPoint:
    """The model at one N (seconds, bytes, mJ)."""

    n_devices: int
    ram_bytes: int
    generation_size: int
    slots: int
    slot_s: float
    round_s: float
    compute_s: float
    latency_s: float  # paper's method: max compute (sample + step) + the Mixer round
    energy_mj: float


def parse_shape(text: str) -> tuple[int, int, int, int]:
    """``L,C,NTRAIN,NTEST`` -> the four integers; a clear error otherwise."""
    try:
        length, n_classes, n_train, n_eval = (int(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"--shape must be L,C,NTRAIN,NTEST (four integers), got {text!r}") from None
    if length < 9 or n_classes < 2 or n_train < 1 or n_eval < 0:
        raise ValueError(f"--shape needs L >= 9, C >= 2, NTRAIN >= 1, NTEST >= 0; got {text!r}")
    return length, n_classes, n_train, n_eval


def model_point(profile: profiles.DeviceProfile, cfg: ModelConfig, n: int, length: int, n_classes: int,
                n_train: int, n_eval: int, consts: EnergyConstants = DEFAULT_CONSTANTS) -> ModelPoint:
    """The device and round model at N = ``n`` devices."""
    if profile.optimizer is not None:
        cfg = replace(cfg, optimizer=profile.optimizer)
    if profile.firmware_messages:
        rnd = firmware_round(n, length, n_classes)
        g, slots, slot_s, air_s = rnd.generation_size, rnd.slots, rnd.slot_s, timing.air_time_s(rnd.phy_payload_bytes)
    else:
        g = 1 + packets_for(length + SERIES_HEADER_BYTES) + n * packets_for(4 * n_classes)
        slots, slot_s = timing.mixer_slots(g), timing.slot_s(g)
        air_s = timing.air_time_s(timing.phy_payload_bytes(g, PACKET_PAYLOAD_BYTES))
    sample_s = sum(profiles.sample_cycles(profile, cfg, n, length, n_classes).values()) / 64e6
    step_s = profiles.step_s(profile, cfg, n, length, n_classes)
    compute_s = sample_s + step_s / cfg.batch_size
    window = profiles.window_s(profile, n, n_classes, sample_s + step_s)
    radio_s = slots * slot_s if n > 1 else 0.0
    v = consts.voltage_v
    cpu_mj = v * consts.cpu_ma * compute_s
    # every slot listened: ramp + RX for the air time (upper bound, see module docstring)
    radio_mj = slots * (v * consts.ramp_ma * consts.ramp_s + v * consts.rx_ma * air_s) if n > 1 else 0.0
    low_mj = v * consts.low_power_ma * max(0.0, window - sample_s)
    return ModelPoint(n, profiles.ram_bytes(profile, cfg, n, length, n_classes, n_train, n_eval), g, slots,
                      slot_s, window + slots * slot_s, compute_s, sample_s + step_s + radio_s,
                      cpu_mj + radio_mj + low_mj)


def reduction(first: ModelPoint, last: ModelPoint) -> dict[str, float]:
    """Fractions saved from ``first`` to ``last`` (positive: less)."""
    return {"ram": 1 - last.ram_bytes / first.ram_bytes,
            "latency": 1 - last.latency_s / first.latency_s,
            "energy": 1 - last.energy_mj / first.energy_mj}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``model`` to the ``rocknet`` command's subparsers."""
    p = subparsers.add_parser("model", help="the device and round model per N, without training")
    p.add_argument("--dataset", default="OSULeaf", help="UCR dataset (default %(default)s)")
    p.add_argument("--shape", default=None, help="L,C,NTRAIN,NTEST (datasets not built in)")
    p.add_argument("--nodes", default="1,5,20", help="comma list of N (default %(default)s)")
    p.add_argument("--profile", default="tuned", choices=sorted(profiles.PROFILES))
    p.add_argument("--json", action="store_true", help='print {"points": [...], "reduction": {...}}')
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (the arguments after ``model``), print the table or JSON; 0 on success."""
    parser = argparse.ArgumentParser(prog="rocknet")
    add_parser(parser.add_subparsers(dest="command", required=True))
    a = parser.parse_args(["model", *(sys.argv[1:] if argv is None else argv)])
    try:
        nodes = [int(x) for x in a.nodes.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--nodes must be a comma list of integers, e.g. 1,5,20; got {a.nodes!r}")
    if not nodes:
        parser.error("--nodes needs at least one N, e.g. 1,5,20")
    if a.shape is not None:
        try:
            length, n_classes, n_train, n_eval = parse_shape(a.shape)
        except ValueError as exc:
            parser.error(str(exc))
    elif a.dataset in KNOWN_SHAPES:
        length, n_classes, n_train, n_eval = KNOWN_SHAPES[a.dataset]
    else:
        parser.error(f"dataset {a.dataset!r} is not built in ({', '.join(KNOWN_SHAPES)}): "
                     "pass --shape L,C,NTRAIN,NTEST, or run it as 'rocknet model' with --data-dir")
    # up to 84 devices the split is by kernel, past 84 by (kernel, dilation): 84 x D at most
    n_max = max_devices(len(fit_dilations(length, ModelConfig())[0]))
    if any(not 1 <= n <= n_max for n in nodes):
        parser.error(f"--nodes: each N between 1 and {n_max} for L = {length} "
                     f"({n_max // 84} dilations x 84 kernels)")
    prof = profiles.get_profile(a.profile)
    pts = [model_point(prof, ModelConfig(), n, length, n_classes, n_train, n_eval) for n in nodes]
    red = reduction(pts[0], pts[-1])
    if a.json:
        print(json.dumps({"points": [asdict(p) for p in pts], "reduction": red}, indent=1))
        return 0
    print(f"{a.dataset} (L {length}, C {n_classes}), profile {prof.name}")
    print(f"{'N':>3} {'RAM B':>9} {'G':>3} {'slots':>5} {'slot µs':>7} {'round s':>8} {'compute s':>9} "
          f"{'latency s':>9} {'energy mJ':>9}")
    for p in pts:
        print(f"{p.n_devices:>3} {p.ram_bytes:>9,d} {p.generation_size:>3} {p.slots:>5} {p.slot_s * 1e6:>7.0f} "
              f"{p.round_s:>8.3f} {p.compute_s:>9.4f} {p.latency_s:>9.4f} {p.energy_mj:>9.3f}")
    print("reduction N={} -> N={}: ".format(nodes[0], nodes[-1])
          + ", ".join(f"{k} {v:+.0%}" for k, v in red.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
