"""The on-device validation rule (issue 17, protocol/stream/validation.py): the split, the
choice on tasks whose right regularization is known, and distributed == centralized with
the rule on."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from coordinator.service.run_setup import RunArgs, build_setup
from inprocess import drive, reference_of
from node.offline.reference import train_reference
from protocol.config.model import ModelConfig, schedule_config
from protocol.stream.schedule import KIND_EVAL, KIND_TRAIN, build_stream
from protocol.stream.validation import select_candidate, validation_split

pytestmark = pytest.mark.usefixtures("warm_numba")


# ----------------------------------------------------------------------------- the split


@pytest.mark.parametrize("selection", ["decay", "epoch"])
@pytest.mark.parametrize("n_train", [2, 20, 37, 200])
def test_validation_items_are_training_items_never_trained_on_while_selecting(selection, n_train):
    cfg = ModelConfig(selection=selection, epochs=3, select_weight_decays=(10.0, 1.0))
    stream = build_stream(schedule_config(cfg, n_train, 11, 3, eval_every=1))
    fit, val = validation_split(n_train, 0.2, 0)
    assert len(val) == min(max(round(0.2 * n_train), 1), n_train - 1)
    assert set(fit).isdisjoint(val) and sorted([*fit, *val]) == list(range(n_train))
    v = stream.validation
    assert (stream.kind[v] == KIND_EVAL).all()
    assert set(stream.sample[v].tolist()) == set(val.tolist())  # training indices only
    tests = np.array([stream.is_test(t) for t in range(stream.n_items)])
    assert not (tests & v).any() and set(stream.sample[tests].tolist()) <= set(range(11))
    # while selecting (every phase that scores validation items) no validation item is trained on
    scored = set(stream.phase[v].tolist())
    selecting_train = (stream.kind == KIND_TRAIN) & np.isin(stream.phase, list(scored))
    assert set(stream.sample[selecting_train].tolist()) == set(fit.tolist())
    if selection == "decay":  # the retrain (last phase) sees the whole training split
        final = (stream.kind == KIND_TRAIN) & (stream.phase == 2)
        assert set(stream.sample[final].tolist()) == set(range(n_train))
        assert not (stream.phase[tests] < 2).any()  # the test split is scored only after choosing


def test_the_split_is_seeded_and_names_its_limits():
    a, b = validation_split(50, 0.2, 3), validation_split(50, 0.2, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(validation_split(50, 0.2, 4)[1], a[1])
    with pytest.raises(ValueError, match="selection='none'"):
        validation_split(1, 0.2, 0)
    with pytest.raises(ValueError, match="val_fraction"):
        ModelConfig(selection="decay", val_fraction=1.0)
    with pytest.raises(ValueError, match="strongest first"):
        ModelConfig(selection="decay", select_weight_decays=())
    with pytest.raises(ValueError, match="rocknet mode only"):
        build_stream(schedule_config(ModelConfig(selection="decay"), 20, 5, 2), mode="private-labels")


def test_ties_go_to_the_first_candidate_and_config_round_trips():
    assert select_candidate([3, 5, 5, 1]) == 1 and select_candidate([4, 4]) == 0
    cfg = ModelConfig(selection="decay", select_weight_decays=(30.0, 3.0), val_fraction=0.25)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    # without the rule the configuration (and so every fingerprint) is what it was
    assert set(ModelConfig().to_dict()) == set(ModelConfig().to_dict()) - {"selection"}
    assert "selection" not in ModelConfig().to_dict() and "val_fraction" not in ModelConfig().to_dict()


# ----------------------------------------------------------------------------- the choice


def _synthetic(kind: str, n: int = 100, length: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """int8 series of two kinds where the right regularization is known.

    ``noise``: pure noise, labels independent of it, about 80 % of them class 0: nothing
    generalizes but the class prior, so the strongest decay (the model shrinks to its bias)
    must win. ``nuisance``: the class is the sign of a small sine under a large,
    class-independent ``A cos 3t`` (A ~ N(0, 1) per series): separable, but only with
    weights that the strongest decay keeps from growing, so no decay must win."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 4 * np.pi, length)
    if kind == "noise":
        y = (rng.random(n) < 0.2).astype(np.int64)
        x = rng.standard_normal((n, length))
    else:
        y = np.arange(n) % 2
        amplitude = rng.normal(0.0, 1.0, n)
        x = (np.where(y[:, None] == 0, 1.0, -1.0) * 0.3 * np.sin(t)[None, :]
             + amplitude[:, None] * np.cos(3 * t)[None, :] + 0.05 * rng.standard_normal((n, length)))
    x = x / np.abs(x).max() * 127
    return np.round(x).astype(np.int8), y.astype(np.int64)


