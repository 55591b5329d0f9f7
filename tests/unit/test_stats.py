"""Typed TX / FINAL stats records: what every mode's devices send survives a round trip
through the records unchanged (keys, order, values), and malformed maps are refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from coordinator.engine.exchanges import deliver, plan_exchanges
from coordinator.engine.medium import Air
from coordinator.service.run_setup import RunArgs, build_setup
from node.device.factory import make_device
from node.device.rocknet import DeviceData
from protocol.device import DeviceStateMachine
from protocol.stream.modes import MODES
from protocol.wire.frames import Tx
from protocol.wire.stats import FinalMetrics, PassRecord, TxStats


def _run(mode: str, head: str = "sgd") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every TX stats map and every FINAL stats map of a small run of ``mode``."""
    sgd = {"epochs": 1, "batch_size": 16} if head == "sgd" else {}
    setup = build_setup(RunArgs(dataset="GunPoint", nodes=3, num_features=1000, mode=mode, head=head, **sgd))
    cfg = setup.config
    devices: list[DeviceStateMachine] = [
        make_device(d, cfg, DeviceData.from_shard(setup.shard(d))) for d in range(cfg.n_devices)]
    air = Air(setup.stream, setup.topology, setup.loss, setup.protocol, cfg.model.seed,
              cfg.series_length, cfg.logit_width)
    sent: list[dict[str, Any]] = []
    for plan in plan_exchanges(setup.stream, lockstep=False):
        msg = plan.message()
        txs = {}
        for dev in devices:
            stats = dev.take_stats()
            sent.append(stats)
            txs[dev.device] = Tx(exchange=plan.exchange, device=dev.device, stats=stats,
                                 **dev.tx_payload(msg))
            air.sample_s[dev.device] = stats["model_sample_s"]
        air.resolve_until(plan.last_round + 1, np.ones(cfg.n_devices, dtype=bool))
        for dev, rx in zip(devices, (deliver(plan, txs, air)[d.device] for d in devices)):
            dev.on_rx(msg, rx)
    return sent, [dev.final_metrics() for dev in devices]


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_s_stats_round_trip_through_the_records(mode: str) -> None:
    sent, finals = _run(mode)
    # Both pass kinds are covered (data-parallel scores its evaluation when it stops).
    assert any("train" in s for s in sent)
    assert any(p["kind"] == "eval" for f in finals for p in f["passes"])
    for stats in sent:
        back = TxStats.from_wire(stats).to_wire()
        assert back == stats and list(back) == list(stats)  # same keys, same order
    for final in finals:
        back = FinalMetrics.from_wire(final).to_wire()
        assert back == final and list(back) == list(final)
        assert ("weights_digest" in final) == (mode == "data-parallel")


def _tx() -> dict[str, Any]:
    train = PassRecord.from_counts("train", 0, correct=3, total=4, loss_sum=2.0, skipped=1)
    return TxStats(compute_wall_s=0.5, compute_modeled_s=1.5, samples_transformed=4, steps=1,
                   ram_bytes=1000, processed_item=7, model_sample_s=0.01, model_step_s=0.02,
                   train=train, bad_frames=0, stale_frames=2).to_wire()


def test_agent_counters_travel_after_the_device_stats() -> None:
    wire = _tx()
    assert list(wire)[-3:] == ["train", "bad_frames", "stale_frames"]
    assert TxStats.from_wire(wire).to_wire() == wire


@pytest.mark.parametrize("key, value", [
    ("model_sample_s", None), ("model_sample_s", float("nan")), ("compute_wall_s", -1.0),
    ("steps", 1.5), ("steps", True), ("ram_bytes", -4), ("processed_item", -2),
    ("train", {"kind": "train"}), ("train", "x"),
])
def test_a_bad_tx_map_is_refused_naming_the_key(key: str, value: Any) -> None:
    wire = _tx()
    wire[key] = value
    with pytest.raises(ValueError, match=repr(key) if key != "train" else "pass record|lacks"):
        TxStats.from_wire(wire)


@pytest.mark.parametrize("key", ["compute_wall_s", "model_step_s", "processed_item"])
def test_a_tx_map_without_a_required_key_is_refused(key: str) -> None:
    wire = _tx()
    del wire[key]
    with pytest.raises(ValueError, match=f"lacks {key!r}"):
        TxStats.from_wire(wire)


def test_a_pass_of_the_wrong_kind_or_impossible_counts_is_refused() -> None:
    wire = _tx()
    wire["eval"] = wire["train"]
    with pytest.raises(ValueError, match="'eval'"):
        TxStats.from_wire(wire)
    bad = dict(_tx()["train"], correct=9)
    with pytest.raises(ValueError, match="'correct'"):
        PassRecord.from_wire(bad)


def test_the_ridge_head_s_final_reports_its_solve() -> None:
    """The ridge head's FINAL round-trips with the samples its solve kept (all of a lossless
    run's) and its alpha (one of the grid); the SGD head's has neither."""
    from node.ml.ridge import RIDGE_ALPHAS

    _, finals = _run("rocknet", head="ridge")
    for final in finals:
        back = FinalMetrics.from_wire(final).to_wire()
        assert back == final and list(back) == list(final)
        assert final["steps"] == 1 and final["ridge_samples"] == 50 and final["ridge_alpha"] in RIDGE_ALPHAS
    assert all("ridge_samples" not in f and "ridge_alpha" not in f for f in _run("rocknet")[1])


@pytest.mark.parametrize("final", [
    [], {"steps": 1}, {"passes": [], "steps": -1}, {"passes": [{"kind": "calib"}], "steps": 0},
    {"passes": [], "steps": 0, "weights_digest": "XYZ"},
    {"passes": [], "steps": 1, "ridge_samples": -1}, {"passes": [], "steps": 1, "ridge_alpha": 0.0},
    {"passes": [], "steps": 1, "ridge_alpha": float("nan")}, {"passes": [], "steps": 1, "ridge_alpha": "1"},
])
def test_a_bad_final_map_is_refused(final: Any) -> None:
    with pytest.raises(ValueError):
        FinalMetrics.from_wire(final)


def test_scoring_rows_at_once_is_bitwise_scoring_them_one_by_one() -> None:
    from node.device.base import PassMetrics, score, score_rows

    rng = np.random.default_rng(7)
    logits = (rng.standard_normal((37, 6)) * 5).astype(np.float32)
    labels = rng.integers(0, 6, size=37)
    one, rows = PassMetrics("train", 0), PassMetrics("train", 0)
    for z, y in zip(logits, labels):
        score(one, z, int(y))
    score_rows(rows, logits, labels)
    assert (rows.loss_sum, rows.correct, rows.total) == (one.loss_sum, one.correct, one.total)
