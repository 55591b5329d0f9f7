"""One point of a sweep: the testbed at N devices, run into a directory and read back.

:func:`run_point` runs the real testbed (:func:`coordinator.service.launch.run_testbed`: the
coordinator and N node processes, lockstep, free ports) and :func:`analyze_run` turns the run
directory into a :class:`SweepPoint` (how each number is measured: :mod:`coordinator.tools.sweep`).
``rocknet sweep`` runs one point per N; ``rocknet baseline`` runs one per dataset.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from coordinator.tools.run_dir import read_run
from protocol.air.energy import DEFAULT_CONSTANTS
from protocol.config.model import ModelConfig, fit_dilations, kernels_of_units, unit_offsets, unit_ranges
from protocol.config.run import DEFAULT_RAM_BUDGET_BYTES

log = logging.getLogger("rocknet.sweep")

#: The budget the sweep's runs are started with, so that every N is measured.
LIFTED_BUDGET_BYTES = 1 << 30
DEFAULT_NODES = (1, 2, 5, 10, 15, 20)


@dataclass(frozen=True)
class SweepOptions:
    """What to sweep and where to write it."""

    dataset: str
    out_dir: Path
    nodes: tuple[int, ...] = DEFAULT_NODES
    epochs: int | None = None
    optimizer: str = "adam"
    num_features: int = 10_000
    protocol: str = "mixer"
    seed: int = 0
    data_dir: Path | None = None
    ram_budget_bytes: int = DEFAULT_RAM_BUDGET_BYTES
    reference: bool = False
    baseline: bool = True
    nn_epochs: int | None = None
    reuse: bool = False
    seeds: int = 1  # repetitions: seeds seed .. seed + seeds - 1 (coordinator/tools/sweep_seeds.py)
    in_process: bool = False  # every device in the sweep's process (same model bit for bit)
    model_overrides: dict[str, Any] = field(default_factory=dict)
    profile: str = "tuned"  # device profile (node/mcu/profiles.py)
    recipe: str = "tuned"  # training recipe (protocol/config/model.py RECIPES)

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ValueError("--nodes needs at least one N")
        if any(n < 1 for n in self.nodes):
            raise ValueError(f"every N must be >= 1, got {list(self.nodes)}")
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError(f"--nodes has duplicates: {list(self.nodes)}")
        if self.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {self.seeds}")
        if self.ram_budget_bytes < 1:
            raise ValueError("--ram-budget must be a positive number of bytes")


@dataclass(frozen=True)
class SweepPoint:
    """One row of the sweep table: the testbed at ``nodes`` devices (fields in ``sweep.csv``
    column order; None where the run has no value)."""

    dataset: str
    nodes: int
    epochs: int
    optimizer: str
    features_total: int
    kernels_per_device: int
    features_per_device: int
    ram_bytes: int  # the largest device's ledger
    ram_kib: float
    ram_budget_bytes: int  # the real budget the ledger is checked against
    fits: bool
    rounds: int
    train_rounds: int
    virtual_time_s: float
    round_latency_s: float | None  # virtual_time_s / rounds
    train_round_latency_s: float | None  # means over the training rounds, s
    train_round_compute_s: float | None
    train_round_comm_s: float | None
    train_round_slots: float | None
    energy_per_train_sample_mj: float | None  # mean over devices
    energy_per_train_sample_mj_max: float | None  # the most-consuming device
    cpu_energy_per_train_sample_mj: float | None  # the largest device's compute window
    energy_run_mj_mean: float | None  # whole run, mean over devices
    cpu_mj_mean: float | None
    tx_mj_mean: float | None
    rx_mj_mean: float | None
    low_power_mj_mean: float | None
    radio_on_s_mean: float | None
    test_accuracy: float | None
    centralized_test_accuracy: float | None
    packet_loss_ratio: float | None
    wall_time_s: float | None
    phase: str | None

    def as_dict(self) -> dict[str, Any]:
        """The row as ``sweep.csv`` / ``sweep.json`` hold it (keys in :data:`COLUMNS` order)."""
        return asdict(self)


#: Columns of sweep.csv, in order.
COLUMNS = tuple(f.name for f in fields(SweepPoint))


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def train_sample_energy_mj(rounds: list[dict[str, Any]], n_devices: int) -> list[float] | None:
    """Per device: mean energy increment (mJ) over the training rounds.

    Needs consecutive lockstep records (each carries the cumulative per-device energy right
    after its round); returns None when no training round has its predecessor recorded.
    """
    by_round = {r["round"]: r for r in rounds}
    sums = [0.0] * n_devices
    count = 0
    for r in rounds:
        if r.get("kind") != "train":
            continue
        prev = by_round.get(r["round"] - 1)
        if prev is None or not r.get("nodes") or not prev.get("nodes"):
            continue
        now = {n["id"]: n["energy_mj"] for n in r["nodes"]}
        before = {n["id"]: n["energy_mj"] for n in prev["nodes"]}
        for d in range(n_devices):
            sums[d] += now.get(d, 0.0) - before.get(d, 0.0)
        count += 1
    if count == 0:
        return None
    return [s / count for s in sums]


def analyze_run(run_dir: Path, budget_bytes: int = DEFAULT_RAM_BUDGET_BYTES) -> SweepPoint:
    """One sweep row from a finished run directory (``budget_bytes``: the RAM to check against)."""
    config, summary, rounds, _ = read_run(run_dir)
    run = config["run"]
    model = ModelConfig.from_dict(run["model"])
    n = int(summary["nodes"])
    dilations, fpd = fit_dilations(int(run["series_length"]), model)
    u0, u1 = unit_ranges(n, len(dilations))[0]  # by kernel up to 84 devices, by unit past
    k0, k1 = kernels_of_units(u0, u1, len(dilations))
    per_node = sorted(summary["per_node"], key=lambda p: p["id"])
    ram = max((int(p["ram_bytes"]) for p in per_node), default=0)
    train = [r for r in rounds if r.get("kind") == "train"]
    comm = [r["slots"] * r["slot_s"] for r in train]
    lat = [r["latency_s"] for r in train]
    energy = None
    if config.get("coordinator", {}).get("lockstep"):
        energy = train_sample_energy_mj(rounds, n)

    def part_mean(key: str) -> float | None:
        return _mean([p["energy_parts_mj"][key] for p in per_node if "energy_parts_mj" in p])

    rounds_done = int(summary["rounds"])
    return SweepPoint(
        dataset=summary["dataset"],
        nodes=n,
        epochs=int(summary["epochs"]),
        optimizer=model.optimizer,
        features_total=84 * int(fpd.sum()),
        kernels_per_device=k1 - k0,
        features_per_device=int(unit_offsets(fpd)[u1] - unit_offsets(fpd)[u0]),
        ram_bytes=ram,
        ram_kib=ram / 1024,
        ram_budget_bytes=budget_bytes,
        fits=ram <= budget_bytes,
        rounds=rounds_done,
        train_rounds=len(train),
        virtual_time_s=float(summary["virtual_time_s"]),
        round_latency_s=float(summary["virtual_time_s"]) / rounds_done if rounds_done else None,
        train_round_latency_s=_mean(lat),
        train_round_compute_s=_mean([a - c for a, c in zip(lat, comm)]),
        train_round_comm_s=_mean(comm),
        train_round_slots=_mean([float(r["slots"]) for r in train]),
        energy_per_train_sample_mj=_mean(energy) if energy else None,
        energy_per_train_sample_mj_max=max(energy) if energy else None,
        cpu_energy_per_train_sample_mj=_cpu_mj(max(
            (float(p["compute_s_modeled"]) / rounds_done for p in per_node
             if "compute_s_modeled" in p and rounds_done), default=None)),
        energy_run_mj_mean=_mean([p["energy_mj"] for p in per_node]),
        cpu_mj_mean=part_mean("cpu_mj"),
        tx_mj_mean=part_mean("tx_mj"),
        rx_mj_mean=part_mean("rx_mj"),
        low_power_mj_mean=part_mean("low_power_mj"),
        radio_on_s_mean=_mean([p["radio_on_s"] for p in per_node]),
        test_accuracy=summary.get("test_accuracy"),
        centralized_test_accuracy=summary.get("centralized_test_accuracy"),
        packet_loss_ratio=summary.get("packet_loss_ratio"),
        wall_time_s=summary.get("wall_time_s"),
        phase=summary.get("phase"),
    )


def _cpu_mj(compute_s: float | None) -> float | None:
    """CPU energy (mJ) of ``compute_s`` seconds at the CPU current of :mod:`protocol.air.energy`.

    Given the busiest device's modeled MCU seconds per round (every round carries one
    sample). Not the compute window: under ``--profile firmware`` the window is fixed
    (``340 C / N + 20`` ms) and the device sleeps through the rest of it."""
    if compute_s is None:
        return None
    return compute_s * DEFAULT_CONSTANTS.voltage_v * DEFAULT_CONSTANTS.cpu_ma



def run_args_for(opts: SweepOptions, n: int) -> Any:
    """The :class:`~coordinator.service.run_setup.RunArgs` of the sweep's run at ``n`` nodes."""
    from coordinator.service.run_setup import RunArgs

    return RunArgs(
        dataset=opts.dataset, nodes=n, epochs=opts.epochs, protocol=opts.protocol, seed=opts.seed,
        data_dir=opts.data_dir, optimizer=opts.optimizer, num_features=opts.num_features,
        ram_budget_bytes=LIFTED_BUDGET_BYTES, model_overrides=dict(opts.model_overrides),
        profile=opts.profile, recipe=opts.recipe,
        head="sgd",  # the paper's claim against N is its SGD head's (the budget is lifted here)
    )


