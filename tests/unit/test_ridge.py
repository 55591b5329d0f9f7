"""The ridge head (``ModelConfig(head="ridge")``): its math, its head, its stream, its RAM.

Pinned here: :func:`node.ml.ridge.solve_ridge` is scikit-learn's ``RidgeClassifierCV``
(same alpha grid, same leave-one-out errors, same predictions) on the summed float32 Gram
triangle; the leave-one-out rule picks the ends of the grid where theory says it must; the
partial Gram rows and the dual weights are bitwise independent of batching and sum over
column shards to ``X X^T`` and ``A^T X``; a :class:`~node.ml.ridge_head.RidgeHead`
checkpoint round-trips; the stream lays out its Gram passes, its one step and its weight
pass; the RAM ledger is the Gram matrix's, not Adam's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import RidgeClassifierCV
from sklearn.preprocessing import StandardScaler

from node.ml.head import ShardHead, sum_partial_logits
from node.ml.ridge import (
    RIDGE_ALPHAS,
    accumulate_dual_weights,
    gram_rows,
    gram_valid,
    one_vs_rest,
    solve_ridge,
)
from node.ml.ridge_head import RidgeHead
from protocol.config.model import ModelConfig, gram_block_size, schedule_config
from protocol.config.ram_ledger import RamBudgetExceeded, ledger
from protocol.config.ridge_ram import check_ridge, ridge_ledger
from protocol.stream.schedule import KIND_CALIB, KIND_EVAL, KIND_TRAIN, build_stream, contiguous_split

pytestmark = pytest.mark.usefixtures("warm_numba")

RIDGE = ModelConfig(head="ridge")


def _gram32(X: np.ndarray) -> np.ndarray:
    """The float32 lower triangle of ``X X^T`` (what the devices' summed rows hold)."""
    X32 = X.astype(np.float32)
    return np.tril(X32 @ X32.T).astype(np.float32)


def _labels(rng: np.random.Generator, n: int, n_classes: int) -> np.ndarray:
    """Balanced labels in a random order (every class present)."""
    return rng.permutation(np.arange(n) % n_classes)


# ----------------------------------------------------------------------------- the solve


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(10, 60), n_features=st.integers(200, 400),
       n_classes=st.integers(2, 4), signal=st.floats(0.0, 1.0))
