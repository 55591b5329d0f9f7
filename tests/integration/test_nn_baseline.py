"""The on-device NN baseline: it trains, its ledger and cycle model are hand-checkable."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest

from coordinator.tools.baseline import nn_baseline_for_dataset
from node.offline.nn_baseline import (
    MLP,
    Adam,
    MLPConfig,
    NNCycleCosts,
    cycles,
    n_parameters,
    ram_ledger,
    timing,
    train,
)


def test_ram_ledger_matches_a_hand_calculation() -> None:
    # GunPoint: L = 150, C = 2; 10 hidden layers of 17 neurons.
    widths = MLPConfig().widths(150, 2)
    assert widths == [150] + [17] * 10 + [2]
    p = (150 * 17 + 17) + 9 * (17 * 17 + 17) + (17 * 2 + 2)  # = 2567 + 2754 + 36
    assert p == 5357 and n_parameters(widths) == p
    led = ram_ledger(widths)
    assert led["weights and biases"] == 4 * 5357
    assert led["gradient accumulators"] == 4 * 5357
    assert led["Adam m, v (float32)"] == 8 * 5357
    assert led["layer outputs (for backprop)"] == 4 * (10 * 17 + 2)
    assert led["backprop deltas"] == 2 * 4 * 17
    assert led["input buffer (float32)"] == 4 * 150
    assert sum(led.values()) == 87_136


def test_ledger_counts_the_arrays_the_trainer_really_holds() -> None:
    widths = MLPConfig().widths(427, 6)  # OSULeaf
    model = MLP.init(widths, seed=0)
    params = model.params()
    opt = Adam(params, MLPConfig())
    led = ram_ledger(widths)
    assert sum(p.nbytes for p in params) == led["weights and biases"]
    assert sum(m.nbytes + v.nbytes for m, v in zip(opt.m, opt.v)) == led["Adam m, v (float32)"]
    acts = model.forward(np.zeros((1, 427), np.float32))
    assert sum(a.nbytes for a in acts[1:]) == led["layer outputs (for backprop)"]
    assert all(p.dtype == np.float32 for p in params)


def test_gradients_match_finite_differences() -> None:
    rng = np.random.default_rng(3)
    widths = [6, 5, 5, 3]
    model = MLP.init(widths, seed=1)
    model.W = [w.astype(np.float64) for w in model.W]
    model.b = [b.astype(np.float64) for b in model.b]
    x = rng.uniform(-1, 1, size=(4, 6))
    y = np.array([0, 2, 1, 2])

    def loss() -> float:
        logits = model.forward(x)[-1]
        z = logits - logits.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-log_p[np.arange(4), y].mean())

    dW, db, _, _ = model.gradients(model.forward(x), y)
    h = 1e-6
    for layer in range(3):
        for (i, j) in [(0, 0), (1, 2), (2, 1)]:
            model.W[layer][i, j] += h
            up = loss()
            model.W[layer][i, j] -= 2 * h
            down = loss()
            model.W[layer][i, j] += h
            assert dW[layer][i, j] == pytest.approx((up - down) / (2 * h), rel=1e-4, abs=1e-6)
        model.b[layer][1] += h
        up = loss()
        model.b[layer][1] -= 2 * h
        down = loss()
        model.b[layer][1] += h
        assert db[layer][1] == pytest.approx((up - down) / (2 * h), rel=1e-4, abs=1e-6)


def test_cycle_model_counts_by_hand() -> None:
    ones = NNCycleCosts(**{f.name: 1.0 for f in fields(NNCycleCosts)})
    widths = [4, 3, 2]
    c = cycles(widths, ones)
    # forward: 4 inputs + (12 + 6) MACs + 5 bias adds + 3 tanh + 2 softmax + 1 overhead
    assert c["forward_per_sample"] == 33
    # backward: 2 output deltas + 18 accumulations + 5 bias accumulations
    #           + 6 MACs back through the second layer + 3 tanh derivatives
    assert c["backward_per_sample"] == 34
    assert c["step"] == 23  # (12 + 3) + (6 + 2) parameters
    t = timing(widths, n_train=10, cfg=MLPConfig(batch_size=4, epochs=2), costs=ones)
    cycles_per_sample = 33 + 34 + 23 * 3 / 10  # 3 steps per epoch over 10 samples
    assert t["train_sample_s"] == pytest.approx(cycles_per_sample / 64e6)
    assert t["training_total_s"] == pytest.approx(2 * (10 * 67 + 3 * 23) / 64e6)
    assert t["train_sample_mj"] == pytest.approx(t["train_sample_s"] * 3.0 * 3.71)


def test_baseline_trains_on_gunpoint_and_beats_chance() -> None:
    # Through the coordinator's subprocess path, on the testbed's int8 data.
    result = nn_baseline_for_dataset("GunPoint", epochs=150)
    assert result["dataset"] == "GunPoint"
    assert result["n_classes"] == 2
    assert result["test_accuracy"] > 0.75, result["test_accuracy"]  # chance: 0.5
    hist = result["history"]
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    assert result["ram"]["total_bytes"] == 87_136 and result["ram"]["fits"]
    assert result["timing"]["training_total_s"] > 150 * 50 * result["timing"]["inference_sample_s"]


def test_same_seed_same_result_and_class_count_checked() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-127, 128, size=(12, 20)).astype(np.int8)
    y = np.arange(12) % 3
    cfg = MLPConfig(epochs=3, hidden_layers=2, hidden_width=5, eval_every=1)
    a = train(x, y, x, y, 3, cfg)
    b = train(x, y, x, y, 3, cfg)
    assert a["history"] == b["history"]
    with pytest.raises(ValueError, match="n_classes"):
        train(x, y, x, y, 2, cfg)


def test_cli_reports_a_bad_input_file(tmp_path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((2, 10), np.int8))
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, "-m", "node.offline.nn_baseline", "--npz", str(bad), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "nn_baseline" in proc.stderr and not out.exists()
    good = tmp_path / "good.npz"
    rng = np.random.default_rng(1)
    np.savez(good, x_train=rng.integers(-5, 5, (6, 12)).astype(np.int8), y_train=np.arange(6) % 2,
             x_test=rng.integers(-5, 5, (4, 12)).astype(np.int8), y_test=np.arange(4) % 2)
    proc = subprocess.run([sys.executable, "-m", "node.offline.nn_baseline", "--npz", str(good), "--out", str(out),
                           "--epochs", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["widths"] == [12] + [17] * 10 + [2]
