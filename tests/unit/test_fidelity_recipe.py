"""``--recipe paper``: the official firmware's training settings (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.service.run_setup import RunArgs, SetupError, build_setup
from protocol.config.model import ModelConfig


def test_paper_recipe_sets_the_firmware_training_settings() -> None:
    m = build_setup(RunArgs(dataset="GunPoint", nodes=5, epochs=1, num_features=2000, recipe="paper")).config.model
    assert (m.batch_size, m.lr, m.lr_schedule, m.weight_decay, m.feature_scaling, m.optimizer) == (
        128, 1e-3, "constant", 0.0, False, "adam8bit")
    # the tuned default differs in every one of them but lr
    d = ModelConfig()
    assert (d.batch_size, d.lr_schedule, d.feature_scaling, d.optimizer) != (128, "constant", False, "adam8bit")


def test_explicit_batch_size_wins_and_bad_recipe_names_the_fix() -> None:
    m = build_setup(RunArgs(dataset="GunPoint", nodes=5, epochs=1, num_features=2000, recipe="paper",
                            batch_size=16)).config.model
    assert m.batch_size == 16
    with pytest.raises(SetupError, match="--recipe"):
        build_setup(RunArgs(dataset="GunPoint", nodes=5, epochs=1, recipe="fast"))


def test_tuned_runs_draw_aeons_bias_rows_and_the_firmware_profile_keeps_series_0() -> None:
    from protocol.config.model import bias_fit_rows

    tuned = build_setup(RunArgs(dataset="GunPoint", nodes=5, epochs=1, num_features=2000)).config.model
    firmware = build_setup(RunArgs(dataset="GunPoint", nodes=5, epochs=1, num_features=2000,
                                   profile="firmware")).config.model
    assert (tuned.bias_source, firmware.bias_source) == ("random", "first")
    assert np.any(bias_fit_rows(50, 4, tuned) != 0) and not np.any(bias_fit_rows(50, 4, firmware))
    explicit = build_setup(RunArgs(dataset="GunPoint", nodes=5, epochs=1, num_features=2000, profile="firmware",
                                   model_overrides={"bias_source": "random"})).config.model
    assert explicit.bias_source == "random"
