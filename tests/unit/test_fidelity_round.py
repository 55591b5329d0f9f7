"""The firmware's message sizes, G and slot length; the profile record; ``rocknet model``."""

from __future__ import annotations

import json
import math

import pytest

from coordinator.ui.model_cli import plan_argv
from node.mcu import plan as model_cli
from node.mcu import profiles
from protocol.air.radio.firmware_round import (
    firmware_round,
    generation_size,
    logits_message_bytes,
    series_message_bytes,
)
from protocol.config.run import RunConfig


@pytest.mark.parametrize(("length", "n_classes"), [(427, 6), (131, 14), (97, 25), (198, 25), (96, 7)])
def test_message_sizes_and_generation_follow_the_firmware_formula(length: int, n_classes: int) -> None:
    # generate_rocket_mixer_config: header 2 + L + label 1 + flag 1; header 2 + 4 C.
    assert series_message_bytes(length) == length + 4
    assert logits_message_bytes(n_classes) == 4 * n_classes + 2
    for n in (1, 7, 20):
        rnd = firmware_round(n, length, n_classes)
        expected_g = 1 + math.ceil((length + 4) / rnd.payload_bytes) + n * math.ceil((4 * n_classes + 2) / rnd.payload_bytes)
        assert rnd.generation_size == expected_g
        assert rnd.slots == max(3 * expected_g, 150)


def test_generation_size_of_the_issue_examples() -> None:
    assert generation_size([431] + [26] * 20, 100) == 26
    assert generation_size([102] + [102] * 3, 100) == 1 + 2 + 6


@pytest.mark.parametrize(("length", "n_classes", "g", "slot_us"), [(427, 6, 26, 689), (131, 14, 23, 681)],
                         ids=["OSULeaf", "FaceAll"])
def test_slot_length_as_the_firmware_generator(length: int, n_classes: int, g: int, slot_us: int) -> None:
    rnd = firmware_round(20, length, n_classes)
    assert (rnd.payload_bytes, rnd.generation_size) == (100, g)
    assert round(rnd.slot_s * 1e6) == slot_us
    assert rnd.radio_s == pytest.approx(150 * slot_us * 1e-6)


def test_firmware_window_is_the_generators_rule_unless_compute_overruns_it() -> None:
    fw = profiles.FIRMWARE
    assert profiles.window_s(fw, 20, 6, 0.05) == pytest.approx((340 * 6 / 20 + 20) / 1e3)
    assert profiles.window_s(fw, 20, 6, 0.5) == 0.5
    assert profiles.window_s(profiles.TUNED, 20, 6, 0.05) == 0.05
    with pytest.raises(ValueError, match="--profile"):
        profiles.get_profile("fast")


def test_run_config_profile_is_backward_compatible() -> None:
    from protocol.config.model import ModelConfig
    from protocol.stream.schedule import ScheduleConfig

    def cfg(**kw: object) -> RunConfig:
        sched = ScheduleConfig(n_train=4, n_test=2, n_devices=2, epochs=1, batch_size=2)
        return RunConfig("x", 2, 2, 20, ModelConfig(), sched, **kw)  # type: ignore[arg-type]

    tuned = cfg()
    assert "profile" not in tuned.to_dict()  # tuned fingerprints unchanged
    fw = cfg(profile="firmware")
    assert RunConfig.from_dict(fw.to_dict()).profile == "firmware"
    assert RunConfig.from_dict(tuned.to_dict()).profile == "tuned"
    assert fw.fingerprint() != tuned.fingerprint()
    with pytest.raises(ValueError, match="--profile"):
        cfg(profile="fast")


def test_model_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert model_cli.main(["--dataset", "OSULeaf", "--nodes", "1,5,20", "--profile", "firmware", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    pts = out["points"]
    assert [p["n_devices"] for p in pts] == [1, 5, 20]
    last = pts[-1]
    assert (last["generation_size"], last["slots"]) == (26, 150)
    assert last["round_s"] == pytest.approx(150 * 689e-6 + (340 * 6 / 20 + 20) / 1e3)
    assert set(out["reduction"]) == {"ram", "latency", "energy"}
    assert out["reduction"]["ram"] == pytest.approx(1 - last["ram_bytes"] / pts[0]["ram_bytes"])
    # more devices: less RAM and compute on the largest device
    assert pts[0]["ram_bytes"] > pts[1]["ram_bytes"] > last["ram_bytes"]
    assert pts[0]["compute_s"] > pts[1]["compute_s"] > last["compute_s"]


def test_model_cli_bad_nodes() -> None:
    with pytest.raises(SystemExit):
        model_cli.main(["--nodes", "1,x"])


def test_model_cli_passes_built_in_datasets_through() -> None:
    assert plan_argv(["--dataset", "OSULeaf", "--nodes", "5"]) == ["--dataset", "OSULeaf", "--nodes", "5"]
    with pytest.raises(ValueError, match="--data-dir"):
        plan_argv(["--data-dir"])


def test_model_cli_shape_errors_name_the_fix() -> None:
    with pytest.raises(SystemExit):
        model_cli.main(["--dataset", "NotADataset"])
    with pytest.raises(ValueError, match="L,C,NTRAIN,NTEST"):
        model_cli.parse_shape("1,2")


@pytest.mark.parametrize(("length", "n_classes", "n_devices"),
                         [(97, 25, 20), (98, 25, 20), (197, 25, 7), (198, 25, 20), (427, 6, 20), (150, 2, 5)])
def test_a_firmware_profile_run_lays_out_the_firmwares_packets(length: int, n_classes: int,
                                                               n_devices: int) -> None:
    # The round a run resolves (the stream's packets and the Air's payload) is the one the
    # firmware's generator configures: G, and with it slots and slot length, agree.
    from protocol.stream.schedule import ScheduleConfig, build_stream, round_packets

    fw = firmware_round(n_devices, length, n_classes)
    schedule = ScheduleConfig(n_train=10, n_test=4, n_devices=n_devices, epochs=1, batch_size=4,
                              firmware_messages=True)
    stream = build_stream(schedule)
    round_no = next(r for r in range(stream.n_rounds)
                    if stream.series_item(r) is not None and stream.logits_item(r) is not None)
    packets = round_packets(stream, round_no, length, n_classes, initiator=0)
    assert packets.n_packets == fw.generation_size
    ours = round_packets(build_stream(ScheduleConfig(n_train=10, n_test=4, n_devices=n_devices,
                                                     epochs=1, batch_size=4)),
                         round_no, length, n_classes, initiator=0)
    assert ours.n_packets == 1 + math.ceil((length + 2) / 100) + n_devices * math.ceil(4 * n_classes / 100)
