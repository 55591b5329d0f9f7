"""The centralized reference trainer: the whole model in one process, no network.

It follows the same sample stream as the distributed run (:func:`protocol.stream.schedule.build_stream`:
calibration pass, epochs of batches, evaluation passes), fits every shard's biases from the
same training rows, keeps one :class:`node.ml.head.ShardHead` and one
:class:`node.ml.scaling.FeatureScaler` per shard, and sums the per-shard partial logits in
device order with :func:`node.ml.head.sum_partial_logits`. With the same ``n_shards`` the
distributed run must give bitwise the same weights.

It computes features once per split and a batch's partial logits at once (all samples of a
batch see the same weights), so it is a different code path from the node's one sample at a
time, with the same numbers.

Command line (the coordinator runs it as a subprocess, it cannot import ``node``)::

    python -m node.offline.reference --npz data.npz --config '{"model": {...}, "n_shards": 20}' [--out result.json]

``data.npz`` holds ``x_train``, ``y_train``, ``x_test``, ``y_test`` (int8 series, integer
labels 0..C-1); ``--config`` is a JSON string or a JSON file path with ``model`` (a
:class:`protocol.config.model.ModelConfig` dict), ``n_shards`` and optionally ``n_classes`` and
``eval_every``. It prints (or writes) a JSON object with ``test_accuracy`` and the history.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from node.ml.head import ShardHead, sum_partial_logits
from node.ml.minirocket import fit_biases_units, transform_units
from node.ml.scaling import FeatureScaler
from node.ml.shard import build_shard
from node.offline.reference_ridge import RidgeRun, train_ridge
from protocol.config.model import (
    ModelConfig,
    bias_fit_rows,
    fit_dilations,
    n_features_total,
    schedule_config,
)
from protocol.stream.schedule import KIND_CALIB, KIND_EVAL, KIND_TRAIN, ScheduleConfig, Stream, build_stream
from protocol.stream.validation import select_candidate


@dataclass
class ReferenceResult:
    """What the reference run produced.

    ``weights[s]`` is shard ``s``'s ``W float32[C, F_s]``; ``bias`` is ``b float32[C]``.
    ``train_loss``/``train_accuracy`` are per epoch, from the summed logits each training
    sample got during that epoch (before the step of its batch). ``eval_history`` has one
    ``{"epoch", "accuracy", "loss"}`` per evaluation pass.
    """

    weights: list[np.ndarray]
    bias: np.ndarray
    test_accuracy: float
    train_loss: list[float]
    train_accuracy: list[float]
    eval_history: list[dict[str, float]]
    n_features: int
    steps: int
    heads: list[ShardHead] = field(repr=False, default_factory=list)
    scalers: list[FeatureScaler] = field(repr=False, default_factory=list)
    wall_s: float = 0.0
    #: The validation rule: one ``{"epoch", "correct", "total", "accuracy"}`` per validation
    #: pass (``epoch``: the candidate for ``"decay"``), and the chosen candidate or epoch
    #: (-1: no rule).
    val_history: list[dict[str, float]] = field(default_factory=list)
    chosen: int = -1

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "test_accuracy": self.test_accuracy,
            "train_loss": self.train_loss,
            "train_accuracy": self.train_accuracy,
            "eval_history": self.eval_history,
            "n_features": self.n_features,
            "steps": self.steps,
            "wall_s": self.wall_s,
            "val_history": self.val_history,
            "chosen": self.chosen,
        }


def _as_stream(
    schedule: Stream | ScheduleConfig | None, cfg: ModelConfig, n_train: int, n_test: int, n_shards: int,
    n_classes: int,
) -> Stream:
    if schedule is None:
        schedule = schedule_config(cfg, n_train, n_test, n_shards, n_classes=n_classes)
    stream = schedule if isinstance(schedule, Stream) else build_stream(schedule)
    sc = stream.config
    if (sc.n_train, sc.n_test, sc.n_devices) != (n_train, n_test, n_shards):
        raise ValueError(
            f"schedule is for n_train={sc.n_train}, n_test={sc.n_test}, n_devices={sc.n_devices}; "
            f"the data has n_train={n_train}, n_test={n_test} and n_shards={n_shards}"
        )
    if cfg.feature_scaling and not sc.calibrate:
        raise ValueError("feature_scaling needs a calibration pass: build the schedule with calibrate=True")
    return stream


def shard_features(x_train: np.ndarray, x_test: np.ndarray, cfg: ModelConfig,
                   n_shards: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every shard's unscaled features of both splits (float32 [n, F_s] per shard), each
    from its own biases (by kernel up to 84 shards, by unit past)."""
    length = x_train.shape[1]
    dilations, fpd = fit_dilations(length, cfg)
    rows = bias_fit_rows(len(x_train), len(dilations), cfg)
    zero = cfg.padding == "zero"
    f_train: list[np.ndarray] = []
    f_test: list[np.ndarray] = []
    for s in range(n_shards):
        spec = build_shard(cfg, length, s, n_shards)
        u0, u1 = spec.unit_start, spec.unit_stop
        biases = fit_biases_units(x_train, rows, dilations, fpd, u0, u1)
        f_train.append(transform_units(x_train, dilations, fpd, biases, u0, u1, zero))
        f_test.append(transform_units(x_test, dilations, fpd, biases, u0, u1, zero) if len(x_test) else
                      np.zeros((0, biases.shape[0]), dtype=np.float32))
    return f_train, f_test


