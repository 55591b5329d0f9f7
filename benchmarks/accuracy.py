"""Accuracy of the 20-device default model against aeon's ridge baseline (issue 17).

For every bundled univariate equal-length dataset (``bundled_datasets()``) and, with
``--data-dir``, any UCR 2018 folder named by ``--extra``, it trains:

* **ours**: :func:`node.offline.reference.train_reference` with the run's default model:
  ``--head auto`` (:func:`protocol.config.ridge_ram.resolve_head`: the ridge head with aeon's
  dilations where its RAM ledger fits, else ``ModelConfig()``), on the
  ``--quantization`` scale (default ``auto``, the run's default: ``auto_scale``) and
  ``n_shards=N`` (default 20). The reference replays the distributed run's
  stream and sums the partial logits in device order, so it is bitwise the in-process
  distributed run with N devices (tests/integration/test_reference.py pins this); it is used
  here because one process on a loaded machine is far cheaper than N.
* **SGD head**: ``ModelConfig()`` (the SGD head, the paper's power-of-two dilations, the
  training-length rule, ``protocol/config/training_length.py``), the default until the
  ridge head;
* **before issue 17**: ``epochs=15``, ``bias_source="first"`` on the global scale (the
  defaults until issue 17);
* **ours with the rule**: the same with ``selection="decay"`` (protocol/stream/validation.py):
  the devices hold out a seeded fifth of the training split, train each weight decay of
  ``select_weight_decays`` on the rest, score the held-out items, and retrain the winner on
  the whole training split, all inside the run's stream;
* **ours, paper recipe**: ``--recipe paper`` (batch 128, constant lr, no decay, no scaling,
  8-bit Adam, 80/20 split and the best-validation epoch) with the paper's biases (all on
  training series 0) and global scale for ``--paper-epochs`` epochs
  (default 1000, the length of RockNet's own simulation; the CLI's ``--recipe paper`` keeps
  ``--epochs``' default unless told);
* **ridge**: aeon MiniRocket (seeded) + StandardScaler + RidgeClassifierCV(alphas=logspace(-3,
  3, 10)) on the same split, float series;
* **ridge on our features**: the same StandardScaler + RidgeClassifierCV on exactly the
  features our devices compute (their int8 series, dilation rule, bias rows; all shards'
  columns side by side), so that a gap splits into what the features cost (ridge − this)
  and what our trained head costs (this − ours).

Both see only the training split while fitting; the test split is used once, to score.
Datasets whose device 0 does not fit the RAM budget at N are listed with the ledger's
message and the smallest N that fits, and then run at that N.

Usage::

    python -m benchmarks.accuracy [--nodes 20] [--paper-epochs 1000] [--no-rule] [--no-before] [--select]
        [--quantization auto|global|mulaw]
        [--data-dir DIR --extra NAME ...] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace

import numpy as np

from coordinator.service.datasets import (
    QUANTIZATIONS,
    Dataset,
    auto_scale,
    bundled_datasets,
    load_dataset,
    quantize_int8,
)
from node.ml.ridge import RIDGE_ALPHAS
from protocol.config.ram_ledger import DEFAULT_BUDGET_BYTES, RamBudgetExceeded, check, ledger
from protocol.config.ridge_ram import check_ridge, largest_ridge_ledger, resolve_head, ridge_model
from node.offline.reference import ReferenceResult, train_reference
from protocol.config.model import ModelConfig, n_epochs, recipe_overrides, schedule_config
from protocol.config.training_length import MIN_EPOCHS
from protocol.stream.schedule import build_stream

# RIDGE_ALPHAS (node/ml/ridge.py): RidgeClassifierCV's grid, as in aeon's MiniRocket
# examples (issue 3's baseline); the ridge head searches the same one.


@dataclass(frozen=True)
class AccuracyRow:
    """One dataset's result; accuracies are fractions of the test split."""

    name: str
    n_train: int
    n_test: int
    length: int
    n_classes: int
    n_devices: int  # N the model ran with (the requested N unless RAM forced more)
    ours: float
    ridge: float
    ram_note: str  # the ledger's message when the requested N does not fit (either head), else ""
    wall_s: float  # seconds for our model
    ridge_int8: float | None = None  # ridge on the int8-quantized series the devices see
    ridge_ours: float | None = None  # ridge on our devices' own features (ridge_on_our_features)
    selected: float | None = None  # test accuracy with select_config's choice (offline)
    selected_cfg: str = ""  # "wd=…, epochs=…" chosen on the validation carve
    rule: float | None = None  # test accuracy with selection="decay" (on the devices)
    rule_choice: str = ""  # "wd=…" the devices chose
    paper: float | None = None  # test accuracy with --recipe paper (best-validation epoch)
    paper_choice: str = ""  # "epoch …" the devices kept
    before: float | None = None  # the defaults before issue 17: 15 epochs, global scale
    scale: str = ""  # the int8 scale the defaults used ("auto" resolved)
    epochs: int = 0  # the defaults' epochs (the training-length rule)
    rounds: int = 0  # the defaults' rounds at N (protocol.stream)
    rounds_before: int = 0  # the rounds of 15 epochs
    head: str = "sgd"  # the head --head auto chose
    sgd: float | None = None  # the SGD head's accuracy (ModelConfig(): paper dilations)
    rounds_sgd: int = 0  # the SGD head's rounds
    alpha: float | None = None  # the ridge head's leave-one-out alpha

    @property
    def gap_pp(self) -> float:
        """ours - ridge in percentage points (negative: ridge is better)."""
        return 100.0 * (self.ours - self.ridge)

    @property
    def rule_gap_pp(self) -> float | None:
        """rule - ridge in percentage points (None: the rule did not run)."""
        return None if self.rule is None else 100.0 * (self.rule - self.ridge)

    @property
    def paper_gap_pp(self) -> float | None:
        """ours - paper recipe in percentage points (None: the paper recipe did not run)."""
        return None if self.paper is None else 100.0 * (self.ours - self.paper)

    @property
    def one_series_pp(self) -> float:
        """One test series in percentage points (the resolution of the test split)."""
        return 100.0 / self.n_test


