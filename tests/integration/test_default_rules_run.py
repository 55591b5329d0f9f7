"""Issue 17's default rules in a real run (devices in-process, the node's own code): the
training-length rule, aeon's bias rows and the quantization rule are laid out alike by the
coordinator and every device, and the run still equals the centralized reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coordinator.service.datasets import auto_scale, load_dataset, quantize_int8
from coordinator.service.launch import LaunchOptions, run_testbed
from coordinator.service.run_setup import RunArgs, build_setup
from coordinator.service.server import CoordinatorOptions
from node.offline.reference import train_reference
from protocol.config.model import n_epochs
from protocol.config.training_length import MIN_EPOCHS

pytestmark = pytest.mark.usefixtures("warm_numba")


@pytest.mark.parametrize("dataset", ["UnitTest", "Covid3Month_disc"])
def test_a_default_run_equals_the_reference_with_the_rules(tmp_path: Path, dataset: str) -> None:
    # no epochs, no quantization given; the SGD head (--head auto would take ridge here)
    args = RunArgs(dataset=dataset, nodes=3, num_features=1000, head="sgd")
    setup = build_setup(args)
    model, n_train = setup.config.model, len(setup.y_train)
    assert model.epochs is None and model.bias_source == "random"
    assert setup.config.schedule.epochs == n_epochs(n_train, model)
    ds = load_dataset(dataset)
    # the run's series are auto_scale's choice (placement only reorders them)
    want = quantize_int8(ds.x_train, ds.x_test, auto_scale(ds.x_train))[0]
    assert sorted(map(bytes, setup.x_train)) == sorted(map(bytes, want))
    coord = CoordinatorOptions(node_port=0, feed_port=0, control_port=0, in_process=True)
    summary = run_testbed(args, LaunchOptions(out_dir=tmp_path, coordinator=coord, progress=False, reference=False))
    assert summary["phase"] == "finished" and summary["epochs"] == setup.config.schedule.epochs
    ref = train_reference(setup.x_train, setup.y_train, setup.x_test, setup.y_test,
                          setup.config.n_classes, model, 3)
    assert summary["test_accuracy"] == ref.test_accuracy
    with np.load(tmp_path / "weights.npz") as w:  # bitwise, device by device
        for i, want_w in enumerate(ref.weights):
            assert w[f"W_{i}"].tobytes() == want_w.tobytes()
        assert w["b_0"].tobytes() == ref.bias.tobytes()
    if dataset == "UnitTest":
        assert summary["epochs"] > MIN_EPOCHS  # 20 training series: the rule lengthens the run
