"""quantize_int8's scales (issue 17): the default is the paper's, bit for bit; "mulaw" keeps
heavy-tailed data apart and uses the training split only."""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.service.datasets import load_dataset, quantize_int8
from protocol.config.ram_ledger import ledger
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


def _span_set(small_span: float, rng: np.random.Generator) -> np.ndarray:
    """20 series around 0 whose p99.9 is set by 2 wide series (values ±1000), and 18
    series that span ``small_span`` of the 1000 → 127-code scale."""
    wide = rng.choice([-1000.0, 1000.0], size=(2, 200))
    small = rng.uniform(-0.5, 0.5, size=(18, 200)) * small_span * 1000.0 / 127.0
    return np.vstack([wide, small])


def test_auto_compands_only_series_starved_of_codes():
    from coordinator.service.datasets import MIN_SERIES_CODES, auto_scale, series_codes

    rng = np.random.default_rng(3)
    starved, fine = _span_set(3.0, rng), _span_set(60.0, rng)
    assert series_codes(starved) < MIN_SERIES_CODES <= series_codes(fine)
    assert auto_scale(starved) == "mulaw" and auto_scale(fine) == "global"
    # auto is exactly the scale it picks, on both splits
    t = rng.standard_normal((4, 200)) * 50
    for x, pick in ((starved, "mulaw"), (fine, "global")):
        for got, want in zip(quantize_int8(x, t, "auto"), quantize_int8(x, t, pick)):
            assert np.array_equal(got, want)
    # series_codes is the median span of the global codes, and uses the training split only
    q = quantize_int8(fine, t)[0].astype(int)
    assert series_codes(fine) == np.median(q.max(axis=1) - q.min(axis=1) + 1)


def test_auto_never_looks_at_the_test_split():
    rng = np.random.default_rng(4)
    x = _span_set(3.0, rng)
    a = quantize_int8(x, rng.standard_normal((3, 200)), "auto")[0]
    b = quantize_int8(x, rng.standard_normal((3, 200)) * 1e6, "auto")[0]
    assert np.array_equal(a, b)


def test_auto_picks_mulaw_for_covid3month_only():
    from coordinator.service.datasets import auto_scale, bundled_datasets

    picks = {n: auto_scale(load_dataset(n).x_train) for n in ("Covid3Month_disc", "GunPoint", "ACSF1")
             if n in bundled_datasets()}
    assert picks.get("Covid3Month_disc", "mulaw") == "mulaw"
    assert all(v == "global" for k, v in picks.items() if k != "Covid3Month_disc")


def test_the_run_quantizes_with_auto_by_default():
    from coordinator.service.run_setup import RunArgs

    assert RunArgs(dataset="GunPoint").quantization == "auto"
