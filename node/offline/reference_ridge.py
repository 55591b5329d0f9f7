"""The centralized reference of the ridge head (``ModelConfig.head="ridge"``).

It walks the same stream as the devices (protocol/stream/schedule.py: calibration, Gram
passes, the weight pass, the test pass), keeps one :class:`~node.ml.ridge_head.RidgeHead`
per shard and calls the same methods on whole passes that a device calls item by item, and
sums the per-shard partial rows and logits in device order: with the same ``n_shards`` the
distributed run gives bitwise the same weights. The solve runs once (every device solves
the same summed Gram matrix) and its dual coefficients are handed to every shard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from node.ml.head import sum_partial_logits
from node.ml.ridge_head import RidgeHead
from node.ml.scaling import FeatureScaler
from protocol.config.model import ModelConfig
from protocol.stream.schedule import KIND_CALIB, KIND_EVAL, KIND_TRAIN, Stream

__all__ = ["RidgeRun", "train_ridge"]


@dataclass(frozen=True)
class RidgeRun:
    """The heads after the run, and the test pass's summed logits ``z`` float32 [n_test, C]
    with their labels (``z`` None: no test pass)."""

    heads: list[RidgeHead]
    z: np.ndarray | None
    y: np.ndarray | None


def train_ridge(f_train: list[np.ndarray], f_test: list[np.ndarray], scalers: list[FeatureScaler],
                y_train: np.ndarray, y_test: np.ndarray, n_classes: int, cfg: ModelConfig,
                stream: Stream) -> RidgeRun:
    """Train the ridge head on every shard's unscaled features ``f_train``/``f_test``
    (``node.offline.reference.shard_features``)."""
    n_shards = len(f_train)
    total = sum(f.shape[1] for f in f_train)
    heads = [RidgeHead(n_classes, f.shape[1], s == 0, cfg, s, n_shards, n_train=len(y_train), total_features=total,
                       block_size=stream.config.gram_block)
             for s, f in enumerate(f_train)]
    tr: list[np.ndarray] = []
    te: list[np.ndarray] = []
    eval_z: list[np.ndarray] = []
    eval_y: list[np.ndarray] = []
    for a, b in stream.batches:
        kind, epoch = int(stream.kind[a]), int(stream.epoch[a])
        idx = stream.sample[a:b].astype(np.int64)
        if kind == KIND_CALIB and epoch < 0:  # the scaler's pass
            for sc, f in zip(scalers, f_train):
                sc.update(f[idx])
            continue
        if not tr:
            for sc in scalers:
                if not sc.finalized:
                    sc.finalize()
            tr = [sc.apply(f) for sc, f in zip(scalers, f_train)]
            te = [sc.apply(f) for sc, f in zip(scalers, f_test)]
        if kind == KIND_TRAIN:  # a Gram pass, in index order
            parts = [h.gram_partial_rows(x[idx], idx, epoch) for h, x in zip(heads, tr)]
            totals = sum_partial_logits(parts)
            for row, sample in enumerate(idx.tolist()):
                heads[0].set_gram_row(sample, epoch, totals[row], int(y_train[sample]))
            if stream.step_after[b - 1]:
                heads[0].step()
                for h in heads[1:]:
                    h.dual[...] = heads[0].dual
                    h.t, h.samples_used, h.chosen_alpha = heads[0].t, heads[0].samples_used, heads[0].chosen_alpha
        elif kind == KIND_CALIB:  # the weight pass
            for h, x in zip(heads, tr):
                h.add_weights(x[idx], idx)
        else:
            assert kind == KIND_EVAL
            eval_z.append(sum_partial_logits([h.partial_logits(x[idx]) for h, x in zip(heads, te)]))
            eval_y.append(y_test[idx])
    if not eval_z:
        return RidgeRun(heads, None, None)
    return RidgeRun(heads, np.concatenate(eval_z), np.concatenate(eval_y))
