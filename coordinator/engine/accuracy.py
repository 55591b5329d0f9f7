"""What the coordinator reports per training mode (docs/modes.md).

- Accuracy: in the default mode every device knows every label, so the initiator's view is
  the run's. With private labels or data-parallel training only a sample's owner knows its
  label (and, data-parallel, only the owner even evaluates it): every device reports the
  counts of its own samples and :func:`aggregate_pass` adds them up.
- Traffic: :attr:`coordinator.engine.medium.Air.traffic` per kind, and per training sample
  (``per_train_sample``): what ``rocknet compare`` tabulates.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from coordinator.engine.records import RunningAccuracy
from protocol.stream.schedule import KIND_TRAIN, MODE_DATA_PARALLEL, MODE_ROCKNET


def aggregate_pass(passes: Iterable[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Sum the per-owner counts of one pass (``PassMetrics.as_dict()`` of each device, the
    same kind and epoch): ``{epoch, correct, total, skipped, accuracy, loss}``."""
    rows = [p for p in passes if p]
    if not rows:
        return None
    epoch = max(int(p["epoch"]) for p in rows)
    rows = [p for p in rows if int(p["epoch"]) == epoch]
    correct = sum(int(p["correct"]) for p in rows)
    total = sum(int(p["total"]) for p in rows)
    skipped = sum(int(p["skipped"]) for p in rows)
    loss_sum = sum(float(p["loss"] or 0.0) * int(p["total"]) for p in rows)
    return {
        "kind": rows[0]["kind"], "epoch": epoch, "correct": correct, "total": total,
        "skipped": skipped, "accuracy": correct / total if total else None,
        "loss": loss_sum / total if total else None,
    }


def running_accuracy(mode: str, live_stats: list[dict[str, Any]], n_test: int) -> RunningAccuracy:
    """The running accuracy from the live devices' latest TX stats.

    Default mode: every device knows every label, so the first live device's view is the
    run's (the initiator's). Other modes: the owners' counts summed (:func:`aggregate_pass`);
    the evaluation accuracy is given once the owners together scored (or skipped) the whole
    test set.
    """
    if mode != MODE_ROCKNET:
        train = aggregate_pass(s.get("train") for s in live_stats)
        ev = aggregate_pass(s.get("eval") for s in live_stats)
        acc = RunningAccuracy()
        if train is not None:
            acc = RunningAccuracy(epoch=train["epoch"], train_accuracy=train["accuracy"],
                                  train_loss=train["loss"])
        if ev is not None and ev["total"] + ev["skipped"] >= n_test:
            acc = acc.updated(RunningAccuracy(eval_accuracy=ev["accuracy"], eval_epoch=ev["epoch"]))
        return acc
    for stats in live_stats:
        acc = RunningAccuracy()
        train = stats.get("train")
        if train:
            acc = RunningAccuracy(epoch=train["epoch"], train_accuracy=train["accuracy"],
                                  train_loss=train["loss"])
        ev = stats.get("eval")
        if ev and ev["total"] + ev["skipped"] >= n_test:
            acc = acc.updated(RunningAccuracy(eval_accuracy=ev["accuracy"], eval_loss=ev["loss"],
                                              eval_epoch=ev["epoch"]))
        return acc
    return RunningAccuracy()


def mode_summary(coord: Any, setup: Any, summary: dict[str, Any]) -> dict[str, Any]:
    """Keys to add to ``summary.json``: the training mode, traffic by kind and per training
    sample, peak RAM, and (private labels, data-parallel) the owners' summed accuracy."""
    config = setup.config
    stream = setup.stream
    train_samples = int((stream.kind == KIND_TRAIN).sum())
    traffic = coord.air.traffic
    rams = [n["ram_bytes"] for n in summary.get("per_node", []) if n.get("ram_bytes")]
    out: dict[str, Any] = {
        "training_mode": config.mode,
        "train_samples": train_samples,
        "steps": stream.steps,
        "traffic": traffic.as_dict(),
        "per_train_sample": traffic.per_train_sample(train_samples),
        "peak_ram_bytes": max(rams) if rams else None,
        "ram_budget_bytes": config.ram_budget_bytes,
    }
    finals = coord.finals
    if config.mode != MODE_ROCKNET:
        last_eval = []
        for final in finals.values():
            evals = [p for p in final.stats.get("passes", []) if p["kind"] == "eval"]
            last_eval.append(evals[-1] if evals else None)
        ev = aggregate_pass(last_eval)
        out["test_accuracy"] = ev["accuracy"] if ev else None
        out["test_scored"] = ev["total"] if ev else 0
    if config.mode == MODE_DATA_PARALLEL:
        digests = {f.stats.get("weights_digest") for f in finals.values()}
        out["replicas_identical"] = len(digests) == 1 if finals else None
    return out


def fmt_bytes(n: float | None) -> str:
    """``1,234 B`` / ``12.3 KiB`` / ``4.56 MiB`` for tables."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "n/a"
    if n < 10 * 1024:
        return f"{n:,.0f} B"
    if n < 10 * 1024 * 1024:
        return f"{n / 1024:,.1f} KiB"
    return f"{n / 2**20:,.2f} MiB"
