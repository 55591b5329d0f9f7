"""Past 84 devices (split below the kernel) the distributed run still equals the centralized
reference bitwise: the production engine over in-process agents, N = 100 on GunPoint."""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.service.run_setup import RunArgs, SetupError, build_setup
from inprocess import drive, reference_of
from node.ml.shard import build_shard
from protocol.config.model import bias_fit_rows, fit_dilations, n_features_total

pytestmark = pytest.mark.usefixtures("warm_numba")


@pytest.mark.parametrize(("overrides", "optimizer"), [({}, "adam"), ({"bias_source": "random"}, "adam8bit")])
def test_100_devices_below_the_kernel_equal_the_reference_bitwise(overrides, optimizer):
    setup = build_setup(RunArgs(dataset="GunPoint", nodes=100, epochs=1, optimizer=optimizer,
                                model_overrides=overrides))
    cfg, length = setup.config.model, setup.config.series_length
    dilations, fpd = fit_dilations(length, cfg)
    assert len(dilations) == 5  # GunPoint: 420 units, 100 devices of 5 or 4 units
    devices, _ = drive(setup, lockstep=False)
    ref = reference_of(setup)
    assert ref.steps > 0
    sizes = []
    for d, dev in enumerate(devices):
        spec = build_shard(cfg, length, d, 100)
        assert (dev.unit_start, dev.unit_stop) == (spec.unit_start, spec.unit_stop)
        assert dev.n_features == spec.n_features
        assert np.array_equal(dev.head.W, ref.weights[d]), f"device {d} differs"
        sizes.append(spec.n_units)
        # only the training series of its own units were flashed to it
        rows = bias_fit_rows(len(setup.y_train), len(dilations), cfg).reshape(-1)
        flashed = setup.shard(d)["fit_series"]
        assert len(flashed) == len(np.unique(rows[spec.unit_start:spec.unit_stop]))
    assert sizes == [5] * 20 + [4] * 80
    assert sum(dev.n_features for dev in devices) == n_features_total(fpd)
    assert np.array_equal(devices[0].head.b, ref.bias)


def test_more_devices_than_kernel_dilation_pairs_is_refused_naming_the_maximum():
    with pytest.raises(SetupError, match=r"--nodes 420 or fewer"):
        build_setup(RunArgs(dataset="GunPoint", nodes=421, epochs=1))
    with pytest.raises(SetupError, match=r"--nodes 168 or fewer"):
        build_setup(RunArgs(dataset="ItalyPowerDemand", nodes=169, epochs=1))
