"""benchmarks/accuracy.py: the RAM fallback and the pass rule of the accuracy table."""

from __future__ import annotations

import pytest

from benchmarks.accuracy import AccuracyRow, fitting_devices, markdown
from node.mcu.memory import DEFAULT_BUDGET_BYTES, ledger
from protocol.config.model import ModelConfig


def _fits(cfg: ModelConfig, n: int, length: int, c: int) -> bool:
    return ledger(cfg, n, length, c).total_bytes <= DEFAULT_BUDGET_BYTES


@pytest.mark.parametrize("length,n_classes", [(150, 2), (1460, 10), (3000, 10)])
def test_fitting_devices_is_the_smallest_n_that_fits(length, n_classes):
    cfg = ModelConfig()
    n, note = fitting_devices(cfg, 20, length, n_classes)
    assert n >= 20 and _fits(cfg, n, length, n_classes)
    if n > 20:
        assert not _fits(cfg, n - 1, length, n_classes)
        assert "over the budget" in note
    else:
        assert note == ""


def _row(ours: float, ridge: float, n_test: int) -> AccuracyRow:
    return AccuracyRow("X", 10, n_test, 100, 2, 20, ours, ridge, "", 0.0)


def test_table_marks_a_gap_within_2pp_or_one_test_series():
    assert _row(0.90, 0.915, 1000).gap_pp == pytest.approx(-1.5)
    table = markdown([_row(0.90, 0.915, 1000), _row(0.90, 0.93, 1000), _row(0.90, 0.95, 20)])
    lines = [ln for ln in table.splitlines() if ln.startswith("| X")]
    # -1.5 pp passes; -3 pp on 1000 series fails; -5 pp on 20 series is one series (5 pp)
    assert [ln.rsplit("|", 2)[1].strip() for ln in lines] == ["yes", "no", "yes"]