def _reusable(run_dir: Path, args: Any) -> bool:
    """A finished run in ``run_dir`` made with exactly ``args``."""
    try:
        config, summary, _, _ = read_run(run_dir)
    except ValueError:
        return False
    wanted = json.loads(json.dumps(asdict(args), default=str))  # as config.json holds it
    return summary.get("phase") == "finished" and config.get("args") == wanted


def run_point(opts: SweepOptions, n: int, run_dir: Path) -> SweepPoint:
    """Run the testbed at ``n`` nodes into ``run_dir`` (lockstep, free ports) and analyze it."""
    from coordinator.service.launch import LaunchOptions, run_testbed
    from coordinator.service.server import CoordinatorOptions

    args = run_args_for(opts, n)
    if opts.reuse and _reusable(run_dir, args):
        log.info("N=%d: reusing the finished run in %s", n, run_dir)
        return analyze_run(run_dir, opts.ram_budget_bytes)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # metrics.jsonl is appended to: never mix two runs
    launch = LaunchOptions(
        out_dir=run_dir,
        coordinator=CoordinatorOptions(node_port=0, feed_port=0, control_port=0, lockstep=True,
                                       in_process=opts.in_process),
        reference=opts.reference,
        progress=False,
    )
    run_testbed(args, launch)
    return analyze_run(run_dir, opts.ram_budget_bytes)
