"""The training modes in-process (docs/modes.md): private labels and the data-parallel
baseline, driven through the coordinator's exchanges, the air and the node devices without
sockets (the pattern of tests/inprocess.py, for every mode's device class)."""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.backends.inprocess import in_process_run
from coordinator.engine.engine import EngineOptions
from coordinator.engine.exchanges import plan_exchanges
from coordinator.engine.link import Inbound
from coordinator.engine.medium import Air
from coordinator.service.run_setup import RunArgs, SetupError, build_setup
from node.device.data_parallel import DataParallelDevice, merge_statistics
from node.device.rocknet import DeviceData
from protocol.config.ram_ledger import RamBudgetExceeded, data_parallel_ledger, ledger
from node.device.factory import AnyDevice, make_device
from node.device.private_labels import NO_LABEL, PrivateLabelsDevice
from protocol.wire.frames import Tx
from protocol.stream.schedule import KIND_TRAIN
from inprocess import reference_of

pytestmark = pytest.mark.usefixtures("warm_numba")


def drive(setup, lockstep: bool, silent: dict[int, set[int]] | None = None
          ) -> tuple[list[AnyDevice], Air, list[dict[int, Tx]]]:
    """Run every exchange on the engine, in-process; ``silent[exchange]`` = devices whose TX
    misses that exchange's deadline. Also returns the TXs that made it, per exchange."""
    sent: dict[int, dict[int, Tx]] = {}

    def tap(item: Inbound) -> None:
        if isinstance(item.message, Tx):
            sent.setdefault(item.message.exchange, {})[item.message.device] = item.message

    late = None if not silent else (lambda exchange, device: device in silent.get(exchange, set()))
    run = in_process_run(setup, EngineOptions(lockstep=lockstep, down_after=10**9), late=late, tap=tap)
    engine = run.run()
    devices = [agent.device for agent in run.agents]
    return devices, engine.air, [sent.get(p.exchange, {}) for p in engine.plans]


def args(**kw) -> RunArgs:
    base = dict(dataset="GunPoint", nodes=5, epochs=2, num_features=2000, batch_size=16)
    base.update(kw)
    return RunArgs(**base)


def assert_same_weights(a: list[AnyDevice], b: list[AnyDevice]) -> None:
    for x, y in zip(a, b):
        assert np.array_equal(x.head.W, y.head.W), f"device {x.device}: W differs"
        assert np.array_equal(x.head.b, y.head.b), f"device {x.device}: b differs"


# ----------------------------------------------------------------------------- private labels

def test_private_labels_equals_the_default_mode_bitwise_without_loss() -> None:
    rock, rock_air, _ = drive(build_setup(args()), lockstep=False)
    private, private_air, sent = drive(build_setup(args(mode="private-labels")), lockstep=False)
    assert all(isinstance(d, PrivateLabelsDevice) for d in private)
    assert_same_weights(rock, private)
    assert [d.steps_taken for d in private] == [d.steps_taken for d in rock]
    # No label ever left its owner; g did travel, one C-vector per training sample.
    for txs in sent:
        for tx in txs.values():
            assert (tx.labels == NO_LABEL).all()
    stream = build_setup(args(mode="private-labels")).stream
    n_grads = sum(len(tx.grad_items) for txs in sent for tx in txs.values())
    assert n_grads == int((stream.kind == KIND_TRAIN).sum())
    # Every owner scored its own test samples; together they are the default's accuracy.
    evals = [[p for p in d.final_metrics()["passes"] if p["kind"] == "eval"][-1] for d in private]
    assert sum(p["total"] for p in evals) == len(build_setup(args()).y_test)
    rock_eval = [p for p in rock[0].final_metrics()["passes"] if p["kind"] == "eval"][-1]
    assert sum(p["correct"] for p in evals) == rock_eval["correct"]
    # One more round per optimizer step (the bubble after it); the run ends on evaluation
    # items, whose last round carries logits only, as in the default mode.
    assert stream.n_rounds == build_setup(args()).stream.n_rounds + stream.steps
    assert private_air.totals[0].tx_slots > 0 and rock_air.totals[0].tx_slots > 0


