"""Topology: generators, hop counts, connectivity errors, files and the wire form."""

from __future__ import annotations

import json

import msgpack
import numpy as np
import pytest

from protocol.air.topology import PathLoss, Topology, TopologyError


def test_default_testbed_is_the_paper_layout_and_multi_hop() -> None:
    t = Topology.default_testbed()
    assert t.n_nodes == 21
    assert t.roles.count("compute") == 20 and t.roles.count("relay") == 1
    assert t.initiator == 0 and t.roles[0] == "compute"
    assert list(t.device_nodes) == [i for i, r in enumerate(t.roles) if r == "compute"]
    assert t.diameter() >= 3
    assert t.unreachable() == []
    again = Topology.default_testbed()
    np.testing.assert_array_equal(t.prr, again.prr)
    np.testing.assert_array_equal(t.positions, again.positions)


@pytest.mark.parametrize("n_devices", [5, 49, 99])
def test_default_testbed_scales(n_devices: int) -> None:
    t = Topology.default_testbed(n_devices)
    assert t.n_devices == n_devices and t.n_nodes == n_devices + 1
    t.validate()
    if n_devices >= 49:
        assert t.diameter() >= 4


def test_default_testbed_with_fixed_prr() -> None:
    t = Topology.default_testbed(prr=0.9)
    assert set(np.unique(t.prr)) == {0.0, 0.9}
    np.testing.assert_array_equal(t.prr > 0, Topology.default_testbed().prr > 0)


def test_line_hops_and_diameter() -> None:
    t = Topology.line(5)
    h = t.hop_matrix()
    assert h[0, 4] == 4 and h[4, 0] == 4 and h[2, 2] == 0
    assert t.diameter() == 4
    assert list(t.neighbours(2)) == [1, 3]
    assert t.links()[0] == (0, 1, 1.0)


def test_grid_and_mesh_diameters() -> None:
    assert Topology.grid(3, 4).diameter() == 2 + 3
    assert Topology.grid(3, 4, diagonal=True).diameter() == 3
    assert Topology.full_mesh(6).diameter() == 1


def test_disconnected_topology_names_the_unreachable_nodes() -> None:
    prr = np.zeros((5, 5))
    prr[0, 1] = prr[1, 0] = 1.0
    prr[2, 3] = prr[3, 2] = 1.0
    t = Topology(np.zeros((5, 2)), ("compute",) * 5, prr, 0)
    with pytest.raises(TopologyError, match=r"\[2, 3, 4\]"):
        t.validate()
    with pytest.raises(TopologyError, match="not connected"):
        t.diameter()


def test_one_way_link_is_not_connected() -> None:
    prr = np.zeros((2, 2))
    prr[0, 1] = 1.0  # 1 hears 0, 0 never hears 1
    with pytest.raises(TopologyError, match=r"\[1\]"):
        Topology(np.zeros((2, 2)), ("compute", "compute"), prr).validate()


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (dict(prr=np.ones((3, 3))), "prr\\[i, i\\]"),
        (dict(prr=np.full((3, 3), 1.5) * (1 - np.eye(3))), "\\[0, 1\\]"),
        (dict(prr=np.zeros((2, 2))), "shape"),
        (dict(roles=("compute", "router", "compute")), "unknown role"),
        (dict(roles=("relay", "compute", "compute")), "initiator"),
        (dict(initiator=7), "initiator 7"),
    ],
)
def test_structural_errors(kwargs: dict, msg: str) -> None:
    base = dict(positions=np.zeros((3, 2)), roles=("compute",) * 3,
                prr=np.ones((3, 3)) - np.eye(3), initiator=0)
    base.update(kwargs)
    with pytest.raises(TopologyError, match=msg):
        Topology(**base)


def test_path_loss_prr_falls_with_distance() -> None:
    pl = PathLoss()
    prr = pl.prr_of_distance(np.array([1.0, 10.0, 20.0, 24.0, 26.0, 40.0]))
    assert prr[0] > 0.999 and prr[-1] == 0.0
    assert np.all(np.diff(prr) <= 0)
    assert 0.05 < prr[3] < 0.95  # the transitional region


def test_random_geometric_is_seeded_and_connected() -> None:
    a = Topology.random_geometric(30, seed=3)
    b = Topology.random_geometric(30, seed=3)
    c = Topology.random_geometric(30, seed=4)
    np.testing.assert_array_equal(a.prr, b.prr)
    assert not np.array_equal(a.prr, c.prr)
    a.validate()
    assert not np.array_equal(a.prr, a.prr.T)  # shadowing asymmetry per direction


