"""The firmware profile end to end, in process: the equivalences hold and the time base is the
firmware's fixed window (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.service.run_setup import RunArgs, build_setup
from inprocess import drive, reference_of
from protocol.air import timing


def small_args(**kw: object) -> RunArgs:
    base: dict[str, object] = dict(dataset="GunPoint", nodes=5, epochs=1, num_features=2000, batch_size=16,
                                   profile="firmware")
    base.update(kw)
    return RunArgs(**base)  # type: ignore[arg-type]


def test_firmware_profile_lossless_equals_reference_and_runs_8bit_adam() -> None:
    setup = build_setup(small_args())
    assert setup.config.profile == "firmware" and setup.config.model.optimizer == "adam8bit"
    assert setup.config.model.padding == "zero"  # the firmware's transform, on devices and reference
    devices, _ = drive(setup, lockstep=False)
    ref = reference_of(setup)
    for dev, w in zip(devices, ref.weights):
        assert np.array_equal(dev.head.W, w)


def test_firmware_profile_batch_equals_lockstep_and_uses_the_fixed_window() -> None:
    batch_devs, batch_air = drive(build_setup(small_args()), lockstep=False)
    lock_devs, lock_air = drive(build_setup(small_args()), lockstep=True)
    for a, b in zip(batch_devs, lock_devs):
        assert np.array_equal(a.head.W, b.head.W)
    assert batch_air.virtual_time_s == pytest.approx(lock_air.virtual_time_s)
    # every round lasts at least the window 340 C / N + 20 ms (C = 2, N = 5) + its Mixer slots
    rounds = batch_air.next_round
    window = timing.compute_window_s(5, 2)
    assert window == pytest.approx(0.156)
    per_round_floor = window + 150 * timing.slot_s(1 + 2 + 5)  # G: initiator, series 152 B, 5 x logits
    assert batch_air.virtual_time_s >= rounds * per_round_floor * (1 - 1e-9)
    _, tuned_air = drive(build_setup(small_args(profile="tuned")), lockstep=False)
    assert tuned_air.virtual_time_s < batch_air.virtual_time_s