@pytest.mark.parametrize("loss", [0.0, 0.8])
def test_private_labels_batch_mode_equals_lockstep_bitwise(loss: float) -> None:
    batch, batch_air, _ = drive(build_setup(args(mode="private-labels", loss=loss)), lockstep=False)
    lock, lock_air, _ = drive(build_setup(args(mode="private-labels", loss=loss)), lockstep=True)
    assert_same_weights(batch, lock)
    assert [d.final_metrics() for d in batch] == [d.final_metrics() for d in lock]
    assert [t.lost_packets for t in batch_air.totals] == [t.lost_packets for t in lock_air.totals]
    if loss:
        skipped = sum(p["skipped"] for d in batch for p in d.final_metrics()["passes"])
        assert skipped > 0


def test_private_labels_a_missing_g_skips_that_update_and_the_batch_still_steps() -> None:
    kw = dict(mode="private-labels", epochs=1, batch_size=25)
    setup = build_setup(args(**kw))
    plans = plan_exchanges(setup.stream, lockstep=False)
    # The g exchange of the epoch's last batch (its last round also carries the first test
    # series, owned by device 0: device 3's absence costs nothing else).
    grad_plan = [p for p in plans if p.grad_to > p.grad_from][-1]
    batch = range(grad_plan.grad_from, grad_plan.grad_to)
    owned_by_3 = sum(int(setup.stream.owner[t]) == 3 for t in batch)
    assert 0 < owned_by_3 < len(batch)
    # Device 3's TX misses that exchange's deadline: its g reaches nobody, and it hears none
    # of the others' (its RX is the empty one of a silent device); it still has its own g.
    devices, _, _ = drive(setup, lockstep=False, silent={grad_plan.exchange: {3}})
    lossless, _, _ = drive(build_setup(args(**kw)), lockstep=False)
    train = [[p for p in d.final_metrics()["passes"] if p["kind"] == "train"][0] for d in devices]
    assert train[3]["skipped"] == len(batch) - owned_by_3  # nobody else's g
    assert all(t["skipped"] == owned_by_3 for i, t in enumerate(train) if i != 3)  # device 3's g
    assert all(d.steps_taken == setup.stream.steps for d in devices)
    for dev, ref in zip(devices, lossless):
        assert not np.array_equal(dev.head.W, ref.head.W)
    # Training metrics are the owners' (only they know labels): all items were scored.
    assert sum(t["total"] for t in train) == setup.config.schedule.n_train


def test_private_labels_ledger_adds_the_g_buffer() -> None:
    setup = build_setup(args(mode="private-labels"))
    dev = make_device(0, setup.config, DeviceData.from_shard(setup.shard(0)))
    base = ledger(setup.config.model, 5, setup.config.series_length, setup.config.n_classes)
    assert dev.ledger.entries["gradient g (private labels)"] == 4 * setup.config.n_classes
    assert dev.ledger.total_bytes > base.total_bytes


# ----------------------------------------------------------------------------- data-parallel

def test_data_parallel_with_one_device_equals_the_centralized_reference_bitwise() -> None:
    setup = build_setup(args(mode="data-parallel", nodes=1, ram_budget_bytes=2**30))
    devices, air, sent = drive(setup, lockstep=False)
    ref = reference_of(setup)
    dev = devices[0]
    assert isinstance(dev, DataParallelDevice)
    assert np.array_equal(dev.head.W, ref.weights[0])
    assert np.array_equal(dev.head.b, ref.bias)
    assert dev.steps_taken == ref.steps == setup.stream.steps
    evals = [p for p in dev.final_metrics()["passes"] if p["kind"] == "eval"]
    assert evals[-1]["accuracy"] == pytest.approx(ref.test_accuracy)
    # Every sync carried the whole gradient (or the statistics) over the air.
    assert len(sent) == len(setup.stream.syncs) == setup.stream.steps + 1
    assert air.next_round == setup.stream.n_rounds


