"""benchmarks/scaling.py and ``rocknet model`` past 84 devices (the split below the kernel)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import scaling
from node.mcu import plan


def test_model_past_84_devices_grows_the_mixer_round_with_g():
    p20, p200 = scaling.model_points("OSULeaf", [20, 200], "tuned")
    assert (p20.generation_size, p20.slots) == (26, 150)  # 1 + 5 series packets + 20 logits
    assert (p200.generation_size, p200.slots) == (206, 618)  # max(3G, 150)
    assert p200.compute_s < p20.compute_s and p200.latency_s > 4 * p20.latency_s


@pytest.mark.parametrize("profile", scaling.PROFILE_NAMES)
def test_the_latency_optimum_is_where_the_round_leaves_its_150_slot_floor(profile):
    opt = scaling.optimum("OSULeaf", profile)
    assert opt["n_max"] == 504
    n_best = opt["latency"][0]
    # 3 G <= 150 up to G = 50, i.e. N = 44 (G = 1 + 5 + N): past it every device adds 3 slots
    assert 20 <= n_best <= 44
    assert opt["latency"][1] < scaling.model_points("OSULeaf", [200], profile)[0].latency_s


def test_rocknet_model_takes_n_up_to_84_times_d_and_names_the_maximum(capsys):
    assert plan.main(["--nodes", "100,200,504"]) == 0
    assert "504" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        plan.main(["--nodes", "505"])
    assert "between 1 and 504" in capsys.readouterr().err


def test_measured_rows_and_the_plot(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({
        "nodes": 200, "backend": "processes", "epochs": 1, "peak_ram_bytes": 62838,
        "per_train_sample": {"latency_s": 0.537, "energy_mj_per_device": 11.37},
        "per_node": [{"compute_s_modeled": 1.0}, {"compute_s_modeled": 2.0}],
        "exchange_wall_ms_median": 2064.9, "wall_time_s": 61.5,
        "test_accuracy": 0.785, "centralized_test_accuracy": 0.785}))
    (run / "host_memory.json").write_text(json.dumps({"pss": 2 * 2**30, "uss": 2**30, "rss": 19 * 2**30,
                                                        "node_uss_median": 9 * 2**20}))
    row = scaling.measured_row(run)
    assert (row.n_devices, row.ram_bytes, row.compute_s_per_device) == (200, 62838, 1.5)
    assert row.node_uss_bytes == 9 * 2**20
    out = tmp_path / "scaling.png"
    assert scaling.main(["--nodes", "20,200", "--run", str(run), "--out", str(out),
                         "--json", str(tmp_path / "s.json")]) == 0
    assert out.stat().st_size > 10_000
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["measured"][0]["n_devices"] == 200
    assert [p["n_devices"] for p in data["model"]["tuned"]["points"]] == [20, 200]