#: Strongest first: 900 shrinks W by up to 90 % a step; 0 leaves it free.
GRID = (900.0, 0.0)


def _select(kind: str) -> tuple[int, list[int]]:
    x, y = _synthetic(kind)
    xt, yt = _synthetic(kind, n=40, seed=1)
    cfg = ModelConfig(num_features=840, epochs=20, selection="decay", select_weight_decays=GRID)
    res = train_reference(x, y, xt, yt, 2, cfg, 2)
    return res.chosen, [int(v["correct"]) for v in res.val_history]


def test_on_pure_noise_the_strong_decay_wins_outright():
    chosen, correct = _select("noise")
    assert chosen == 0 and correct[0] > correct[1]


def test_on_a_separable_task_under_a_nuisance_no_decay_wins_outright():
    chosen, correct = _select("nuisance")
    assert chosen == 1 and correct[1] > correct[0]


def test_the_retrain_is_a_plain_run_with_the_chosen_decay_bitwise():
    x, y = _synthetic("nuisance")
    xt, yt = _synthetic("nuisance", n=40, seed=1)
    cfg = ModelConfig(num_features=840, epochs=3, selection="decay", select_weight_decays=GRID)
    rule = train_reference(x, y, xt, yt, 2, cfg, 3)
    plain = train_reference(x, y, xt, yt, 2, replace(cfg, selection="none", weight_decay=GRID[rule.chosen]), 3)
    assert all(np.array_equal(a, b) for a, b in zip(rule.weights, plain.weights))
    assert rule.test_accuracy == plain.test_accuracy


# ----------------------------------------------------------------------------- distributed


def _args(**kw) -> RunArgs:
    base = dict(dataset="GunPoint", nodes=3, epochs=2, num_features=2000, batch_size=16)
    base.update(kw)
    return RunArgs(**base)


@pytest.mark.parametrize("lockstep", [False, True])
@pytest.mark.parametrize("overrides", [
    {"selection": "decay", "select_weight_decays": (100.0, 1.0)},
    {"selection": "epoch", "weight_decay": 0.0, "lr_schedule": "constant"},
])
def test_distributed_equals_centralized_bitwise_with_the_rule_on(overrides, lockstep):
    setup = build_setup(_args(model_overrides=overrides, eval_every=1))
    devices, _ = drive(setup, lockstep=lockstep)
    ref = reference_of(setup)
    for d, dev in enumerate(devices):
        assert np.array_equal(dev.head.W, ref.weights[d]), f"device {d} differs"
        assert dev.chosen == ref.chosen
    assert np.array_equal(devices[0].head.b, ref.bias)
    vals = [p for p in devices[0].passes if p.kind == "val"]
    assert [p.correct for p in vals] == [int(v["correct"]) for v in ref.val_history]
    assert devices[0].passes[-1].kind == "eval"
    assert devices[0].passes[-1].record().accuracy == pytest.approx(ref.test_accuracy)


def test_paper_recipe_runs_the_best_validation_epoch():
    m = build_setup(_args(recipe="paper")).config
    assert m.model.selection == "epoch" and m.schedule.selection == "epoch"


def test_a_validation_pass_crosses_the_wire():
    from protocol.wire.stats import FinalMetrics, PassRecord

    rec = PassRecord.from_counts("val", 2, 7, 9, 3.5, 1)
    final = FinalMetrics(passes=(rec,), steps=4)
    assert FinalMetrics.from_wire(final.to_wire()) == final
    with pytest.raises(ValueError, match="kind"):
        PassRecord.from_wire({**rec.to_wire(), "kind": "validation"})


def test_a_device_restored_from_a_checkpoint_resumes_its_phase(tmp_path):
    """node/checkpoint.py keeps the head's state and the passes: a rejoining device takes
    the phase of its last item, recounts its validation passes and rebuilds its head with
    that phase's decay and step count, with the restored state."""
    from node.checkpoint import load_checkpoint, save_checkpoint
    from node.device.rocknet import Device

    setup = build_setup(_args(model_overrides={"selection": "decay", "select_weight_decays": (100.0, 1.0)}))
    devices, _ = drive(setup, lockstep=False)
    done = devices[1]
    path = tmp_path / "d1.ckpt"
    save_checkpoint(path, done, fsync=False)
    fresh = Device(device=1, config=done.config, data=done.data)
    assert fresh.head.cfg.weight_decay == 100.0  # phase 0: the first candidate
    load_checkpoint(path, fresh)
    fresh._sync_phase(done.processed_item)
    assert fresh.chosen == done.chosen
    assert fresh.head.cfg.weight_decay == done.head.cfg.weight_decay
    assert fresh.head.total_steps == done.head.total_steps == fresh.stream.phase_steps(2)
    assert np.array_equal(fresh.head.W, done.head.W) and fresh.head.t == done.head.t