def ridge_accuracy(ds: Dataset, seed: int = 0) -> float:
    """aeon MiniRocket + StandardScaler + RidgeClassifierCV test accuracy on ``ds``'s split."""
    from aeon.transformations.collection.convolution_based import MiniRocket

    rocket = MiniRocket(random_state=seed)
    f_train = rocket.fit_transform(ds.x_train[:, None, :].astype(np.float32))
    f_test = rocket.transform(ds.x_test[:, None, :].astype(np.float32))
    return _ridge_score(f_train, ds.y_train, f_test, ds.y_test)


def _ridge_score(f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray, y_test: np.ndarray) -> float:
    """StandardScaler + RidgeClassifierCV(:data:`RIDGE_ALPHAS`) fitted on the training
    features; its accuracy on the test features."""
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=RIDGE_ALPHAS))
    clf.fit(f_train, y_train)
    return float(np.mean(clf.predict(f_test) == y_test))


def ridge_on_our_features(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                          y_test: np.ndarray, cfg: ModelConfig) -> float:
    """StandardScaler + RidgeClassifierCV test accuracy on the features our devices compute
    from the int8 series ``x_train``/``x_test`` with ``cfg`` (every (kernel, dilation) unit:
    the columns of all shards side by side, kernel-major)."""
    from node.ml.minirocket import fit_biases_units, transform_units
    from protocol.config.model import N_KERNELS, bias_fit_rows, fit_dilations

    dilations, fpd = fit_dilations(x_train.shape[1], cfg)
    rows = bias_fit_rows(len(x_train), len(dilations), cfg)
    units = N_KERNELS * len(dilations)
    biases = fit_biases_units(x_train, rows, dilations, fpd, 0, units)
    zero = cfg.padding == "zero"
    f_train = transform_units(x_train, dilations, fpd, biases, 0, units, zero)
    f_test = transform_units(x_test, dilations, fpd, biases, 0, units, zero)
    return _ridge_score(f_train, y_train, f_test, y_test)