def test_solve_ridge_is_sklearns_ridge_classifier_cv(seed: int, n: int, n_features: int, n_classes: int,
                                                     signal: float) -> None:
    """Same alpha, same leave-one-out MSE per alpha, same decision values and predictions as
    StandardScaler + RidgeClassifierCV(alphas=RIDGE_ALPHAS) (its Gram/eigen mode, n < F)."""
    rng = np.random.default_rng(seed)
    y = _labels(rng, n, n_classes)
    n_test = 20
    Z = rng.normal(size=(n + n_test, n_features)) * rng.uniform(0.5, 3.0, n_features) + rng.normal(size=n_features)
    Z[:n] += signal * np.eye(n_classes)[y] @ rng.normal(size=(n_classes, n_features))
    scaler = StandardScaler().fit(Z[:n])
    X, X_test = scaler.transform(Z[:n]), scaler.transform(Z[n:])
    clf = RidgeClassifierCV(alphas=np.array(RIDGE_ALPHAS), store_cv_results=True).fit(X, y)

    sol = solve_ridge(_gram32(X), y, n_classes)

    # leave-one-out: sklearn keeps one target column for C = 2 (ours are two negations of
    # each other, so the squared residual per sample is the same); average samples, targets
    sk_mse = clf.cv_results_.reshape(n, -1, len(RIDGE_ALPHAS)).mean(axis=(0, 1))
    np.testing.assert_allclose(sol.loo_mse, sk_mse, rtol=1e-5)
    sk_index = RIDGE_ALPHAS.index(float(clf.alpha_))
    # the same alpha, unless two alphas tie to float precision (then either is the minimum)
    assert sk_index == sol.alpha_index or math.isclose(sol.loo_mse[sk_index], sol.loo_mse[sol.alpha_index],
                                                       rel_tol=1e-6)
    if sk_index == sol.alpha_index:
        z = X_test @ (sol.dual.T @ X).T + sol.intercept
        sk_z = clf.decision_function(X_test)
        if n_classes == 2:
            sk_z = np.stack([-sk_z, sk_z], axis=1)  # column 1 is sklearn's; column 0 its negation
        np.testing.assert_allclose(z, sk_z, rtol=1e-4, atol=1e-4)
        top2 = np.sort(sk_z, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 1e-3  # no near-tie that float32 could flip
        assert np.array_equal(z.argmax(axis=1)[clear], clf.predict(X_test)[clear])
    assert sol.intercept.tobytes() == one_vs_rest(y, n_classes).mean(axis=0).tobytes()


@pytest.mark.parametrize("seed", range(5))
def test_pure_noise_labels_pick_the_strongest_alpha(seed: int) -> None:
    """Labels independent of the features: the best predictor is the class mean, so the
    leave-one-out MSE falls with alpha and the rule picks the largest alpha of the grid."""
    rng = np.random.default_rng(seed)
    n, n_features, n_classes = 120, 240, 3
    X = rng.normal(size=(n, n_features))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    sol = solve_ridge(_gram32(X), _labels(rng, n, n_classes), n_classes)
    assert sol.alpha_index == len(RIDGE_ALPHAS) - 1 and sol.alpha == max(RIDGE_ALPHAS)
    assert sol.loo_mse[-1] < sol.loo_mse[0]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_a_noiseless_linear_task_picks_the_weakest_alpha(seed: int, n_classes: int) -> None:
    """The targets are (up to 1% noise) five copies of each one-vs-rest column among 200
    features, n = 40 << F: the 180 noise features already act as a ridge penalty, every added
    alpha only biases, so the rule picks the smallest alpha and its MSE is far below the
    largest's."""
    rng = np.random.default_rng(seed)
    n, n_features, copies = 40, 200, 5
    y = _labels(rng, n, n_classes)
    X = rng.normal(size=(n, n_features))
    X[:, :n_classes * copies] = (np.repeat(one_vs_rest(y, n_classes), copies, axis=1)
                                 + 0.01 * rng.normal(size=(n, n_classes * copies)))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    sol = solve_ridge(_gram32(X), y, n_classes)
    assert sol.alpha_index == 0 and sol.alpha == min(RIDGE_ALPHAS)
    assert sol.loo_mse[-1] > 2.0 * sol.loo_mse[0]


def test_solve_ridge_reads_the_lower_triangle_only_and_checks_its_inputs(rng: np.random.Generator) -> None:
    """Whatever the upper triangle holds, the solution is bitwise the same; bad shapes and
    alphas are refused."""
    X = rng.normal(size=(15, 50))
    y = _labels(rng, 15, 3)
    K = _gram32(X)
    junk = K + np.triu(rng.normal(size=K.shape).astype(np.float32), 1)
    a, b = solve_ridge(K, y, 3), solve_ridge(junk, y, 3)
    assert a.dual.tobytes() == b.dual.tobytes() and a.loo_mse.tobytes() == b.loo_mse.tobytes()
    with pytest.raises(ValueError, match="gram_lower"):
        solve_ridge(K[:, :-1], y, 3)
    with pytest.raises(ValueError, match="labels"):
        solve_ridge(K, y[:-1], 3)
    with pytest.raises(ValueError, match="alphas"):
        solve_ridge(K, y, 3, alphas=(1.0, 0.0))


# ----------------------------------------------------------------------------- Gram rows


def test_gram_valid_pairs_each_sample_with_the_block_members_up_to_itself() -> None:
    """Sample i of the pass starting at s has min(i - s + 1, B) real entries."""
    assert gram_valid(np.arange(6, 14), 6, 3).tolist() == [1, 2, 3, 3, 3, 3, 3, 3]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), block_size=st.integers(2, 5), n_features=st.integers(1, 70),
       m=st.integers(1, 12), start=st.integers(0, 4))
