"""quantize_int8's scales (issue 17): the default is the paper's, bit for bit; "mulaw" keeps
heavy-tailed data apart and uses the training split only."""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.service.datasets import load_dataset, quantize_int8
from node.mcu.memory import ledger
from protocol.config.model import ModelConfig


def test_global_is_the_paper_formula():
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((30, 50)) * 3 + 1, rng.standard_normal((10, 50))
    mean = x.mean()
    scale = np.percentile(np.abs(x - mean), 99.9)
    want = np.clip(np.round((x - mean) / scale * 127), -127, 127).astype(np.int8)
    assert np.array_equal(quantize_int8(x, t)[0], want)
    assert np.array_equal(quantize_int8(x, t, "global")[1], quantize_int8(x, t)[1])


def test_mulaw_is_monotone_odd_and_uses_only_training_statistics():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 40)) ** 3  # heavy tails
    grid = x.mean() + np.linspace(-5, 5, 201)[None, :]  # symmetric around the training mean
    q = quantize_int8(x, grid, "mulaw")[1][0].astype(int)
    assert (np.diff(q) >= 0).all() and q[0] == -q[-1]
    other_test = rng.standard_normal((5, 40)) * 100
    assert np.array_equal(quantize_int8(x, grid, "mulaw")[0], quantize_int8(x, other_test, "mulaw")[0])
    with pytest.raises(ValueError, match="mulaw"):
        quantize_int8(x, grid, "log")


def test_mulaw_keeps_covid3month_series_apart():
    ds = load_dataset("Covid3Month_disc")
    def levels(q: np.ndarray) -> float:
        return float(np.median([len(np.unique(r)) for r in q]))
    lin, mu = quantize_int8(ds.x_train, ds.x_test)[0], quantize_int8(ds.x_train, ds.x_test, "mulaw")[0]
    assert levels(lin) <= 2 and levels(mu) >= 3 * levels(lin)


def test_the_ledger_shows_what_the_rule_keeps():
    base = ledger(ModelConfig(), 20, 427, 6)
    epoch = ledger(ModelConfig(selection="epoch"), 20, 427, 6)
    decay = ledger(ModelConfig(selection="decay"), 20, 427, 6)
    assert epoch.total_bytes - base.total_bytes == base.entries["weights W"] + base.entries["bias b"]
    assert decay.total_bytes - base.total_bytes == 12
