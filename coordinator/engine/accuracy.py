"""The run's accuracy from what the devices report (docs/modes.md).

In the default mode every device knows every label, so the initiator's view is the run's.
With private labels or data-parallel training only a sample's owner knows its label (and,
data-parallel, only the owner even evaluates it): every device reports the counts of its
own samples and :func:`aggregate_pass` adds them up.
"""

from __future__ import annotations

from collections.abc import Iterable

from coordinator.engine.records import RunningAccuracy
from protocol.stream.modes import TrainingMode
from protocol.wire.stats import PassRecord, TxStats


def aggregate_pass(passes: Iterable[PassRecord | None]) -> PassRecord | None:
    """Sum the per-owner counts of one pass (the latest epoch among them)."""
    rows = [p for p in passes if p is not None]
    if not rows:
        return None
    epoch = max(p.epoch for p in rows)
    rows = [p for p in rows if p.epoch == epoch]
    loss_sum = sum((p.loss or 0.0) * p.total for p in rows)
    return PassRecord.from_counts(rows[0].kind, epoch, sum(p.correct for p in rows),
                                  sum(p.total for p in rows), loss_sum, sum(p.skipped for p in rows))


def running_accuracy(mode: str, live_stats: list[TxStats], n_test: int) -> RunningAccuracy:
    """The running accuracy from the live devices' latest TX stats.

    Default mode: the first live device's view (the initiator's). Other modes: the owners'
    counts summed. The evaluation accuracy is given once the pass scored (or skipped) the
    whole test set (``n_test`` samples).
    """
    if mode != TrainingMode.ROCKNET:
        train = aggregate_pass(s.train for s in live_stats)
        ev = aggregate_pass(s.eval for s in live_stats)
        acc = RunningAccuracy()
        if train is not None:
            acc = RunningAccuracy(epoch=train.epoch, train_accuracy=train.accuracy, train_loss=train.loss)
        if ev is not None and ev.total + ev.skipped >= n_test:
            acc = acc.updated(RunningAccuracy(eval_accuracy=ev.accuracy, eval_epoch=ev.epoch))
        return acc
    for stats in live_stats:
        acc = RunningAccuracy()
        if stats.train is not None:
            acc = RunningAccuracy(epoch=stats.train.epoch, train_accuracy=stats.train.accuracy,
                                  train_loss=stats.train.loss)
        ev = stats.eval
        if ev is not None and ev.total + ev.skipped >= n_test:
            acc = acc.updated(RunningAccuracy(eval_accuracy=ev.accuracy, eval_loss=ev.loss,
                                              eval_epoch=ev.epoch))
        return acc
    return RunningAccuracy()