def test_gram_rows_are_zero_past_valid_and_independent_of_batching(seed: int, block_size: int, n_features: int,
                                                                   m: int, start: int) -> None:
    """Entries past ``valid`` are exactly 0; a row computed alone is bitwise the row computed
    with all the others; the real entries are the float32 dot products."""
    rng = np.random.default_rng(seed)
    block = rng.normal(size=(block_size, n_features)).astype(np.float32)
    feats = rng.normal(size=(m, n_features)).astype(np.float32)
    valid = gram_valid(np.arange(start, start + m), start, block_size)
    rows = gram_rows(block, feats, valid)
    assert rows.dtype == np.float32 and rows.shape == (m, block_size)
    past = np.arange(block_size)[None, :] >= valid[:, None]
    assert np.all(rows[past] == 0.0)
    singles = np.concatenate([gram_rows(block, feats[i:i + 1], valid[i:i + 1]) for i in range(m)])
    assert singles.tobytes() == rows.tobytes()
    exact = feats.astype(np.float64) @ block.T.astype(np.float64)
    np.testing.assert_allclose(rows[~past], exact[~past], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("n_classes,n_shards", [(2, 3), (3, 4), (4, 1)])
def test_summed_partial_gram_rows_over_column_shards_give_the_gram_matrix(
        rng: np.random.Generator, n_classes: int, n_shards: int) -> None:
    """The Gram passes of the stream on column-sharded RidgeHeads: every pass's partial rows
    summed in shard order fill the lower triangle of ``X X^T`` (float32 tolerance), and
    nothing above it (it stays NaN, "not known")."""
    n, n_features = 17, 230
    X = rng.normal(size=(n, n_features)).astype(np.float32)
    y = _labels(rng, n, n_classes)
    cols = contiguous_split(n_features, n_shards)
    heads = [RidgeHead(n_classes, b - a, s == 0, RIDGE, s, n_shards, n_train=n, total_features=n_features)
             for s, (a, b) in enumerate(cols)]
    n_passes = -(-n // n_classes)
    for p in range(n_passes):
        samples = np.arange(p * n_classes, n)
        parts = [h.gram_partial_rows(X[samples, a:b], samples, p) for h, (a, b) in zip(heads, cols)]
        totals = sum_partial_logits(parts)
        for row, i in enumerate(samples.tolist()):
            heads[0].set_gram_row(i, p, totals[row], int(y[i]))
    gram = heads[0].gram
    exact = X.astype(np.float64) @ X.T.astype(np.float64)
    np.testing.assert_allclose(gram[np.tril_indices(n)], exact[np.tril_indices(n)], rtol=1e-5, atol=1e-3)
    assert np.isnan(gram[np.triu_indices(n, 1)]).all()  # never written: not known
    assert heads[0].labels.tolist() == y.tolist()


# ----------------------------------------------------------------------------- dual weights


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 30), n_features=st.integers(1, 90),
       n_classes=st.integers(2, 5), cuts=st.lists(st.integers(0, 30), max_size=4))
