"""The device's array bookkeeping (node/device/tables.py, node/device/base.py) against the
per-item definitions it replaced: on random streams, the tables answer what the old loops
over ``stream.kind[t]`` / ``stream.owner[t]`` / the ``(is_test, sample)`` keys answered;
the device-order logit sum in one compiled loop is bitwise the numpy adds."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.device.tables import ItemTables
from node.ml.head import sum_partial_logits, sum_partial_logits_rows
from protocol.config.model import ModelConfig, schedule_config
from protocol.stream.schedule import KIND_CALIB, KIND_TRAIN, build_stream


def _stream(n_train: int, n_test: int, n_devices: int, epochs: int, selection: str) -> object:
    cfg = ModelConfig(epochs=epochs, selection=selection, select_weight_decays=(10.0, 1.0))
    return build_stream(schedule_config(cfg, n_train, n_test, n_devices, eval_every=1))


def _shard(stream: object, device: int, series_length: int = 5) -> SimpleNamespace:
    """A shard holding this device's samples, series value = a code of (split, sample)."""
    tests = np.array([stream.is_test(t) for t in range(stream.n_items)], dtype=bool)
    mine = stream.owner == device
    train = sorted(set(stream.sample[mine & ~tests].tolist())) or [0]
    test = sorted(set(stream.sample[mine & tests].tolist())) or [0]
    t0, s0 = train[0], test[0]
    x_train = np.array([[i % 100] * series_length for i in range(t0, train[-1] + 1)], np.int8)
    x_test = np.array([[-(i % 100) - 1] * series_length for i in range(s0, test[-1] + 1)], np.int8)
    return SimpleNamespace(x_train=x_train, y_train=np.arange(len(x_train)) % 3, train_start=t0,
                           x_test=x_test, y_test=np.arange(len(x_test)) % 3, test_start=s0)


@settings(max_examples=40, deadline=None)
@given(n_train=st.integers(4, 30), n_test=st.integers(1, 12), n_devices=st.integers(1, 5),
       epochs=st.integers(1, 3), selection=st.sampled_from(["none", "decay", "epoch"]),
       data=st.data())
def test_tables_answer_what_the_per_item_lookups_did(n_train, n_test, n_devices, epochs, selection, data):
    stream = _stream(n_train, n_test, n_devices, epochs, selection)
    device = data.draw(st.integers(0, n_devices - 1))
    shard = _shard(stream, device)
    tables = ItemTables.of(stream, device, shard)
    keys: dict[tuple[bool, int], int] = {}
    for t in range(stream.n_items):
        assert tables.owned[t] == (int(stream.owner[t]) == device)
        assert tables.calib[t] == (stream.kind[t] == KIND_CALIB)
        assert tables.train[t] == (stream.kind[t] == KIND_TRAIN)
        key = (stream.is_test(t), int(stream.sample[t]))  # the feature cache's old key
        assert keys.setdefault(key, int(tables.slot[t])) == tables.slot[t]
        assert 0 <= tables.slot[t] < tables.n_slots
        if t:
            cut = bool(stream.step_after[t - 1] or stream.kind[t - 1] != stream.kind[t]
                       or stream.epoch[t - 1] != stream.epoch[t])
            assert tables.run_starts[t] == cut
        if tables.owned[t]:  # the row is the old _own_series of the item
            if stream.is_test(t):
                x, y = shard.x_test[key[1] - shard.test_start], shard.y_test[key[1] - shard.test_start]
            else:
                x, y = shard.x_train[key[1] - shard.train_start], shard.y_train[key[1] - shard.train_start]
            row = tables.own_rows(np.array([t]))[0]
            assert np.array_equal(tables.own_series[row], x) and tables.own_labels[row] == y
    assert len(set(keys.values())) == len(keys)  # one slot per key: no two samples share one
    assert tables.own_items.tolist() == [t for t in range(stream.n_items) if tables.owned[t]]


