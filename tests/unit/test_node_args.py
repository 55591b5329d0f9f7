"""The node's command line and environment: empty variables mean "off"."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.process import parse_args


def test_empty_directory_variables_turn_the_feature_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROCKNET_CURVE_DIR", "")
    monkeypatch.setenv("ROCKNET_CHECKPOINT_DIR", "")
    options = parse_args(["--name", "node-03"])
    assert options.curve_dir is None and options.checkpoint_dir is None


def test_directory_variables_and_flags_are_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ROCKNET_CURVE_DIR", str(tmp_path / "keys"))
    options = parse_args(["--name", "node-03", "--checkpoint-dir", str(tmp_path / "ck")])
    assert options.curve_dir == tmp_path / "keys" and options.checkpoint_dir == tmp_path / "ck"


def test_the_swarm_task_slot_names_the_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROCKNET_NAME", raising=False)
    monkeypatch.setenv("ROCKNET_TASK_SLOT", "4")
    assert parse_args([]).name == "node03"
