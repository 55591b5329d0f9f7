"""The ridge head in real runs (devices in-process, the node's own code) on bundled data.

Pinned here: a run with ``head="ridge"`` takes one step (the solve) and gives bitwise the
centralized reference's weights, in batch and in lockstep mode; the reference is scikit-
learn's StandardScaler + RidgeClassifierCV on exactly the same MiniRocket features; a lossy
run still finishes with every device's lost Gram entries left unknown (NaN) and solves on
the samples among which all are known; a node killed with ``kill -9`` in a Gram pass rejoins
from its checkpoint of the last pass, and the run finishes on every device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifierCV
from sklearn.preprocessing import StandardScaler

from coordinator.backends.inprocess import in_process_run
from coordinator.engine.engine import EngineOptions
from coordinator.service.launch import LaunchOptions, run_testbed
from coordinator.service.run_setup import RunArgs, build_setup
from coordinator.service.server import CoordinatorOptions
from node.device.ridge import RidgeDevice
from node.ml.ridge import RIDGE_ALPHAS
from node.offline.reference import shard_features, train_reference

pytestmark = pytest.mark.usefixtures("warm_numba")

NODES = 3
RIDGE = {"head": "ridge", "dilation_style": "aeon"}


def _run(tmp_path: Path, args: RunArgs, lockstep: bool = False) -> dict:
    coord = CoordinatorOptions(node_port=0, feed_port=0, control_port=0, in_process=True, lockstep=lockstep)
    return run_testbed(args, LaunchOptions(out_dir=tmp_path, coordinator=coord, progress=False, reference=False))


@pytest.mark.parametrize("lockstep", [False, True], ids=["batch", "lockstep"])
def test_a_ridge_run_equals_the_reference_bitwise(tmp_path: Path, lockstep: bool) -> None:
    """One step (the solve); every device's W and device 0's b bitwise the reference's; the
    same test accuracy."""
    args = RunArgs(dataset="UnitTest", nodes=NODES, num_features=1000, model_overrides=dict(RIDGE))
    setup = build_setup(args)
    model = setup.config.model
    # a Gram row fills the packet a logit vector takes: 25 floats, more than C = 2
    assert model.head == "ridge" and setup.config.schedule.gram_block == 25 == setup.config.logit_width
    summary = _run(tmp_path, args, lockstep)
    assert summary["phase"] == "finished" and summary["steps"] == 1 and summary["head"] == "ridge"
    n_train = len(build_setup(args).y_train)
    assert all(n["ridge_samples"] == n_train and n["ridge_alpha"] in RIDGE_ALPHAS for n in summary["per_node"])
    assert summary["mode"] == ("lockstep" if lockstep else "batch")
    ref = train_reference(setup.x_train, setup.y_train, setup.x_test, setup.y_test,
                          setup.config.n_classes, model, NODES)
    assert ref.steps == 1 and summary["test_accuracy"] == ref.test_accuracy
    with np.load(tmp_path / "weights.npz") as w:  # bitwise, device by device
        for i, want_w in enumerate(ref.weights):
            assert w[f"W_{i}"].tobytes() == want_w.tobytes()
        assert w["b_0"].tobytes() == ref.bias.tobytes()


@pytest.mark.parametrize("dataset", ["UnitTest", "GunPoint"])
def test_the_ridge_reference_is_sklearns_ridge_classifier_cv_on_the_same_features(dataset: str) -> None:
    """StandardScaler + RidgeClassifierCV(alphas=RIDGE_ALPHAS) fitted on the reference's own
    features (every shard's, side by side) predicts the test split as the reference does."""
    args = RunArgs(dataset=dataset, nodes=NODES, num_features=1000, model_overrides=dict(RIDGE))
    setup = build_setup(args)
    model, n_classes = setup.config.model, setup.config.n_classes
    ref = train_reference(setup.x_train, setup.y_train, setup.x_test, setup.y_test, n_classes, model, NODES)
    f_train, f_test = shard_features(setup.x_train, setup.x_test, model, NODES)
    scaler = StandardScaler().fit(np.concatenate(f_train, axis=1).astype(np.float64))
    X = scaler.transform(np.concatenate(f_train, axis=1).astype(np.float64))
    X_test = scaler.transform(np.concatenate(f_test, axis=1).astype(np.float64))
    clf = RidgeClassifierCV(alphas=np.array(RIDGE_ALPHAS)).fit(X, setup.y_train)
    # the reference's own predictions, from its weights and scalers
    z = sum((sc.apply(f) @ W.T.astype(np.float64) for sc, f, W in zip(ref.scalers, f_test, ref.weights)),
            start=ref.bias.astype(np.float64))
    assert np.array_equal(z.argmax(axis=1), clf.predict(X_test))
    assert ref.test_accuracy == clf.score(X_test, setup.y_test)


def test_a_lossy_ridge_run_finishes_with_lost_gram_entries_unknown(tmp_path: Path) -> None:
    """90% drop probability (at 3 devices Mixer recovers everything at 20%: nothing would be
    lost): the run finishes with its one step and an accuracy in [0, 1]. On the devices of
    the same seeded run: rows lost in a Gram pass are counted and left NaN ("not known": every
    counted one is a row segment with an unknown entry), nothing is written above the
    diagonal, a label is the true one or unknown (-1, its whole row unknown), the solve used
    exactly the samples among which every entry is known (the others get no dual weight),
    and the weights are the run's, bitwise."""
    args = RunArgs(dataset="UnitTest", nodes=NODES, num_features=1000, loss=0.9, model_overrides=dict(RIDGE))
    summary = _run(tmp_path, args)
    assert summary["phase"] == "finished" and summary["steps"] == 1
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert summary["packet_loss_ratio"] > 0.0  # the loss did bite

    setup = build_setup(args)
    run = in_process_run(setup, EngineOptions())
    run.run()
    devices = [agent.device for agent in run.agents]
    n_train, n_classes = len(setup.y_train), setup.config.n_classes
    segments = [(i, p * n_classes, p * n_classes + min(i - p * n_classes + 1, n_classes))
                for p in range(setup.config.schedule.gram_passes) for i in range(p * n_classes, n_train)]
    assert any(d.gram_rows_missing > 0 for d in devices)
    with np.load(tmp_path / "weights.npz") as w:
        for d in devices:
            assert isinstance(d, RidgeDevice) and d.steps_taken == 1 and d.ridge.solved
            gram, labels = d.ridge.gram, d.ridge.labels
            unknown_segments = sum(bool(np.isnan(gram[i, a:b]).any()) for i, a, b in segments)
            assert d.gram_rows_missing <= unknown_segments < len(segments)
            assert np.isnan(gram[np.triu_indices(n_train, 1)]).all()
            assert np.all((labels == -1) | (labels == setup.y_train))
            assert np.isnan(gram[labels == -1]).all()
            used = d.ridge.complete_samples()
            assert 0 < len(used) < n_train and (labels[used] >= 0).all()
            assert np.isfinite(np.tril(gram[np.ix_(used, used)]) + np.triu(np.ones((len(used),) * 2), 1)).all()
            unused = np.setdiff1d(np.arange(n_train), used)
            assert not d.ridge.dual[unused].any()
            assert np.isfinite(d.ridge.W).all()
            assert w[f"W_{d.device}"].tobytes() == d.ridge.W.tobytes()


def test_a_node_killed_in_a_gram_pass_rejoins_and_the_run_finishes(tmp_path: Path) -> None:
    """Real node processes: ``kill -9`` of device 1 in a Gram pass, restarted under its name;
    it rejoins from the checkpoint it saved at its last Gram pass (the ridge head saves at
    every pass), every FINAL comes in, the weights are finite and the one solve ran on every
    device (its samples: those whose Gram entries every device has, node/ml/ridge_head.py)."""
    victim = 1
    state: dict = {"killed": False}

    def started(coord, backend) -> None:
        state["coord"], state["backend"] = coord, backend

    def on_event(record: dict) -> None:
        if not state["killed"] or record.get("device") != victim:
            return
        if record["event"] == "node_down":
            state["backend"].start(victim)
        elif record["event"] == "node_rejoined":
            state["rejoined"] = True
            state["coord"].resume()

    def on_round(record: dict) -> None:
        # GunPoint's Gram passes are rounds 50-99 and 100-124 (blocks of 25 samples)
        if not state["killed"] and record["round"] >= 60:
            state["killed"] = True
            state["coord"].pause()
            state["backend"].kill(victim)

    args = RunArgs(dataset="GunPoint", nodes=NODES, num_features=1000, model_overrides=dict(RIDGE))
    launch = LaunchOptions(out_dir=tmp_path / "run", progress=False, reference=False,
                           coordinator=CoordinatorOptions(node_port=0, feed_port=0, control_port=0,
                                                          deadline_s=2.0, down_after=1))
    summary = run_testbed(args, launch, on_started=started, on_round=on_round, on_event=on_event)
    assert summary["phase"] == "finished" and state.get("rejoined")
    assert summary["steps"] == 1 and all(n["final_collected"] for n in summary["per_node"])
    assert next(n for n in summary["per_node"] if n["id"] == victim)["joins"] == 2
    assert (tmp_path / "run" / "checkpoints").is_dir()
    with np.load(tmp_path / "run" / "weights.npz") as w:
        assert all(np.isfinite(w[k]).all() for k in w.files)
        assert all(w[f"W_{d}"].any() for d in range(NODES))
    assert 0.5 < summary["test_accuracy"] <= 1.0  # two balanced classes: above chance
    # every solve ran and says what it kept: a kill costs the rows of the exchange in flight
    # (C = 2 items) and the restarted device those since its last checkpoint (one batch):
    # at most 2 C of the 50 training series
    assert all(50 - 2 * 2 <= n["ridge_samples"] <= 50 and n["ridge_alpha"] in RIDGE_ALPHAS
               for n in summary["per_node"])
