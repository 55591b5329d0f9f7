"""MiniRocket kernels: agreement with aeon, with a naive implementation, and sharding."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from numba import njit

from node.ml.minirocket import KERNEL_INDICES, fit_biases, transform
from node.ml.shard import build_shard, sample_range
from protocol.config.model import (
    N_KERNELS,
    ModelConfig,
    aeon_to_kernel_major,
    bias_fit_rows,
    feature_ranges,
    fit_dilations,
    kernel_ranges,
    n_features_total,
    quantile_positions,
    shard_fit_series,
)
from protocol.stream.schedule import contiguous_split

pytestmark = pytest.mark.usefixtures("warm_numba")


# ----------------------------------------------------------------------------- aeon


def _aeon_fit(x: np.ndarray, seed: int = 0):
    from aeon.transformations.collection.convolution_based import MiniRocket

    mr = MiniRocket(n_jobs=1, random_state=seed).fit(x[:, None, :].astype(np.float32))
    return mr


@njit(cache=True)
def _numba_randint_draws(seed, n, count):  # pragma: no cover - compiled
    np.random.seed(seed)
    out = np.empty(count, dtype=np.int64)
    for i in range(count):
        out[i] = np.random.randint(n)
    return out


def test_features_equal_aeon_with_aeon_fitted_parameters(bundled_int8):
    from numba import get_num_threads, set_num_threads

    ds = bundled_int8("GunPoint")
    x = np.concatenate([ds.x_train[:20], ds.x_test[:10]])
    mr = _aeon_fit(ds.x_train[:20])
    _, _, dilations, fpd, biases = mr.parameters
    perm = aeon_to_kernel_major(fpd)
    threads = get_num_threads()
    try:
        theirs = mr.transform(x[:, None, :].astype(np.float32))
    finally:
        set_num_threads(threads)
    ours = transform(x, dilations, fpd, biases[perm], 0, N_KERNELS)
    assert ours.shape == theirs.shape == (30, n_features_total(fpd))
    np.testing.assert_array_equal(ours, theirs[:, perm])
    assert len(np.unique(ours)) > 20  # not a degenerate all-0/1 feature matrix


def test_fit_biases_equal_aeon_when_fitted_on_the_same_rows(rng):
    # aeon draws one random training series per (dilation, kernel) from numba's generator;
    # replay those draws, hand them to ours as rows, and the biases must agree exactly.
    x = rng.integers(-128, 128, size=(15, 70)).astype(np.int8)
    mr = _aeon_fit(x, seed=7)
    _, _, dilations, fpd, biases = mr.parameters
    draws = _numba_randint_draws(7, x.shape[0], len(dilations) * N_KERNELS)
    rows = draws.reshape(len(dilations), N_KERNELS).T.astype(np.int32)
    ours = fit_biases(x, rows, dilations, fpd, 0, N_KERNELS)
    theirs = biases[aeon_to_kernel_major(fpd)]
    # aeon compiles its quantile with fastmath (the interpolation may be fused or
    # reassociated): a few biases differ in the last float32 bit, none by more
    exact = np.mean(ours == theirs)
    assert exact > 0.99, exact
    np.testing.assert_allclose(ours, theirs, rtol=2.5e-7, atol=0)


def test_aeon_dilation_rule_matches_aeon():
    from aeon.transformations.collection.convolution_based._minirocket import _fit_dilations

    for length in (9, 24, 150, 427, 1460):
        dil, fpd = fit_dilations(length, ModelConfig(dilation_style="aeon"))
        their_dil, their_fpd = _fit_dilations(length, 10_000, 32)
        np.testing.assert_array_equal(dil, their_dil)
        np.testing.assert_array_equal(fpd, their_fpd)


# ----------------------------------------------------------------------------- naive check


def _naive_features(x: np.ndarray, dilations, fpd, biases_kernel_major,
                    zero_padding: bool = False) -> np.ndarray:
    """Straight from the definition: weights (-1, 2), zero padding, PPV, padding rule
    (aeon's alternation, or all L positions for every kernel as the firmware does)."""
    length = x.shape[0]
    out = []
    pos = 0
    for k in range(N_KERNELS):
        w = -np.ones(9, dtype=np.int64)
        w[list(KERNEL_INDICES[k])] = 2
        for j, d in enumerate(dilations):
            padded = np.concatenate([np.zeros(4 * d, np.int64), x.astype(np.int64), np.zeros(4 * d, np.int64)])
            conv = np.array([sum(w[m] * padded[t + m * d] for m in range(9)) for t in range(length)])
            if (j + k) % 2 == 1 and not zero_padding:
                conv = conv[4 * d : length - 4 * d]
            for _ in range(fpd[j]):
                out.append(np.mean(conv > biases_kernel_major[pos]))
                pos += 1
    return np.array(out, dtype=np.float32)


def test_transform_matches_naive_definition(rng):
    length = 40
    x = rng.integers(-128, 128, size=(2, length)).astype(np.int8)
    cfg = ModelConfig(num_features=84 * 3 * 2)
    dil, fpd = fit_dilations(length, cfg)
    assert list(dil) == [1, 2, 4] and list(fpd) == [2, 2, 2]
    biases = rng.normal(0, 150, size=n_features_total(fpd)).astype(np.float32)
    biases[:10] = np.round(biases[:10])  # integer biases: strict '>' matters
    biases[10:14] = [1e9, -1e9, 1530.0, -1531.0]  # beyond any output: none / all count
    ours = transform(x, dil, fpd, biases, 0, N_KERNELS)
    for i in range(2):
        np.testing.assert_array_equal(ours[i], _naive_features(x[i], dil, fpd, biases))



def test_zero_padding_matches_the_naive_definition_and_differs_only_where_aeon_trims(rng):
    # --profile firmware (ModelConfig.padding="zero"): PPV over all L zero-padded positions
    # for every kernel; aeon trims to the valid positions where kernel + dilation is odd.
    length = 40
    x = rng.integers(-128, 128, size=(2, length)).astype(np.int8)
    cfg = ModelConfig(num_features=84 * 3 * 2)
    dil, fpd = fit_dilations(length, cfg)
    biases = rng.normal(0, 150, size=n_features_total(fpd)).astype(np.float32)
    zero = transform(x, dil, fpd, biases, 0, N_KERNELS, zero_padding=True)
    aeon = transform(x, dil, fpd, biases, 0, N_KERNELS)
    for i in range(2):
        np.testing.assert_array_equal(zero[i], _naive_features(x[i], dil, fpd, biases, True))
    per_kernel = int(fpd.sum())
    even = np.array([(j + k) % 2 == 0 for k in range(N_KERNELS)
                     for j in range(len(dil)) for _ in range(fpd[j])])
    assert even.size == N_KERNELS * per_kernel
    np.testing.assert_array_equal(zero[:, even], aeon[:, even])  # the same positions
    assert not np.array_equal(zero[:, ~even], aeon[:, ~even])  # all L vs the valid ones


# ----------------------------------------------------------------------------- shards


@pytest.mark.parametrize("n_devices", [1, 2, 5, 20])
@pytest.mark.parametrize("bias_source", ["first", "random"])
def test_shard_transforms_concatenate_to_full_transform(bundled_int8, n_devices, bias_source):
    ds = bundled_int8("ItalyPowerDemand")
    cfg = ModelConfig(bias_source=bias_source)
    x = ds.x_test[:25]
    dil, fpd = fit_dilations(x.shape[1], cfg)
    rows = bias_fit_rows(len(ds.x_train), len(dil), cfg)
    full_b = fit_biases(ds.x_train, rows, dil, fpd, 0, N_KERNELS)
    full = transform(x, dil, fpd, full_b, 0, N_KERNELS)
    parts, part_b = [], []
    for device in range(n_devices):
        spec = build_shard(cfg, x.shape[1], device, n_devices)
        # the device only gets the training series its kernels need ("flashed")
        idx, local_rows = shard_fit_series(rows, spec.kernel_start, spec.kernel_stop)
        b = fit_biases(ds.x_train[idx], local_rows, dil, fpd, spec.kernel_start, spec.kernel_stop)
        part_b.append(b)
        f = transform(x, dil, fpd, b, spec.kernel_start, spec.kernel_stop)
        assert f.shape == (len(x), spec.n_features)
        np.testing.assert_array_equal(f, full[:, spec.feature_start : spec.feature_stop])
        parts.append(f)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), full)
    np.testing.assert_array_equal(np.concatenate(part_b), full_b)


