"""Everything a run is made of, built and validated before any socket opens.

:func:`build_setup` loads the dataset (coordinator side only), quantizes it to int8 as the
devices hold it, builds the model and schedule configuration, the topology and the loss
model, and checks them, so that a bad argument fails fast with a message that names the fix.
:meth:`RunSetup.shard` is what gets "flashed" to device ``d`` at registration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.engine.setup import RunSetup
from coordinator.service.datasets import QUANTIZATIONS, load_dataset, quantize_int8
from protocol.air.loss import LossModel
from protocol.config.model import recipe_overrides
from protocol.config.model import (
    ModelConfig,
    schedule_config,
)
from protocol.stream.modes import MODES, stream_for
from protocol.stream.placement import parse_split, placement_order
from protocol.config.ridge_ram import check_ridge, largest_ridge_ledger, resolve_head
from protocol.config.run import DEFAULT_RAM_BUDGET_BYTES, RunConfig
from protocol.air.topology import Topology

PROTOCOLS = ("mixer", "glossy", "mixer-coordinated")


class SetupError(ValueError):
    """A run that cannot start; the message says what to change."""


@dataclass(frozen=True)
class RunArgs:
    """What a user chooses for a run (the CLI's flags)."""

    dataset: str = "GunPoint"
    nodes: int = 20
    epochs: int | None = None
    protocol: str = "mixer"
    loss: float = 0.0
    topology: Path | None = None
    seed: int = 0
    data_dir: Path | None = None
    batch_size: int | None = None
    optimizer: str = "adam"
    num_features: int = 10_000
    missing_policy: str = "sum"
    ram_budget_bytes: int = DEFAULT_RAM_BUDGET_BYTES
    eval_every: int = 0
    mode: str = "rocknet"
    profile: str = "tuned"  # device profile (node/mcu/profiles.py)
    recipe: str = "tuned"  # training recipe (protocol/config/model.py RECIPES)
    split: str = "contiguous"  # data placement, see protocol.stream.placement
    quantization: str = "auto"  # int8 scale of the series (datasets.QUANTIZATIONS; auto_scale's choice)
    head: str = "auto"  # the head: auto, sgd or ridge (protocol/config/ridge_ram.py resolve_head)
    model_overrides: dict[str, Any] = field(default_factory=dict)


#: Model fields that only the SGD head reads: giving one asks for SGD (``--head auto``).
_SGD_FIELDS = frozenset({"optimizer", "lr", "beta1", "beta2", "eps", "weight_decay", "batch_size", "epochs",
                         "lr_schedule", "lr_min_ratio", "selection", "select_weight_decays", "val_fraction"})


def _sgd_asked(args: RunArgs) -> bool:
    """Whether ``args`` ask for something only the SGD head has (then ``--head auto`` is SGD)."""
    return (args.epochs is not None or args.batch_size is not None or args.optimizer != "adam"
            or args.recipe != "tuned" or args.profile != "tuned" or args.mode != "rocknet"
            or bool(_SGD_FIELDS & set(args.model_overrides)))


def build_setup(args: RunArgs) -> RunSetup:
    """Validate ``args`` and build the run; raises :class:`SetupError` with the fix."""
    if args.nodes < 1:
        raise SetupError(f"--nodes must be at least 1, got {args.nodes}")
    # the upper limit (84 x the dataset's dilations) is RunConfig's, once L is known
    if args.protocol not in PROTOCOLS:
        raise SetupError(f"--protocol must be one of {PROTOCOLS}, got {args.protocol!r}")
    if not 0.0 <= args.loss < 1.0:
        raise SetupError(f"--loss is a drop probability in [0, 1), got {args.loss}")
    if args.mode not in MODES:
        raise SetupError(f"--mode must be one of {', '.join(MODES)}; got {args.mode!r}")
    try:
        data = load_dataset(args.dataset, args.data_dir)
    except ValueError as exc:
        raise SetupError(str(exc)) from exc
    try:
        parse_split(args.split)
    except ValueError as exc:
        raise SetupError(f"--{exc}") from exc
    if args.quantization not in QUANTIZATIONS:
        raise SetupError(f"--quantization must be one of {', '.join(QUANTIZATIONS)}; "
                         f"got {args.quantization!r}")
    x_train, x_test = quantize_int8(data.x_train, data.x_test, scale=args.quantization)
    y_train = np.asarray(data.y_train, dtype=np.int64)
    y_test = np.asarray(data.y_test, dtype=np.int64)
    # Placement = reordering both sets once; device d then owns its contiguous range of the
    # reordered sets, and the reference trains on the same reordered sets.
    order_train = placement_order(y_train, args.nodes, args.split, args.seed, salt=0)
    order_test = placement_order(y_test, args.nodes, args.split, args.seed, salt=1)
    x_train, y_train = x_train[order_train], y_train[order_train]
    x_test, y_test = x_test[order_test], y_test[order_test]
    n_classes = int(max(data.y_train.max(), data.y_test.max() if len(data.y_test) else 0)) + 1
    try:
        overrides = {**recipe_overrides(args.recipe), **args.model_overrides}
    except ValueError as exc:
        raise SetupError(str(exc)) from exc
    # the firmware profile runs the firmware's 8-bit Adam (linear_classifier.c USE_QADAM)
    overrides.setdefault("optimizer", "adam8bit" if args.profile == "firmware" else args.optimizer)
    # ... and its transform: PPV over all L zero-padded positions for every kernel
    if args.profile == "firmware":
        overrides.setdefault("padding", "zero")
        # ... and fits every bias on training series 0 (the tuned default draws aeon's rows)
        overrides.setdefault("bias_source", "first")
    overrides.setdefault("num_features", args.num_features)
    overrides.setdefault("seed", args.seed)
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    try:
        model = ModelConfig(**overrides)
        if "head" not in args.model_overrides:
            model = resolve_head(
                args.head, model, sgd_asked=_sgd_asked(args), n_devices=args.nodes,
                series_length=int(x_train.shape[1]), n_classes=n_classes, n_train=len(data.y_train),
                budget_bytes=args.ram_budget_bytes)
        schedule = dataclasses.replace(schedule_config(
            model, len(data.y_train), len(data.y_test), args.nodes, eval_every=args.eval_every,
            n_classes=n_classes,
        ), placement=args.split,
            firmware_messages=args.profile == "firmware" and args.mode == "rocknet")
        config = RunConfig(
            dataset=data.name,
            n_devices=args.nodes,
            n_classes=n_classes,
            series_length=int(x_train.shape[1]),
            model=model,
            schedule=schedule,
            missing_policy=args.missing_policy,
            ram_budget_bytes=args.ram_budget_bytes,
            mode=args.mode,
            profile=args.profile,
        )
        stream = stream_for(config)
        if model.head == "ridge":  # refuse here, before any node starts, what every node would
            check_ridge(largest_ridge_ledger(model, args.nodes, config.series_length, n_classes,
                                             len(data.y_train)), len(data.y_train), args.ram_budget_bytes)
    except (TypeError, ValueError) as exc:
        raise SetupError(str(exc)) from exc
    try:
        if args.topology is not None:
            topology = Topology.from_file(args.topology)
        else:
            topology = Topology.default_testbed(n_devices=args.nodes)
        topology.validate()
    except ValueError as exc:
        raise SetupError(f"topology: {exc}") from exc
    if topology.n_devices != args.nodes:
        raise SetupError(
            f"the topology has {topology.n_devices} compute nodes but --nodes is {args.nodes}: "
            "make them match"
        )
    loss = LossModel(topology)
    if args.loss > 0:
        loss.set_bernoulli(args.loss)
    return RunSetup(
        config=config,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_labels=[str(c) for c in data.class_labels],
        topology=topology,
        loss=loss,
        protocol=args.protocol,
        stream=stream,
    )