def test_an_owned_sample_missing_from_the_shard_raises_when_read() -> None:
    stream = _stream(8, 4, 2, 1, "none")
    shard = _shard(stream, 0)
    shard.x_train, shard.y_train = shard.x_train[:1], shard.y_train[:1]
    tables = ItemTables.of(stream, 0, shard)
    with pytest.raises(IndexError, match="not in this device's shard"):
        tables.own_rows(tables.own_items)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 12), n=st.integers(1, 25), c=st.integers(2, 12), seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([1e-3, 1.0, 1e4]))
def test_row_sums_are_bitwise_the_device_order_numpy_adds(m, n, c, seed, scale):
    parts = (np.random.default_rng(seed).standard_normal((m, n, c)) * scale).astype(np.float32)
    expected = np.empty((m, c), dtype=np.float32)
    for i in range(m):
        total = parts[i, 0].copy()
        for d in range(1, n):
            total += parts[i, d]
        expected[i] = total
    assert np.array_equal(sum_partial_logits_rows(parts), expected)
    assert np.array_equal(sum_partial_logits(parts.transpose(1, 0, 2)), expected)
    assert np.array_equal(sum_partial_logits(parts[0]), expected[0])
    assert np.array_equal(sum_partial_logits(list(parts[0])), expected[0])


def test_series_delivered_out_of_order_or_twice_keep_the_last_row_of_each_item() -> None:
    from coordinator.service.run_setup import RunArgs, build_setup
    from node.device.factory import make_device
    from node.device.rocknet import DeviceData

    setup = build_setup(RunArgs(dataset="GunPoint", nodes=2, num_features=1000))
    stream = setup.stream

    def fresh() -> object:
        return make_device(1, setup.config, DeviceData.from_shard(setup.shard(1)))

    theirs = [t for t in range(60) if int(stream.owner[t]) == 0 and stream.kind[t] != KIND_CALIB][:6]
    length = setup.config.series_length
    rows = np.arange(len(theirs) * length, dtype=np.int64).reshape(len(theirs), length) % 127
    series, labels = rows.astype(np.int8), (np.arange(len(theirs)) % 2).astype(np.int16)
    tidy, messy = fresh(), fresh()
    tidy.receive_series(0, 60, np.array(theirs, np.int32), series, labels)
    order = [3, 0, 5, 1, 4, 2]
    junk = np.full((1, length), 99, np.int8)  # an earlier row for item theirs[2], overwritten
    messy.receive_series(0, 60, np.array([theirs[2]] + [theirs[i] for i in order] + [10**6], np.int32),
                         np.concatenate([junk, series[order], junk]),
                         np.concatenate([[1], labels[order], [0]]).astype(np.int16))
    for t in range(60):
        a, b = tidy.series_of(t), messy.series_of(t)
        assert (a is None) == (b is None), t
        if a is not None:
            assert np.array_equal(a[0], b[0]) and a[1] == b[1], t
    assert all(tidy.series_of(t) is not None for t in theirs)


def test_the_tx_stats_wire_dict_is_the_records_wire_form() -> None:
    import copy

    from coordinator.service.run_setup import RunArgs, build_setup
    from node.device.base import PassMetrics
    from node.device.factory import make_device
    from node.device.rocknet import DeviceData

    setup = build_setup(RunArgs(dataset="GunPoint", nodes=2, num_features=1000))
    device = make_device(0, setup.config, DeviceData.from_shard(setup.shard(0)))
    for passes in ([], [PassMetrics("train", 0, 3, 4, 1.5, 1)],
                   [PassMetrics("train", 0, 3, 4, 1.5, 0), PassMetrics("eval", 0, 0, 0, 0.0, 2),
                    PassMetrics("val", 1, 1, 2, 0.25, 0)]):
        device.passes = passes
        device.stats.compute_wall_s, device.stats.steps = 0.125, 2
        twin = copy.deepcopy(device)
        wire = device.take_stats()
        expected = twin.take_tx_stats().to_wire()
        assert wire == expected and list(wire) == list(expected)
        assert list(wire.get("train", {})) == list(expected.get("train", {}))
        assert device.stats.steps == 0  # reset, as take_tx_stats does