def test_kernel_and_feature_ranges():
    fpd = np.array([23] * 5, dtype=np.int32)
    assert kernel_ranges(1) == [(0, 84)]
    ranges = kernel_ranges(20)
    sizes = [b - a for a, b in ranges]
    assert sizes == [5] * 4 + [4] * 16  # remainder to the first devices
    fr = feature_ranges(20, fpd)
    assert fr[0] == (0, 5 * 115) and fr[-1][1] == 84 * 115
    assert all(fr[i][1] == fr[i + 1][0] for i in range(19))
    for bad in (0, 85, -1):
        with pytest.raises(ValueError, match="between 1 and 84"):
            kernel_ranges(bad)


def test_paper_dilations_match_the_design_example():
    dil, fpd = fit_dilations(131, ModelConfig())  # FaceAll: 5 x 23 x 84 = 9660
    assert list(dil) == [1, 2, 4, 8, 16] and list(fpd) == [23] * 5
    assert n_features_total(fpd) == 9660
    dil, fpd = fit_dilations(9, ModelConfig())
    assert list(dil) == [1] and list(fpd) == [119]
    dil, _ = fit_dilations(8 * 4 + 1, ModelConfig())  # exactly 2**2 fits
    assert list(dil) == [1, 2, 4]
    with pytest.raises(ValueError, match="shorter than MiniRocket's kernel"):
        fit_dilations(8, ModelConfig())


