"""The split below the kernel: past 84 devices, contiguous ranges of (kernel, dilation) units.

Up to 84 devices every shard is exactly the kernel split (same units, features, RAM, cycles);
past 84 the ``84 * D`` units are split, shards still concatenate bitwise to the full model, and
a device count over ``84 * D`` is refused naming the maximum.
"""

from __future__ import annotations

import numpy as np
import pytest

from node.mcu import cycles, firmware_cycles
from node.mcu.firmware_memory import firmware_ledger
from protocol.config.ram_ledger import ledger
from node.ml.minirocket import fit_biases, fit_biases_units, transform, transform_units
from node.ml.shard import build_shard
from protocol.config.model import (
    N_KERNELS,
    ModelConfig,
    bias_fit_rows,
    check_n_devices,
    feature_ranges,
    fit_dilations,
    kernel_ranges,
    kernels_at_dilation,
    kernels_of_units,
    max_devices,
    n_features_total,
    shard_fit_series,
    shard_fit_series_units,
    unit_offsets,
    unit_ranges,
)

pytestmark = pytest.mark.usefixtures("warm_numba")


@pytest.mark.parametrize("n_dil", [1, 2, 5, 6, 8])
def test_up_to_84_devices_the_unit_split_is_the_kernel_split(n_dil):
    for n in range(1, N_KERNELS + 1):
        assert unit_ranges(n, n_dil) == [(a * n_dil, b * n_dil) for a, b in kernel_ranges(n)]


@pytest.mark.parametrize(("n_dil", "n"), [(2, 85), (2, 100), (2, 168), (5, 100), (6, 200), (6, 504)])
def test_past_84_devices_units_are_split_contiguously_remainder_first(n_dil, n):
    ranges = unit_ranges(n, n_dil)
    assert len(ranges) == n and ranges[0][0] == 0 and ranges[-1][1] == N_KERNELS * n_dil
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(n - 1))
    sizes = [b - a for a, b in ranges]
    q, r = divmod(N_KERNELS * n_dil, n)
    assert sizes == [q + 1] * r + [q] * (n - r)


def test_osuleaf_has_6_dilations_so_at_most_504_devices():
    dil, _ = fit_dilations(427, ModelConfig())  # OSULeaf: L = 427
    assert list(dil) == [1, 2, 4, 8, 16, 32]
    assert max_devices(len(dil)) == 504


@pytest.mark.parametrize("bad", [0, -1, 169, 1000])
def test_more_devices_than_units_is_refused_naming_the_maximum(bad):
    with pytest.raises(ValueError, match=r"--nodes 168 or fewer"):
        check_n_devices(bad, 2, 24)
    with pytest.raises(ValueError, match="168"):
        unit_ranges(bad, 2)
    with pytest.raises(ValueError, match="between 1 and 84 for a split by kernel"):
        kernel_ranges(85)


def test_units_touch_the_right_kernels():
    assert kernels_of_units(0, 12, 6) == (0, 2)
    assert kernels_of_units(3, 8, 6) == (0, 2)  # kernel 0 dilations 3-5, kernel 1 dilations 0-1
    assert kernels_of_units(6, 6, 6) == (1, 1)
    assert list(kernels_at_dilation(3, 8, 6, 4)) == [0]
    assert list(kernels_at_dilation(3, 8, 6, 1)) == [1]
    assert list(kernels_at_dilation(3, 8, 6, 2)) == []
    assert list(kernels_at_dilation(0, 504, 6, 5)) == list(range(84))


def test_unit_offsets_for_unequal_features_per_dilation():
    fpd = np.array([3, 1, 2], dtype=np.int32)
    off = unit_offsets(fpd)
    assert off[-1] == n_features_total(fpd) == 84 * 6
    assert list(off[:7]) == [0, 3, 4, 6, 9, 10, 12]


@pytest.mark.parametrize("n_devices", [85, 100, 168])
@pytest.mark.parametrize("bias_source", ["first", "random"])
def test_unit_shards_concatenate_bitwise_to_the_full_transform(bundled_int8, n_devices, bias_source):
    ds = bundled_int8("ItalyPowerDemand")  # L = 24: 2 dilations, at most 168 devices
    cfg = ModelConfig(bias_source=bias_source)
    x = ds.x_test[:25]
    dil, fpd = fit_dilations(x.shape[1], cfg)
    rows = bias_fit_rows(len(ds.x_train), len(dil), cfg)
    full_b = fit_biases(ds.x_train, rows, dil, fpd, 0, N_KERNELS)
    full = transform(x, dil, fpd, full_b, 0, N_KERNELS)
    parts, part_b, n_feat = [], [], 0
    for device in range(n_devices):
        spec = build_shard(cfg, x.shape[1], device, n_devices)
        idx, local_rows = shard_fit_series_units(rows, spec.unit_start, spec.unit_stop)
        b = fit_biases_units(ds.x_train[idx], local_rows, dil, fpd, spec.unit_start, spec.unit_stop)
        f = transform_units(x, dil, fpd, b, spec.unit_start, spec.unit_stop)
        assert f.shape == (len(x), spec.n_features)
        np.testing.assert_array_equal(f, full[:, spec.feature_start : spec.feature_stop])
        parts.append(f)
        part_b.append(b)
        n_feat += spec.n_features
    assert n_feat == full.shape[1]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), full)
    np.testing.assert_array_equal(np.concatenate(part_b), full_b)