def test_data_parallel_replicas_stay_identical_and_learn() -> None:
    setup = build_setup(args(mode="data-parallel", nodes=5, ram_budget_bytes=2**30, epochs=3))
    devices, air, sent = drive(setup, lockstep=False)
    # On this layout every sync reached every device in full (Mixer completed each round) ...
    rounds = [air.outcome(r) for r in range(setup.stream.n_rounds)]
    assert all(o is None or o.sync_ok.all() for o in rounds)
    # ... so every replica summed the same gradients in the same order.
    for dev in devices[1:]:
        assert np.array_equal(dev.head.W, devices[0].head.W)
        assert dev.final_metrics()["weights_digest"] == devices[0].final_metrics()["weights_digest"]
    evals = [[p for p in d.final_metrics()["passes"] if p["kind"] == "eval"][-1] for d in devices]
    assert sum(p["total"] for p in evals) == len(setup.y_test)
    assert sum(p["correct"] for p in evals) / len(setup.y_test) > 0.7
    # One gradient message per device and step, of the documented size.
    grad_bytes = setup.stream.syncs[-1].message_bytes
    f = devices[0].n_features
    assert grad_bytes == 4 + 4 * setup.config.n_classes * (f + 1)
    assert all(tx.sync_payload.shape == (grad_bytes,) for tx in sent[-1].values())
    assert len(sent[-1]) == 5
    # Rounds of a step: every device's message in packets of 100 B; a round carries 12 of
    # each of the 5 devices' (at most 64 packets with the initiator's).
    sync = setup.stream.syncs[-1]
    assert sync.n_rounds == -(-(-(-grad_bytes // 100)) // 12)
    assert max(air.outcome(r).packets.n_packets for r in range(sync.first_round, sync.stop_round)
               if air.outcome(r) is not None) <= 64


def test_data_parallel_lockstep_and_batch_are_the_same_exchanges() -> None:
    a, _, _ = drive(build_setup(args(mode="data-parallel", nodes=2, ram_budget_bytes=2**30)), lockstep=False)
    b, _, _ = drive(build_setup(args(mode="data-parallel", nodes=2, ram_budget_bytes=2**30)), lockstep=True)
    assert_same_weights(a, b)


def test_data_parallel_under_loss_averages_what_arrived() -> None:
    setup = build_setup(args(mode="data-parallel", nodes=4, ram_budget_bytes=2**30, loss=0.9,
                             epochs=1, protocol="glossy"))
    devices, air, _ = drive(setup, lockstep=False)
    assert sum(t.lost_packets for t in air.totals) > 0
    assert all(d.steps_taken == setup.stream.steps for d in devices)
    digests = {d.final_metrics()["weights_digest"] for d in devices}
    assert len(digests) > 1  # messages lost in part: the replicas drifted apart


def test_data_parallel_refuses_a_replica_over_the_ram_budget() -> None:
    setup = build_setup(args(mode="data-parallel", nodes=2, num_features=10_000))
    with pytest.raises(RamBudgetExceeded, match=r"data-parallel.*--ram-budget \d+"):
        DataParallelDevice(device=0, config=setup.config, data=DeviceData.from_shard(setup.shard(0)))
    led = data_parallel_ledger(setup.config.model, 20, setup.config.series_length, setup.config.n_classes)
    assert led.total_bytes > 256 * 1024
    # RockNet's shard of the same model fits, at the same N.
    assert ledger(setup.config.model, 20, setup.config.series_length, setup.config.n_classes).total_bytes < 256 * 1024


def test_merge_statistics_equals_one_pass_over_all_rows(rng: np.random.Generator) -> None:
    from node.ml.scaling import FeatureScaler

    rows = rng.standard_normal((30, 7)).astype(np.float32)
    whole = FeatureScaler(7)
    whole.update(rows)
    parts = []
    for a, b in ((0, 11), (11, 12), (12, 30)):
        s = FeatureScaler(7)
        s.update(rows[a:b])
        st = s.state_dict()
        parts.append((st["count"], st["welford_mean"], st["welford_m2"]))
    count, mean, m2 = merge_statistics(parts)
    assert count == 30
    np.testing.assert_allclose(mean, whole.state_dict()["welford_mean"], rtol=1e-12)
    np.testing.assert_allclose(m2, whole.state_dict()["welford_m2"], rtol=1e-12)
    one = merge_statistics(parts[:1])
    assert one[0] == 11 and np.array_equal(one[1], parts[0][1])


def test_an_unknown_mode_is_refused_at_setup() -> None:
    with pytest.raises(SetupError, match="--mode must be one of rocknet, private-labels, data-parallel"):
        build_setup(args(mode="federated"))


def test_compare_command_line_refuses_unknown_modes_before_running(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from coordinator.tools import compare

    parser = argparse.ArgumentParser(prog="rocknet")
    compare.add_parser(parser.add_subparsers(dest="command"))
    a = parser.parse_args(["compare", "--dataset", "GunPoint", "--nodes", "4", "--modes", "rocknet,gossip"])
    assert (a.dataset, a.nodes, a.ram_budget) == ("GunPoint", 4, 256 * 1024)
    assert compare.main(a) == 2
    assert "--modes takes a comma list of rocknet, private-labels, data-parallel" in capsys.readouterr().err


def test_head_g_halves_are_bitwise_accumulate(rng: np.random.Generator) -> None:
    from node.ml.head import ShardHead
    from protocol.config.model import ModelConfig

    cfg = ModelConfig(lr_schedule="constant")
    for classes in (2, 6):
        whole, halves = (ShardHead(classes, 37, True, cfg, 0, 1) for _ in range(2))
        for _ in range(20):
            f = rng.standard_normal(37).astype(np.float32)
            z = (rng.standard_normal(classes) * 4).astype(np.float32)
            y = int(rng.integers(classes))
            loss = whole.accumulate(f, z, y)
            g, g_loss = halves.softmax_gradient(z, y)
            halves.accumulate_gradient(f, g)
            assert g_loss == loss
        assert np.array_equal(whole.grad_W, halves.grad_W) and np.array_equal(whole.grad_b, halves.grad_b)
        whole.step()
        halves.step()
        assert np.array_equal(whole.W, halves.W)


def test_private_labels_rounds_keep_every_batch_on_stepped_weights() -> None:
    stream = build_setup(args(mode="private-labels")).stream
    for t in range(stream.n_items):
        if stream.step_after[t] and t + 1 < stream.n_items:
            # the step happens after g(t) arrives; the next item's logits come after it
            assert stream.logits_round(t + 1) > stream.grad_round(t)
            assert stream.series_round(t + 1) == stream.series_round(t) + 2  # one bubble
    rounds = [stream.series_round(t) for t in range(stream.n_items)]
    assert rounds == sorted(set(rounds))


def test_data_parallel_rounds_interleave_every_device_under_64_packets() -> None:
    from protocol.stream.schedule import round_packets

    setup = build_setup(args(mode="data-parallel", nodes=20, ram_budget_bytes=2**30))
    stream = setup.stream
    sync = stream.syncs[1]
    per_device = np.zeros(20, dtype=np.int64)
    for r in range(sync.first_round, sync.stop_round):
        packets = round_packets(stream, r, setup.config.series_length, setup.config.n_classes)
        assert packets.n_packets <= 64
        counts = [len(ids) for ids in packets.sync_packets]
        assert len(set(counts)) == 1 and counts[0] >= 1  # the same slice of every device
        per_device += counts
    assert (per_device == sync.packets_per_device).all()
    assert sync.packets_per_device == -(-sync.message_bytes // 100)