def test_bias_rows_and_quantiles():
    cfg_first = ModelConfig(bias_source="first")
    assert not bias_fit_rows(50, 4, cfg_first).any()
    rows = bias_fit_rows(50, 4, ModelConfig(bias_source="random", seed=3))
    assert rows.shape == (84, 4) and rows.dtype == np.int32
    assert rows.min() >= 0 and rows.max() < 50 and len(np.unique(rows)) > 30
    np.testing.assert_array_equal(rows, bias_fit_rows(50, 4, ModelConfig(bias_source="random", seed=3)))
    assert not np.array_equal(rows, bias_fit_rows(50, 4, ModelConfig(bias_source="random", seed=4)))
    q = quantile_positions(np.array([2, 3], dtype=np.int32))
    assert q.shape == (84 * 5,) and 0 < q.min() and q.max() < 1
    assert q[0] == np.float32((1 * (np.sqrt(5) + 1) / 2) % 1)  # kernel 0, dilation 0 = aeon's first


def test_sample_split_matches_schedule():
    assert [sample_range(10, d, 3) for d in range(3)] == contiguous_split(10, 3) == [(0, 4), (4, 7), (7, 10)]


# ----------------------------------------------------------------------------- errors and config


def test_transform_rejects_float_input_and_wrong_biases():
    dil, fpd = np.array([1], np.int32), np.array([1], np.int32)
    with pytest.raises(TypeError, match="int8"):
        transform(np.zeros((1, 20), np.float32), dil, fpd, np.zeros(84, np.float32), 0, 84)
    with pytest.raises(ValueError, match="biases_of_shard has shape"):
        transform(np.zeros((1, 20), np.int8), dil, fpd, np.zeros(83, np.float32), 0, 84)
    with pytest.raises(ValueError, match="too large"):
        transform(np.zeros((1, 20), np.int8), np.array([4], np.int32), fpd, np.zeros(84, np.float32), 0, 84)


def test_model_config_roundtrip_and_validation():
    cfg = ModelConfig(optimizer="adam8bit", lr=2e-3, epochs=7, bias_source="random")
    packed = msgpack.unpackb(msgpack.packb(cfg.to_dict()))
    assert ModelConfig.from_dict(packed) == cfg
    assert ModelConfig.from_dict({"lr": 1}).lr == 1.0
    with pytest.raises(ValueError, match="optimizer must be one of"):
        ModelConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="unknown keys"):
        ModelConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="batch_size"):
        ModelConfig(batch_size=0)