def fitting_devices(cfg: ModelConfig, n_devices: int, length: int, n_classes: int) -> tuple[int, str]:
    """The smallest N >= ``n_devices`` whose device 0 fits the budget, and the ledger's
    message for ``n_devices`` ("" when it fits)."""
    try:
        check(ledger(cfg, n_devices, length, n_classes), cfg=cfg, series_length=length, n_classes=n_classes)
        return n_devices, ""
    except RamBudgetExceeded as exc:
        note = str(exc)
    for n in range(n_devices + 1, 85):
        try:
            check(ledger(cfg, n, length, n_classes))
            return n, note
        except RamBudgetExceeded:
            continue
    raise RamBudgetExceeded(note)


def _rounds(cfg: ModelConfig, n_train: int, n_test: int, n_devices: int, n_classes: int) -> int:
    return build_stream(schedule_config(cfg, n_train, n_test, n_devices, n_classes=n_classes)).rounds.n_rounds


def run_one(ds: Dataset, cfg: ModelConfig, n_devices: int, select: bool = False,
            rule: bool = True, paper_epochs: int | None = 1000, quantization: str = "auto",
            before: bool = True) -> AccuracyRow:
    """Train ours and ridge on ``ds`` and return the row: ``cfg`` on the ``quantization``
    scale (``"auto"``: :func:`auto_scale`'s choice); with ``before``, the defaults before
    issue 17 (15 epochs, biases on series 0, global scale); with ``select``, the offline validation-selected
    config; with ``rule``, the on-device rule; with ``paper_epochs``, the paper recipe on the
    paper's biases and (global) scale. The int8 ridge column uses ``quantization``'s series."""
    n, note = fitting_devices(cfg, n_devices, ds.series_length, ds.n_classes)
    scale = auto_scale(ds.x_train) if quantization == "auto" else quantization
    x_train, x_test = quantize_int8(ds.x_train, ds.x_test, scale)
    g_train, g_test = quantize_int8(ds.x_train, ds.x_test, "global")
    n_train, n_test = len(ds.y_train), len(ds.y_test)

    def train(c: ModelConfig, xtr: np.ndarray = x_train, xte: np.ndarray = x_test) -> ReferenceResult:
        return train_reference(xtr, ds.y_train, xte, ds.y_test, ds.n_classes, c, n)

    # The run's default head (--head auto: protocol/config/ridge_ram.py resolve_head).
    default = resolve_head("auto", cfg, sgd_asked=False, n_devices=n, series_length=ds.series_length,
                           n_classes=ds.n_classes, n_train=n_train, budget_bytes=DEFAULT_BUDGET_BYTES)
    if default.head != "ridge":  # why --head auto kept SGD: the ridge ledger's message
        try:
            check_ridge(largest_ridge_ledger(ridge_model(cfg), n, ds.series_length, ds.n_classes, n_train),
                        n_train, DEFAULT_BUDGET_BYTES)
        except RamBudgetExceeded as exc:
            note = (note + " " if note else "") + f"ridge head: {exc}"
    t0 = time.perf_counter()
    res = train(default)
    wall = time.perf_counter() - t0
    sgd_acc = res.test_accuracy if default.head == "sgd" else train(cfg).test_accuracy
    old = replace(cfg, epochs=MIN_EPOCHS, bias_source="first")
    before_acc = train(old, g_train, g_test).test_accuracy if before else None
    selected, selected_cfg = None, ""
    if select:
        sc = select_config(ds, cfg, n)
        selected = train(sc).test_accuracy
        selected_cfg = f"wd={sc.weight_decay:g}, epochs={sc.epochs}"
    rule_acc, rule_choice = None, ""
    if rule:
        rc = replace(cfg, selection="decay")
        r = train(rc)
        rule_acc, rule_choice = r.test_accuracy, f"wd={rc.select_weight_decays[r.chosen]:g}"
    paper_acc, paper_choice = None, ""
    if paper_epochs:
        pc = replace(cfg, **recipe_overrides("paper"), epochs=paper_epochs, bias_source="first")  # type: ignore[arg-type]
        r = train(pc, g_train, g_test)
        paper_acc, paper_choice = r.test_accuracy, f"epoch {r.chosen + 1}"
    # ridge on what the devices receive: separates the quantization's cost from the head's
    q = Dataset(ds.name, x_train.astype(np.float64), ds.y_train, x_test.astype(np.float64), ds.y_test, ds.class_labels)
    return AccuracyRow(
        name=ds.name, n_train=n_train, n_test=n_test, length=ds.series_length,
        n_classes=ds.n_classes, n_devices=n, ours=res.test_accuracy, ridge=ridge_accuracy(ds),
        ram_note=note, wall_s=wall, ridge_int8=ridge_accuracy(q),
        ridge_ours=ridge_on_our_features(x_train, ds.y_train, x_test, ds.y_test, cfg),
        selected=selected, selected_cfg=selected_cfg,
        rule=rule_acc, rule_choice=rule_choice, paper=paper_acc, paper_choice=paper_choice,
        before=before_acc, scale=scale, epochs=n_epochs(n_train, cfg),
        rounds=_rounds(default, n_train, n_test, n, ds.n_classes),
        rounds_before=_rounds(old, n_train, n_test, n, ds.n_classes),
        head=default.head, sgd=sgd_acc, rounds_sgd=_rounds(cfg, n_train, n_test, n, ds.n_classes),
        alpha=RIDGE_ALPHAS[res.chosen] if default.head == "ridge" else None,
    )