def test_dual_weights_are_bitwise_independent_of_batching(seed: int, m: int, n_features: int, n_classes: int,
                                                          cuts: list[int]) -> None:
    """``W += A[i] x_i`` in row order: one call, one row at a time and any split into
    consecutive chunks give the same bytes, and ``A^T X`` within float32 tolerance."""
    rng = np.random.default_rng(seed)
    dual = rng.normal(size=(m, n_classes)).astype(np.float32)
    feats = rng.normal(size=(m, n_features)).astype(np.float32)
    whole = np.zeros((n_classes, n_features), dtype=np.float32)
    accumulate_dual_weights(whole, dual, feats)
    singles = np.zeros_like(whole)
    for i in range(m):
        accumulate_dual_weights(singles, dual[i:i + 1], feats[i:i + 1])
    chunked = np.zeros_like(whole)
    edges = [0, *sorted(min(c, m) for c in cuts), m]
    for a, b in zip(edges[:-1], edges[1:]):
        if b > a:
            accumulate_dual_weights(chunked, dual[a:b], feats[a:b])
    assert singles.tobytes() == whole.tobytes() and chunked.tobytes() == whole.tobytes()
    exact = dual.T.astype(np.float64) @ feats.astype(np.float64)
    np.testing.assert_allclose(whole, exact, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- RidgeHead


def _trained_head(rng: np.random.Generator, n: int = 11, n_features: int = 29, n_classes: int = 3) -> RidgeHead:
    """A one-device head taken through its Gram passes, the solve and the weight pass."""
    X = rng.normal(size=(n, n_features)).astype(np.float32)
    y = _labels(rng, n, n_classes)
    head = RidgeHead(n_classes, n_features, True, RIDGE, 0, 1, n_train=n)
    for p in range(-(-n // n_classes)):
        samples = np.arange(p * n_classes, n)
        rows = head.gram_partial_rows(X[samples], samples, p)
        for row, i in enumerate(samples.tolist()):
            head.set_gram_row(i, p, rows[row], int(y[i]))
    head.step()
    head.add_weights(X, np.arange(n))
    return head


def test_ridge_head_is_formed_by_its_passes_not_by_steps(rng: np.random.Generator) -> None:
    """W starts at 0; one step is the solve (b = mean of the one-vs-rest targets); the weight
    pass gives W = A^T X; a non-ridge config is refused."""
    fresh = RidgeHead(3, 29, True, RIDGE, 0, 1, n_train=11)
    assert not fresh.W.any() and not fresh.solved and fresh.alpha is None
    head = _trained_head(rng)
    assert head.solved and head.t == 1 and head.alpha in RIDGE_ALPHAS
    assert head.b.tobytes() == one_vs_rest(head.labels, 3).mean(axis=0).astype(np.float32).tobytes()
    with pytest.raises(ValueError, match="head='ridge'"):
        RidgeHead(3, 29, True, ModelConfig(), 0, 1, n_train=11)


def test_ridge_head_state_dict_round_trips(rng: np.random.Generator) -> None:
    """A fresh head loaded from a checkpoint holds the same bytes and predicts the same
    logits; the checkpoint is a copy (changing it later does not change the head)."""
    head = _trained_head(rng)
    state = head.state_dict()
    other = RidgeHead(3, 29, True, RIDGE, 0, 1, n_train=11)
    other.load_state_dict(state)
    for name in ("W", "b", "block", "gram", "labels", "dual"):
        assert getattr(other, name).tobytes() == getattr(head, name).tobytes()
    assert (other.t, other.block_pass) == (head.t, head.block_pass)
    feats = rng.normal(size=(4, 29)).astype(np.float32)
    assert other.partial_logits(feats).tobytes() == head.partial_logits(feats).tobytes()
    state["W"][...] = 7.0
    assert other.W.tobytes() == head.W.tobytes()


def test_ridge_head_refuses_a_foreign_checkpoint_without_touching_itself(rng: np.random.Generator) -> None:
    """Another n_train, an SGD head's checkpoint or a wrong-shaped array raise ValueError and
    leave the head as it was."""
    head = _trained_head(rng)
    before = {name: getattr(head, name).tobytes() for name in ("W", "b", "gram", "dual")}
    with pytest.raises(ValueError, match="n_train"):
        RidgeHead(3, 29, True, RIDGE, 0, 1, n_train=12).load_state_dict(head.state_dict())
    sgd = ShardHead(3, 29, True, ModelConfig(), 0, 1, total_steps=1)
    with pytest.raises(ValueError, match="head"):
        head.load_state_dict(sgd.state_dict())
    bad = head.state_dict()
    bad["W"] = np.full((3, 29), 5.0, dtype=np.float32)
    bad["dual"] = np.zeros((11, 2), dtype=np.float32)  # the last array checked is wrong
    with pytest.raises(ValueError, match="dual"):
        head.load_state_dict(bad)
    assert {name: getattr(head, name).tobytes() for name in before} == before


# ----------------------------------------------------------------------------- the stream


@settings(max_examples=30, deadline=None)
@given(n_train=st.integers(1, 90), n_test=st.integers(0, 15), n_devices=st.integers(1, 6),
       n_classes=st.integers(2, 30))
def test_ridge_stream_lays_out_gram_passes_one_step_and_a_weight_pass(n_train: int, n_test: int,
                                                                     n_devices: int, n_classes: int) -> None:
    """Calibration pass, ceil(n / B) Gram passes (B = max(C, 25): one packet of floats; pass
    p: samples pB .. n-1 in order, in batches of C), one step on the last Gram item, the weight
    pass (every training sample once, epoch = number of passes), one test pass; owners are
    the contiguous split."""
    stream = build_stream(schedule_config(RIDGE, n_train, n_test, n_devices, n_classes=n_classes))
    block = max(n_classes, 25)
    assert stream.config.gram_block == block == gram_block_size(n_classes)
    n_passes = math.ceil(n_train / block)
    assert stream.ridge and stream.config.gram_passes == n_passes
    kind, epoch, sample = stream.kind, stream.epoch, stream.sample
    calib = np.flatnonzero((kind == KIND_CALIB) & (epoch < 0))
    train = np.flatnonzero(kind == KIND_TRAIN)
    weights = np.flatnonzero(stream.weight_items)
    test = np.flatnonzero(kind == KIND_EVAL)
    # the order: calibration, Gram passes, weight pass, test pass (nothing else)
    assert np.array_equal(np.concatenate([calib, train, weights, test]), np.arange(stream.n_items))
    assert sample[calib].tolist() == list(range(n_train))
    assert sorted(set(epoch[train].tolist())) == list(range(n_passes))
    assert stream.config.batch_size == n_classes  # Gram items per exchange
    for p in range(n_passes):
        in_pass = train[epoch[train] == p]
        assert sample[in_pass].tolist() == list(range(p * block, n_train))
        # the pass in batches of C from its first item (the last one may be shorter)
        first, stop = int(in_pass[0]), int(in_pass[-1]) + 1
        cuts = list(range(first, stop, n_classes)) + [stop]
        assert [bt for bt in stream.batches if first <= bt[0] < stop] == list(zip(cuts[:-1], cuts[1:]))
    assert stream.steps == 1 and bool(stream.step_after[train[-1]])
    assert sample[weights].tolist() == list(range(n_train)) and np.all(epoch[weights] == n_passes)
    assert sample[test].tolist() == list(range(n_test)) and not stream.validation.any()
    for item in range(stream.n_items):
        split = n_test if kind[item] == KIND_EVAL else n_train
        a, b = contiguous_split(split, n_devices)[stream.owner[item]]
        assert a <= sample[item] < b


def test_the_ridge_head_refuses_what_it_cannot_do() -> None:
    """A validation rule, no feature scaling, no class count, a non-rocknet mode: each is a
    ValueError that says why."""
    with pytest.raises(ValueError, match="selection='none'"):
        ModelConfig(head="ridge", selection="decay")
    with pytest.raises(ValueError, match="feature_scaling=True"):
        ModelConfig(head="ridge", feature_scaling=False)
    with pytest.raises(ValueError, match="n_classes"):
        schedule_config(RIDGE, 20, 5, 3)
    with pytest.raises(ValueError, match="n_classes"):
        schedule_config(RIDGE, 20, 5, 3, n_classes=1)
    config = schedule_config(RIDGE, 20, 5, 3, n_classes=2)
    with pytest.raises(ValueError, match="rocknet mode only"):
        build_stream(config, mode="private-labels")
    assert schedule_config(ModelConfig(), 20, 5, 3, n_classes=2).gram_block == 0  # SGD: no Gram passes


# ----------------------------------------------------------------------------- RAM


RIDGE_AEON = ModelConfig(head="ridge", dilation_style="aeon", num_features=1000)


def test_ridge_ledger_is_the_gram_matrix_not_adam() -> None:
    """No gradient or Adam buffers; the Gram triangle (float32) and its Cholesky factor
    (float64) are n(n+1)/2 entries each, so the total grows quadratically in n_train: its
    second difference is 12 B once the factor covers the scaler's accumulators."""
    led = ridge_ledger(RIDGE_AEON, 3, 150, 2, 50)
    assert not [k for k in led.entries if "Adam" in k or "gradient" in k]
    assert led.entries["Gram matrix (float32 triangle)"] == 4 * 50 * 51 // 2
    assert led.entries["Cholesky factor (float64 triangle)"] == 8 * 50 * 51 // 2
    assert led.total_bytes == sum(led.entries.values())
    sgd = ledger(ModelConfig(dilation_style="aeon", num_features=1000), 3, 150, 2)
    assert led.n_features == sgd.n_features and led.entries["weights W"] == sgd.entries["weights W"]
    totals = [ridge_ledger(RIDGE_AEON, 3, 150, 2, n).total_bytes for n in range(200, 206)]
    assert np.diff(totals, 2).tolist() == [12] * 4


def test_check_ridge_names_the_sgd_head_when_the_gram_matrix_does_not_fit() -> None:
    """300 training samples take 12 B x 45,150 of Gram triangles, over 256 KiB: the error
    names --head sgd; 20 samples fit."""
    budget = 256 * 1024
    check_ridge(ridge_ledger(RIDGE_AEON, 3, 150, 2, 20), 20, budget)  # no error
    with pytest.raises(RamBudgetExceeded, match="--head sgd"):
        check_ridge(ridge_ledger(RIDGE_AEON, 3, 150, 2, 300), 300, budget)


# ----------------------------------------------------------------------------- the block size


def test_the_gram_block_changes_the_rounds_not_the_model() -> None:
    """Every Gram entry is the same dot product whatever block carries it, so blocks of C,
    of 7 and the packet-filling default give bitwise the same weights, in fewer rounds."""
    from coordinator.service.datasets import load_dataset, quantize_int8
    from node.offline.reference import train_reference

    ds = load_dataset("UnitTest")
    x_train, x_test = quantize_int8(ds.x_train, ds.x_test)
    runs, rounds = [], []
    for block in (ds.n_classes, 7, 0):
        cfg = ModelConfig(head="ridge", dilation_style="aeon", num_features=1000, gram_block=block)
        runs.append(train_reference(x_train, ds.y_train, x_test, ds.y_test, ds.n_classes, cfg, 3))
        rounds.append(build_stream(schedule_config(cfg, len(ds.y_train), len(ds.y_test), 3,
                                                   n_classes=ds.n_classes)).n_rounds)
    assert rounds[0] > rounds[1] > rounds[2]
    for other in runs[1:]:
        assert all(a.tobytes() == b.tobytes() for a, b in zip(runs[0].weights, other.weights))
        assert runs[0].bias.tobytes() == other.bias.tobytes()


def test_a_gram_block_is_the_ridge_head_s_and_at_least_c() -> None:
    with pytest.raises(ValueError, match="gram_block"):
        ModelConfig(gram_block=3)  # the SGD head has no Gram block
    with pytest.raises(ValueError, match="under the class count"):
        schedule_config(ModelConfig(head="ridge", gram_block=2), 20, 5, 3, n_classes=3)
    assert gram_block_size(3) == 25 and gram_block_size(30) == 30 and gram_block_size(3, 5) == 5
