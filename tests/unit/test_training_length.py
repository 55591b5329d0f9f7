"""The default training length (issue 17, protocol/config/training_length.py): the fewest
epochs >= 15 after which decoupled weight decay has shrunk the random init to 1 %."""

from __future__ import annotations

import math

import numpy as np
import pytest

from node.ml.head import ShardHead
from protocol.config.model import ModelConfig, lr_at, n_epochs, recipe_overrides, schedule_config, steps_per_epoch, total_steps
from protocol.config.training_length import INIT_RESIDUE, MAX_EPOCHS, MIN_EPOCHS, init_residue, rule_epochs
from protocol.stream.schedule import build_stream


def _residue(n_train: int, epochs: int, cfg: ModelConfig) -> float:
    s = epochs * steps_per_epoch(n_train, cfg)
    return init_residue(s, lambda t, n: lr_at(t, n, cfg), cfg.weight_decay)


@pytest.mark.parametrize("n_train", [5, 16, 20, 36, 50, 67, 100, 200, 1000])
def test_rule_is_the_fewest_epochs_that_remove_the_init(n_train):
    cfg = ModelConfig()
    e = n_epochs(n_train, cfg)
    assert e >= MIN_EPOCHS
    if e > MIN_EPOCHS:  # the smallest count that meets the residue: one epoch fewer does not
        assert _residue(n_train, e, cfg) <= INIT_RESIDUE < _residue(n_train, e - 1, cfg)
    else:
        assert _residue(n_train, MIN_EPOCHS, cfg) <= INIT_RESIDUE


def test_rule_depends_on_the_steps_not_the_epochs():
    cfg = ModelConfig()
    # fewer steps per epoch need more epochs, and the step counts end up alike
    ep = [n_epochs(n, cfg) for n in (16, 32, 48, 64)]
    assert ep == sorted(ep, reverse=True) and ep[0] > ep[-1]
    steps = [total_steps(n, cfg) for n in (16, 32, 48, 64)]
    assert max(steps) - min(steps) <= max(steps_per_epoch(n, cfg) for n in (16, 32, 48, 64))
    # a weaker decay needs proportionally more steps (the shrinkage is lr_t * wd per step)
    assert n_epochs(20, ModelConfig(weight_decay=50.0)) > n_epochs(20, cfg)


def test_explicit_epochs_and_no_decay_keep_their_length():
    assert n_epochs(20, ModelConfig(epochs=3)) == 3
    assert n_epochs(20, ModelConfig(weight_decay=0.0)) == MIN_EPOCHS
    assert n_epochs(20, ModelConfig(**recipe_overrides("paper"))) == MIN_EPOCHS  # type: ignore[arg-type]
    assert n_epochs(20, ModelConfig(weight_decay=1e-6)) == MAX_EPOCHS
    with pytest.raises(ValueError, match="epochs"):
        ModelConfig(epochs=-1)
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig()


def test_residue_is_the_product_of_the_decay_factors():
    assert init_residue(0, lambda t, s: 1e-3, 100.0) == 1.0
    assert init_residue(10, lambda t, s: 1e-3, 100.0) == pytest.approx(0.9**10)
    assert init_residue(3, lambda t, s: 1e-2, 100.0) == 0.0  # lr * wd = 1: gone in one step
    with pytest.raises(ValueError):
        rule_epochs(0, lambda t, s: 1e-3, 100.0)


def test_stream_and_head_use_the_rule():
    cfg = ModelConfig()
    sched = schedule_config(cfg, 20, 7, 3)
    assert sched.epochs == n_epochs(20, cfg) > MIN_EPOCHS
    assert build_stream(sched).steps == total_steps(20, cfg)


@pytest.mark.parametrize("n_train", [1, 7, 16, 17, 20, 50, 140, 201])
@pytest.mark.parametrize("overrides", [{}, {"batch_size": 5}, {"epochs": 3}, {"weight_decay": 0.0}])
def test_schedule_carries_the_step_count_the_rule_gives(n_train, overrides):
    """A device takes its step count from the schedule in WELCOME (no rule run per device):
    it must be the model's, and the stream's."""
    cfg = ModelConfig(**overrides)
    sched = schedule_config(cfg, n_train, 3, 4)
    assert sched.train_steps == total_steps(n_train, cfg) == build_stream(sched).steps


def test_weights_no_gradient_touches_keep_exactly_the_residue():
    """The rule's premise on the head itself: a feature that is 0 in every sample (no
    gradient) keeps init x residue after the run; the rule brings it under 1 %, 15 epochs do
    not (n_train = 20: 2 steps an epoch)."""
    n_train, n_feat = 20, 30
    rng = np.random.default_rng(0)
    F = rng.standard_normal((n_train, n_feat)).astype(np.float32)
    F[:, :10] = 0.0  # features 0..9 never get a gradient
    y = np.tile([0, 1], n_train // 2)
    for cfg, under in ((ModelConfig(), True), (ModelConfig(epochs=MIN_EPOCHS), False)):
        steps = total_steps(n_train, cfg)
        head = ShardHead(2, n_feat, True, cfg, 0, 1, total_steps=steps)
        w0 = head.W.copy()
        bs = min(cfg.batch_size, n_train)
        for _ in range(n_epochs(n_train, cfg)):
            for a in range(0, n_train, bs):
                rows = slice(a, a + bs)
                head.accumulate_batch(F[rows], head.partial_logits(F[rows]), y[rows])
                head.step()
        ratio = float(np.max(np.abs(head.W[:, :10]) / np.abs(w0[:, :10])))
        want = _residue(n_train, n_epochs(n_train, cfg), cfg)
        assert ratio == pytest.approx(want, rel=1e-3)
        assert (ratio <= INIT_RESIDUE) is under
        assert math.isfinite(ratio)