#: the grid the offline validation selection searches (weight decay, epochs); see select_config.
SELECT_GRID = [(wd, ep) for wd in (100.0, 10.0, 1.0) for ep in (15, 60)]


def select_config(ds: Dataset, cfg: ModelConfig, n_devices: int, seed: int = 0) -> ModelConfig:
    """Pick (weight_decay, epochs) from :data:`SELECT_GRID` by accuracy on a validation
    split: a seeded, stratification-free 80/20 carve of the *training* split (the test split
    is never seen). Ties go to the earlier grid entry: the strongest decay and the fewest
    epochs, the simplest model the validation split cannot tell apart. Offline only: the
    devices do not run this yet, so it measures what a validation rule would buy; it is not
    a default."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ds.y_train))
    n_val = max(1, len(order) // 5)
    val, fit = order[:n_val], order[n_val:]
    x_fit, x_val = quantize_int8(ds.x_train[fit], ds.x_train[val])
    best, best_acc = cfg, -1.0
    for wd, ep in SELECT_GRID:
        c = replace(cfg, weight_decay=wd, epochs=ep)
        acc = train_reference(x_fit, ds.y_train[fit], x_val, ds.y_train[val], ds.n_classes, c, n_devices).test_accuracy
        if acc > best_acc:
            best, best_acc = c, acc
    return best


def _met(gap_pp: float, one_series_pp: float) -> bool:
    """Within 2 pp of ridge, or within one test series."""
    return gap_pp >= -2.0 or gap_pp >= -one_series_pp - 1e-9


def _acc(value: float | None, note: str = "") -> str:
    if value is None:
        return ""
    return f"{value:.3f}" + (f" ({note})" if note else "")


def markdown(rows: list[AccuracyRow]) -> str:
    """The table as Markdown. 'within 2 pp or 1 series' judges the defaults against ridge;
    '≥ paper' whether the defaults are at least the paper recipe."""
    out = [
        "| dataset | n_train / n_test / L / C | N | scale | head (alpha) | rounds (SGD → ours) "
        "| ours (defaults) | SGD head | before issue 17 | SGD with the rule (chosen) | paper recipe (kept) "
        "| aeon ridge | gap defaults (pp) | within 2 pp or 1 series | ≥ paper | ridge on int8 series "
        "| ridge on the SGD head's features |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        paper_gap = r.paper_gap_pp
        rounds = f"{r.rounds_sgd:,} → {r.rounds:,}" if r.rounds else ""
        head = f"ridge ({r.alpha:.3g})" if r.alpha is not None else f"sgd ({r.epochs} epochs)"
        out.append(
            f"| {r.name} | {r.n_train} / {r.n_test} / {r.length} / {r.n_classes} | {r.n_devices} | {r.scale} | "
            f"{head} | {rounds} | {r.ours:.3f} | {_acc(r.sgd)} | {_acc(r.before)} | {_acc(r.rule, r.rule_choice)} | "
            f"{_acc(r.paper, r.paper_choice)} | {r.ridge:.3f} | {r.gap_pp:+.1f} | "
            f"{'yes' if _met(r.gap_pp, r.one_series_pp) else 'no'} | "
            f"{'' if paper_gap is None else ('yes' if paper_gap >= 0 else 'no')} | {_acc(r.ridge_int8)} | {_acc(r.ridge_ours)} |"
        )
    if any(r.selected is not None for r in rows):
        out += ["", "| dataset | validation-selected (offline) | chosen | gap to ridge (pp) |", "|---|---|---|---|"]
        for r in rows:
            if r.selected is not None:
                out.append(f"| {r.name} | {r.selected:.3f} | {r.selected_cfg} | {100 * (r.selected - r.ridge):+.1f} |")
    notes = [f"- {r.name}: {r.ram_note}" for r in rows if r.ram_note]
    if notes:
        out += ["", "RAM budget at the requested N:"] + notes
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=20)
    p.add_argument("--data-dir", default=None, help="a UCR 2018 archive folder for --extra datasets")
    p.add_argument("--extra", nargs="*", default=[], help="dataset names to load from --data-dir")
    p.add_argument("--only", nargs="*", default=None, help="restrict to these dataset names")
    p.add_argument("--select", action="store_true", help="also run the offline validation selection")
    p.add_argument("--no-rule", action="store_true", help="skip the on-device rule (selection='decay')")
    p.add_argument("--quantization", choices=QUANTIZATIONS, default="auto",
                   help="int8 scale of the series (coordinator/service/datasets.py quantize_int8; "
                        "default auto, the run's default)")
    p.add_argument("--no-before", action="store_true", help="skip the defaults before issue 17")
    p.add_argument("--paper-epochs", type=int, default=1000,
                   help="epochs of the paper-recipe column (0: skip it)")
    args = p.parse_args(argv)
    cfg = ModelConfig()
    names = [n for n in bundled_datasets() if args.only is None or n in args.only]
    rows = []
    for name in names + list(args.extra):
        ds = load_dataset(name, args.data_dir if name in args.extra else None)
        row = run_one(ds, cfg, args.nodes, args.select, rule=not args.no_rule, paper_epochs=args.paper_epochs,
                      quantization=args.quantization, before=not args.no_before)
        print(f"{name}: ours {row.ours:.3f} ({row.head} head, {row.scale}) sgd {_acc(row.sgd)} before {_acc(row.before)} rule {_acc(row.rule, row.rule_choice)} "
              f"paper {_acc(row.paper, row.paper_choice)} ridge {row.ridge:.3f} "
              f"ridge on our features {_acc(row.ridge_ours)} N={row.n_devices} "
              f"({row.wall_s:.1f} s)", flush=True)
        rows.append(row)
    print()
    print(f"quantization: {args.quantization}")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