def test_random_geometric_too_sparse_raises() -> None:
    with pytest.raises(TopologyError, match="not connected"):
        Topology.random_geometric(5, seed=1, area_m=5000.0, max_tries=3)


def test_dict_round_trip_is_msgpack_able() -> None:
    t = Topology.default_testbed()
    wire = msgpack.unpackb(msgpack.packb(t.to_dict()), raw=False)
    back = Topology.from_dict(wire)
    np.testing.assert_array_equal(back.prr, t.prr)
    np.testing.assert_array_equal(back.positions, t.positions)
    assert back.roles == t.roles and back.initiator == t.initiator
    with pytest.raises(TopologyError, match="bad topology dict"):
        Topology.from_dict({"roles": ["compute"]})


TOML_OK = """
initiator = 0
[[nodes]]
id = 0
role = "compute"
position = [0.0, 0.0]
[[nodes]]
id = 1
role = "relay"
position = [10.0, 0.0]
[[nodes]]
id = 2
position = [20.0, 0.0]
[[links]]
a = 0
b = 1
prr = 0.9
[[links]]
a = 1
b = 2
prr_ab = 0.8
prr_ba = 0.7
"""


def test_from_toml(tmp_path) -> None:
    f = tmp_path / "t.toml"
    f.write_text(TOML_OK)
    t = Topology.from_file(f)
    assert t.roles == ("compute", "relay", "compute")
    assert t.prr[0, 1] == 0.9 and t.prr[1, 0] == 0.9
    assert t.prr[1, 2] == 0.8 and t.prr[2, 1] == 0.7 and t.prr[0, 2] == 0.0
    assert list(t.device_nodes) == [0, 2]
    assert t.diameter() == 2


def test_from_json_with_path_loss(tmp_path) -> None:
    spec = {
        "nodes": [{"id": i, "role": "compute", "position": [8.0 * i, 0.0]} for i in range(6)],
        "path_loss": {"exponent": 3.5, "shadowing_db": 2.0, "seed": 5},
    }
    f = tmp_path / "t.json"
    f.write_text(json.dumps(spec))
    t = Topology.from_file(f)
    assert t.n_nodes == 6
    assert t.prr[0, 1] > 0.9 and t.prr[0, 5] == 0.0  # 40 m is out of range
    t2 = Topology.from_file(f)
    np.testing.assert_array_equal(t.prr, t2.prr)


@pytest.mark.parametrize(
    "text, msg",
    [
        ("nodes = [", "cannot parse"),
        ("x = 1", "nodes"),
        (TOML_OK.replace("id = 2", "id = 1"), "appears twice"),
        (TOML_OK.replace("id = 2", "id = 9"), "id must be an integer in 0..2"),
        (TOML_OK.replace('role = "relay"', 'role = "router"'), "role must be"),
        (TOML_OK.replace("prr = 0.9", "prr = 1.9"), "links\\[0\\].prr"),
        (TOML_OK.replace("b = 2", "b = 5"), "unknown node 5"),
        (TOML_OK.replace("position = [10.0, 0.0]", "position = [10.0]"), "position"),
        (TOML_OK.replace("prr_ab = 0.8\nprr_ba = 0.7", ""), "missing prr"),
        (TOML_OK.split("[[links]]")[0], "no links"),
        (TOML_OK.replace("prr_ab = 0.8\nprr_ba = 0.7", "prr = 0.0"), "not connected.*\\[2\\]"),
        (TOML_OK.replace("initiator = 0", "initiator = 1"), "initiator"),
        (TOML_OK + "\n[path_loss]\nexponent = 3\n", "not both"),
    ],
)
def test_bad_files(tmp_path, text: str, msg: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(TopologyError, match=msg):
        Topology.from_file(f)


def test_file_errors(tmp_path) -> None:
    with pytest.raises(TopologyError, match="cannot read"):
        Topology.from_file(tmp_path / "missing.toml")
    f = tmp_path / "t.yaml"
    f.write_text("nodes: []")
    with pytest.raises(TopologyError, match=".toml or .json"):
        Topology.from_file(f)
    g = tmp_path / "t.json"
    g.write_text(json.dumps({"nodes": [{"id": 0, "position": [0, 0]}], "path_loss": {"colour": 1}}))
    with pytest.raises(TopologyError, match="unknown path_loss keys"):
        Topology.from_file(g)
