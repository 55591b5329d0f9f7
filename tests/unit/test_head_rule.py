"""``--head auto``, the run's default head (protocol/config/ridge_ram.py ``resolve_head``).

Pinned: the ridge head (with aeon's dilations) exactly when its RAM ledger fits the budget on
every device and nothing SGD-specific was asked for; the budget boundary is the ledger's own
total; explicit ``sgd``/``ridge`` win; and a run's setup applies the rule from its flags.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from coordinator.service.run_setup import RunArgs, SetupError, build_setup
from protocol.config.model import ModelConfig, gram_block_size
from protocol.config.ram_ledger import DEFAULT_BUDGET_BYTES
from protocol.config.ridge_ram import resolve_head, ridge_ledger, ridge_model

SHAPE = {"n_devices": 20, "series_length": 150, "n_classes": 2, "n_train": 50}


def _resolve(requested: str, budget: int = DEFAULT_BUDGET_BYTES, sgd_asked: bool = False,
             cfg: ModelConfig | None = None, **shape: int) -> ModelConfig:
    kw = {**SHAPE, **shape}
    return resolve_head(requested, cfg or ModelConfig(), sgd_asked=sgd_asked, budget_bytes=budget, **kw)


def test_auto_is_the_ridge_head_with_aeon_dilations_where_it_fits() -> None:
    """A small training split: the ridge model (ridge head, aeon's dilations, the rest kept)."""
    cfg = ModelConfig(num_features=4000, seed=3)
    got = _resolve("auto", cfg=cfg)
    assert got == replace(cfg, head="ridge", dilation_style="aeon") == ridge_model(cfg)


def _need(model: ModelConfig) -> int:
    """The most any device's ridge ledger asks of ``model`` at SHAPE."""
    return max(ridge_ledger(model, SHAPE["n_devices"], SHAPE["series_length"], SHAPE["n_classes"],
                            SHAPE["n_train"], device=d).total_bytes for d in range(SHAPE["n_devices"]))


def test_the_budget_boundaries_are_the_ridge_ledgers_totals() -> None:
    """The packet-filling block exactly at its ledger's total; one byte less, blocks of C
    (a smaller Gram block, more rounds); one byte under that ledger, the SGD head."""
    ridge = ridge_model(ModelConfig())
    small = replace(ridge, gram_block=SHAPE["n_classes"])
    need, need_small = _need(ridge), _need(small)
    assert need_small < need
    assert _resolve("auto", budget=need) == ridge
    assert _resolve("auto", budget=need - 1) == small
    assert _resolve("auto", budget=need_small) == small
    assert _resolve("auto", budget=need_small - 1) == ModelConfig()


def test_the_gram_matrix_grows_out_of_the_budget_with_the_training_split() -> None:
    """OSULeaf's shape (n = 200, L = 427, C = 6) does not fit 256 KiB with the ridge head."""
    assert _resolve("auto", n_train=200, series_length=427, n_classes=6) == ModelConfig()
    assert _resolve("auto", n_train=20, series_length=427, n_classes=6).head == "ridge"


def test_an_sgd_flag_or_an_explicit_head_wins() -> None:
    assert _resolve("auto", sgd_asked=True) == ModelConfig()
    assert _resolve("sgd") == ModelConfig()
    # forced: also where it does not fit (the run's setup then refuses it, naming --head sgd)
    assert _resolve("ridge", n_train=200, series_length=427, n_classes=6).head == "ridge"
    with pytest.raises(ValueError, match="head must be one of"):
        _resolve("lasso")


@pytest.mark.parametrize(("args", "head"), [
    (RunArgs(dataset="GunPoint"), "ridge"),
    (RunArgs(dataset="OSULeaf"), "sgd"),  # its Gram matrix does not fit
    (RunArgs(dataset="GunPoint", epochs=3), "sgd"),
    (RunArgs(dataset="GunPoint", batch_size=8), "sgd"),
    (RunArgs(dataset="GunPoint", optimizer="adam8bit"), "sgd"),
    (RunArgs(dataset="GunPoint", recipe="paper"), "sgd"),
    (RunArgs(dataset="GunPoint", profile="firmware"), "sgd"),
    (RunArgs(dataset="GunPoint", mode="private-labels"), "sgd"),
    (RunArgs(dataset="GunPoint", model_overrides={"selection": "decay"}), "sgd"),
    (RunArgs(dataset="GunPoint", head="sgd"), "sgd"),
    (RunArgs(dataset="GunPoint", ram_budget_bytes=20_000), "sgd"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_run_applies_the_rule_from_its_flags(args: RunArgs, head: str) -> None:
    setup = build_setup(args)
    model, schedule = setup.config.model, setup.config.schedule
    assert model.head == head
    assert schedule.gram_block == (gram_block_size(setup.config.n_classes) if head == "ridge" else 0)
    assert (model.dilation_style == "aeon") == (head == "ridge")


def test_a_forced_ridge_head_refuses_what_it_has_not() -> None:
    """--head ridge with the validation rule: refused at setup, with what to change."""
    with pytest.raises(SetupError, match="selection='none'"):
        build_setup(RunArgs(dataset="GunPoint", head="ridge", model_overrides={"selection": "decay"}))
    with pytest.raises(SetupError, match="rocknet mode"):
        build_setup(RunArgs(dataset="GunPoint", head="ridge", mode="data-parallel"))


def test_a_forced_ridge_head_that_does_not_fit_is_refused_before_any_node_starts() -> None:
    """OSULeaf's Gram matrix at 256 KiB: the setup says so, with the bytes and the fix."""
    with pytest.raises(SetupError, match=r"over the budget.*--head sgd"):
        build_setup(RunArgs(dataset="OSULeaf", head="ridge"))
    assert build_setup(RunArgs(dataset="OSULeaf", head="ridge", ram_budget_bytes=400_000)).config.model.head == "ridge"