def test_a_shard_is_flashed_only_the_series_of_its_own_units():
    cfg = ModelConfig(bias_source="random", seed=3)
    rows = bias_fit_rows(50, 5, cfg)
    idx, local = shard_fit_series_units(rows, 7, 9)  # kernel 1 dilations 2, 3
    assert list(idx) == sorted({int(rows[1, 2]), int(rows[1, 3])})
    assert (local.reshape(-1)[:7] == 0).all() and (local.reshape(-1)[9:] == 0).all()
    assert [int(idx[local[1, j]]) for j in (2, 3)] == [int(rows[1, 2]), int(rows[1, 3])]
    a, b = shard_fit_series(rows, 2, 5)
    c, d = shard_fit_series_units(rows, 10, 25)
    assert np.array_equal(a, c) and np.array_equal(b, d)


def test_unit_transform_of_a_kernel_range_equals_the_kernel_transform(bundled_int8):
    ds = bundled_int8("GunPoint")
    cfg = ModelConfig()
    dil, fpd = fit_dilations(ds.x_train.shape[1], cfg)
    rows = bias_fit_rows(len(ds.x_train), len(dil), cfg)
    d = len(dil)
    b_k = fit_biases(ds.x_train, rows, dil, fpd, 3, 7)
    b_u = fit_biases_units(ds.x_train, rows, dil, fpd, 3 * d, 7 * d)
    assert np.array_equal(b_k, b_u)
    assert np.array_equal(transform(ds.x_test, dil, fpd, b_k, 3, 7),
                          transform_units(ds.x_test, dil, fpd, b_u, 3 * d, 7 * d))
    with pytest.raises(ValueError, match="not inside"):
        transform_units(ds.x_test, dil, fpd, b_u, 0, 84 * d + 1)


def test_feature_ranges_past_84_cover_the_model():
    fpd = np.array([19] * 6, dtype=np.int32)  # OSULeaf
    fr = feature_ranges(200, fpd)
    assert fr[0] == (0, 3 * 19) and fr[-1] == (84 * 114 - 2 * 19, 84 * 114)
    assert all(fr[i][1] == fr[i + 1][0] for i in range(199))
    assert feature_ranges(20, fpd)[0] == (0, 5 * 114)  # unchanged up to 84


def test_ram_ledger_and_cycles_follow_the_finer_split():
    cfg = ModelConfig(optimizer="adam8bit")
    length, c = 427, 6  # OSULeaf
    fpd = fit_dilations(length, cfg)[1]
    leds = [ledger(cfg, 200, length, c, device=d) for d in range(200)]
    assert sum(led.n_features for led in leds) == n_features_total(fpd)
    assert leds[0].n_features == 3 * 19 and leds[-1].n_features == 2 * 19
    at84 = ledger(cfg, 84, length, c)
    assert leds[0].entries["weights W"] * 2 == at84.entries["weights W"]  # 57 vs 114 features
    # ... but the radio's G packets grow with N: past 84 the device holds more RAM, not less
    assert leds[0].entries["radio packet buffers"] > 2 * at84.entries["radio packet buffers"]
    assert leds[0].total_bytes > at84.total_bytes
    assert firmware_ledger(cfg, 200, length, c, 200, 242).n_features == 3 * 19
    # the convolution work adds up over shards to the one-device transform, minus the shifted
    # copies each shard makes of the dilations it has
    conv = sum(cycles.transform_cycles(cfg, 200, length, d) for d in range(200))
    one = cycles.transform_cycles(cfg, 1, length, 0)
    shift = cycles.DEFAULT_COSTS.shift_per_position * length
    n_shift_shards = sum(min(6, b - a) for a, b in unit_ranges(200, 6))
    assert conv - n_shift_shards * shift == pytest.approx(one - 6 * shift, rel=1e-12)
    assert cycles.step_seconds(cfg, 200, length, c, 0) < cycles.step_seconds(cfg, 84, length, c, 0)
    fw = [firmware_cycles.transform_cycles(cfg, 200, length, d) for d in (0, 199)]
    assert fw[0] > fw[1] > 0