def train_reference(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    cfg: ModelConfig,
    n_shards: int,
    schedule: Stream | ScheduleConfig | None = None,
) -> ReferenceResult:
    """Train the model centrally on the distributed run's stream (see the module doc).

    Args:
        x_train, x_test: int8[n, L] quantized series.
        y_train, y_test: class indices 0..C-1.
        n_classes: C.
        cfg: the model configuration.
        n_shards: N, the number of devices whose shards are emulated.
        schedule: the stream (or its config); default
            ``protocol.config.model.schedule_config(cfg, n_train, n_test, n_shards)``.
    """
    t0 = time.perf_counter()
    x_train = np.ascontiguousarray(x_train)
    x_test = np.ascontiguousarray(x_test)
    if x_train.dtype != np.int8 or x_test.dtype != np.int8:
        raise TypeError("x_train and x_test must be int8: quantize with coordinator.service.datasets.quantize_int8")
    y_train = np.asarray(y_train, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    n_train, length = x_train.shape
    n_test = x_test.shape[0]
    if x_test.ndim != 2 or (n_test and x_test.shape[1] != length):
        raise ValueError(f"x_test must have shape (n, {length})")
    stream = _as_stream(schedule, cfg, n_train, n_test, n_shards, n_classes)

    _, fpd = fit_dilations(length, cfg)
    total = n_features_total(fpd)
    selection = stream.config.selection

    def phase_heads(phase: int, chosen: int) -> list[ShardHead]:
        """Fresh heads of stream phase ``phase`` (its weight decay and step count)."""
        c, steps = cfg, stream.steps
        if selection != "none":
            c, steps = replace(cfg, weight_decay=cfg.phase_weight_decay(phase, chosen)), stream.phase_steps(phase)
        return [ShardHead.for_shard(build_shard(c, length, s, n_shards), n_classes, c, steps)
                for s in range(n_shards)]

    f_train, f_test = shard_features(x_train, x_test, cfg, n_shards)
    scalers = [FeatureScaler(f.shape[1], enabled=cfg.feature_scaling) for f in f_train]
    if cfg.head == "ridge":
        return _ridge_result(train_ridge(f_train, f_test, scalers, y_train, y_test, n_classes, cfg, stream),
                             scalers, stream, t0)
    heads = phase_heads(0, 0)
    assert [h.n_features for h in heads] == [f.shape[1] for f in f_train]
    assert all(h.total_features == total for h in heads)
    phase, chosen = 0, -1
    val_history: list[dict[str, float]] = []
    best: tuple[int, list[np.ndarray], np.ndarray] | None = None  # "epoch": (correct, W, b)

    epochs = stream.config.epochs
    loss_sum = np.zeros(epochs)
    correct = np.zeros(epochs)
    seen = np.zeros(epochs)
    eval_parts: list[tuple[list[np.ndarray], list[np.ndarray], int]] = []
    scaled_train: list[np.ndarray] | None = None
    scaled_test: list[np.ndarray] | None = None

    def scaled() -> tuple[list[np.ndarray], list[np.ndarray]]:
        nonlocal scaled_train, scaled_test
        if scaled_train is None:
            for sc in scalers:
                if not sc.finalized:
                    sc.finalize()
            scaled_train = [sc.apply(f) for sc, f in zip(scalers, f_train)]
            scaled_test = [sc.apply(f) for sc, f in zip(scalers, f_test)]
        assert scaled_test is not None
        return scaled_train, scaled_test

    def summed_logits(feats: list[np.ndarray], idx: np.ndarray) -> np.ndarray:
        parts = [h.partial_logits(f[idx]) for h, f in zip(heads, feats)]
        return sum_partial_logits(parts)

    for a, b in stream.batches:
        kind = int(stream.kind[a])
        idx = stream.sample[a:b]
        if kind == KIND_CALIB:
            if cfg.feature_scaling:
                for sc, f in zip(scalers, f_train):
                    sc.update(f[idx])
            continue
        tr, te = scaled()
        if int(stream.phase[a]) != phase:  # the validation rule: the next head
            phase = int(stream.phase[a])
            correct_by = {int(v["epoch"]): int(v["correct"]) for v in val_history}
            if selection == "decay":
                k = stream.config.n_candidates
                if phase >= k:
                    chosen = select_candidate([correct_by.get(c, 0) for c in range(k)])
                heads = phase_heads(phase, max(chosen, 0))
            elif best is not None:  # "epoch": back to the best validation epoch's weights
                chosen = min(e for e, c in correct_by.items() if c == best[0])
                for h, w in zip(heads, best[1]):
                    h.W[...] = w
                heads[0].b[...] = best[2]
        if kind == KIND_EVAL and bool(stream.validation[a]):
            # a validation pass is one batch: training samples, scored, never learned from
            z = summed_logits(tr, idx)
            hits = int(np.sum(np.argmax(z, axis=1) == y_train[idx]))
            val_history.append({"epoch": int(stream.epoch[a]), "correct": hits, "total": len(idx),
                                "accuracy": hits / len(idx)})
            if selection == "epoch" and (best is None or hits > best[0]):
                best = (hits, [h.W.copy() for h in heads], heads[0].b.copy())
            continue
        if kind == KIND_EVAL:
            # an evaluation pass spans several consecutive batches of the stream
            z = summed_logits(te, idx)
            y = y_test[idx]
            if a == 0 or not stream.is_test(a - 1):
                eval_parts.append(([], [], int(stream.epoch[a])))
            eval_parts[-1][0].append(z)
            eval_parts[-1][1].append(y)
            continue
        assert kind == KIND_TRAIN
        # a batch of the stream may contain several steps only if the caller built it so:
        # split at every step, all samples between two steps share the weights
        cuts = [a] + [i + 1 for i in range(a, b) if stream.step_after[i]]
        if cuts[-1] != b:
            cuts.append(b)
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            if lo == hi:
                continue
            sub = stream.sample[lo:hi]
            z = summed_logits(tr, sub)
            y = y_train[sub]
            loss = 0.0
            for h, f in zip(heads, tr):
                loss = h.accumulate_batch(f[sub], z, y)
            e = int(stream.epoch[lo])
            loss_sum[e] += loss
            correct[e] += float(np.sum(np.argmax(z, axis=1) == y))
            seen[e] += hi - lo
            if stream.step_after[hi - 1]:
                for h in heads:
                    h.step()

    tr, te = scaled()
    eval_history: list[dict[str, float]] = []
    for zs, ys, epoch in eval_parts:
        z, y = np.concatenate(zs), np.concatenate(ys)
        eval_history.append(
            {"epoch": epoch, "accuracy": float(np.mean(np.argmax(z, axis=1) == y)), "loss": _mean_ce(z, y)}
        )
    if eval_history:
        test_accuracy = eval_history[-1]["accuracy"]
    elif n_test:
        test_accuracy = float(np.mean(np.argmax(summed_logits(te, np.arange(n_test)), axis=1) == y_test))
    else:
        test_accuracy = float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        train_loss = (loss_sum / seen).tolist()
        train_acc = (correct / seen).tolist()
    return ReferenceResult(
        weights=[h.W.copy() for h in heads],
        bias=heads[0].b.copy(),
        test_accuracy=test_accuracy,
        train_loss=train_loss,
        train_accuracy=train_acc,
        eval_history=eval_history,
        n_features=total,
        steps=stream.steps,
        heads=heads,
        scalers=scalers,
        wall_s=time.perf_counter() - t0,
        val_history=val_history,
        chosen=chosen,
    )


def _ridge_result(run: RidgeRun, scalers: list[FeatureScaler], stream: Stream, t0: float) -> ReferenceResult:
    heads = run.heads
    eval_history: list[dict[str, float]] = []
    test_accuracy = float("nan")
    if run.z is not None and run.y is not None:
        test_accuracy = float(np.mean(np.argmax(run.z, axis=1) == run.y))
        eval_history.append({"epoch": int(stream.epoch[-1]), "accuracy": test_accuracy,
                             "loss": _mean_ce(run.z, run.y)})
    solution = heads[0].solution
    return ReferenceResult(
        weights=[h.W.copy() for h in heads], bias=heads[0].b.copy(), test_accuracy=test_accuracy,
        train_loss=[], train_accuracy=[], eval_history=eval_history, n_features=heads[0].total_features,
        steps=stream.steps, heads=list(heads), scalers=scalers, wall_s=time.perf_counter() - t0,
        chosen=-1 if solution is None else solution.alpha_index,
    )


def _mean_ce(z: np.ndarray, y: np.ndarray) -> float:
    if len(y) == 0:
        return float("nan")
    z64 = z.astype(np.float64)
    z64 -= z64.max(axis=1, keepdims=True)
    logp = z64 - np.log(np.exp(z64).sum(axis=1, keepdims=True))
    return float(-np.mean(logp[np.arange(len(y)), y]))


# ----------------------------------------------------------------------------- CLI


def _load_config(text: str) -> dict[str, Any]:
    path = Path(text)
    if not text.lstrip().startswith("{") and path.is_file():
        text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--config is neither a JSON object nor a JSON file: {exc}") from None
    if not isinstance(data, dict):
        raise SystemExit("--config must be a JSON object with 'model' and 'n_shards'")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node.offline.reference", description=__doc__.split("\n")[0])
    parser.add_argument("--npz", required=True, help="x_train, y_train, x_test, y_test (int8 series)")
    parser.add_argument(
        "--config",
        default="{}",
        help='JSON (string or file): {"model": {...ModelConfig...}, "n_shards": N, "eval_every": 0}',
    )
    parser.add_argument("--out", help="write the JSON result here instead of stdout")
    parser.add_argument("--weights-out", help="also write the weights (W_0..W_{N-1}, b) to this .npz")
    args = parser.parse_args(argv)

    conf = _load_config(args.config)
    unknown = set(conf) - {"model", "n_shards", "n_classes", "eval_every"}
    if unknown:
        raise SystemExit(f"--config: unknown keys {sorted(unknown)}")
    cfg = ModelConfig.from_dict(conf.get("model", {}))
    n_shards = int(conf.get("n_shards", 1))
    with np.load(args.npz) as data:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(data.files)
        if missing:
            raise SystemExit(f"{args.npz}: missing arrays {sorted(missing)}")
        x_train, y_train = data["x_train"], data["y_train"].astype(np.int64)
        x_test, y_test = data["x_test"], data["y_test"].astype(np.int64)
    n_classes = int(conf.get("n_classes", int(max(y_train.max(), y_test.max() if len(y_test) else 0)) + 1))
    sched = schedule_config(cfg, len(x_train), len(x_test), n_shards, eval_every=int(conf.get("eval_every", 0)),
                            n_classes=n_classes)
    result = train_reference(x_train, y_train, x_test, y_test, n_classes, cfg, n_shards, sched)
    out = result.to_json_dict()
    out["model"] = cfg.to_dict()
    out["n_shards"] = n_shards
    text = json.dumps(out, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    if args.weights_out:
        arrays = {f"W_{i}": w for i, w in enumerate(result.weights)}
        np.savez(args.weights_out, b=result.bias, **arrays)  # type: ignore[arg-type]  # numpy's stub takes **kwds for allow_pickle
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
