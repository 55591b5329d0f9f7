"""The linear head (partial logits, gradient, Adam, 8-bit Adam) and the feature scaler."""

from __future__ import annotations

import numpy as np
import pytest

from node.ml import adam8bit
from node.ml.head import ShardHead, sum_partial_logits
from node.ml.scaling import FeatureScaler
from protocol.config.model import ModelConfig, lr_at, total_steps

pytestmark = pytest.mark.usefixtures("warm_numba")

CONST = ModelConfig(lr_schedule="constant")


def _head(cfg=CONST, n_classes=3, n_features=37, owns_bias=True, device=0, n_devices=1, **kw):
    return ShardHead(n_classes, n_features, owns_bias, cfg, device, n_devices, **kw)


# ----------------------------------------------------------------------------- forward


def test_partial_logits_one_at_a_time_equals_batch_and_float64(rng):
    head = _head(n_features=101)
    head.b[:] = rng.normal(size=3).astype(np.float32)
    F = rng.normal(size=(9, 101)).astype(np.float32)
    batch = head.partial_logits(F)
    singles = np.stack([head.partial_logits(F[i])[0] for i in range(9)])
    assert batch.tobytes() == singles.tobytes()
    exact = F.astype(np.float64) @ head.W.T.astype(np.float64) + head.b
    np.testing.assert_allclose(batch, exact, rtol=1e-5, atol=1e-5)
    not_owner = _head(n_features=101, owns_bias=False)
    not_owner.W[:] = head.W
    np.testing.assert_allclose(not_owner.partial_logits(F) + head.b, batch, rtol=1e-6, atol=1e-6)


def test_sum_partial_logits_is_left_to_right_in_device_order():
    big, small = np.float32(1e8), np.float32(4.0)
    parts = [np.array([big], np.float32), np.array([small], np.float32), np.array([-big], np.float32),
             np.array([small], np.float32)]
    # float32 spacing at 1e8 is 8: 1e8 + 4 rounds back to 1e8, so the order changes the sum
    expected = ((parts[0] + parts[1]) + parts[2]) + parts[3]
    assert sum_partial_logits(parts).tobytes() == expected.tobytes()
    assert sum_partial_logits(np.stack(parts)).tobytes() == expected.tobytes()
    other_order = ((parts[0] + parts[2]) + parts[1]) + parts[3]
    assert other_order[0] != expected[0]  # the order matters, so it is fixed
    with pytest.raises(ValueError):
        sum_partial_logits([])
    with pytest.raises(ValueError, match="float32"):
        sum_partial_logits([np.zeros(2, np.float32), np.zeros(2, np.float64)])


def test_init_scale_and_determinism():
    cfg = ModelConfig(seed=5, lr_schedule="constant")
    a = _head(cfg, n_classes=4, n_features=5000, device=3, n_devices=20, total_features=20000)
    b = _head(cfg, n_classes=4, n_features=5000, device=3, n_devices=20, total_features=20000)
    c = _head(cfg, n_classes=4, n_features=5000, device=4, n_devices=20, total_features=20000)
    assert a.W.dtype == np.float32 and a.W.tobytes() == b.W.tobytes()
    assert not np.array_equal(a.W, c.W)
    assert abs(a.W.std() - 2 / np.sqrt(20004)) < 0.03 * 2 / np.sqrt(20004)
    assert not a.b.any()


# ----------------------------------------------------------------------------- gradient


def test_accumulate_is_the_softmax_cross_entropy_gradient(rng):
    head = _head()
    F = rng.normal(size=(4, 37)).astype(np.float32)
    Z = rng.normal(size=(4, 3)).astype(np.float32)
    y = np.array([0, 2, 1, 2])
    losses = [head.accumulate(F[i], Z[i], int(y[i])) for i in range(4)]
    p = np.exp(Z - Z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = p.copy()
    g[np.arange(4), y] -= 1
    np.testing.assert_allclose(head.grad_W, g.T @ F, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(head.grad_b, g.sum(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(losses, -np.log(p[np.arange(4), y]), rtol=1e-6)
    assert head.count == 4
    other = _head()
    other.accumulate_batch(F, Z, y)
    assert other.grad_W.tobytes() == head.grad_W.tobytes() and other.count == 4
    with pytest.raises(ValueError, match="label"):
        head.accumulate(F[0], Z[0], 3)


def _numpy_adam(w, grads, cfg):
    w = w.astype(np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        w = w * (1 - cfg.lr * cfg.weight_decay)
        m = cfg.beta1 * m + (1 - cfg.beta1) * g
        v = cfg.beta2 * v + (1 - cfg.beta2) * g * g
        w = w - cfg.lr * (m / (1 - cfg.beta1**t)) / (np.sqrt(v / (1 - cfg.beta2**t)) + cfg.eps)
    return w


@pytest.mark.parametrize("weight_decay", [0.0, 10.0])
def test_adam_step_matches_a_float64_adam(rng, weight_decay):
    cfg = ModelConfig(lr=1e-2, lr_schedule="constant", weight_decay=weight_decay)
    head = _head(cfg)
    w0 = head.W.copy()
    grads = []
    for _ in range(5):
        F = rng.normal(size=(6, 37)).astype(np.float32)
        Z = rng.normal(size=(6, 3)).astype(np.float32)
        y = rng.integers(0, 3, size=6)
        head.accumulate_batch(F, Z, y)
        grads.append(head.grad_W.astype(np.float64) / 6)
        head.step()
        assert head.count == 0 and not head.grad_W.any()
    np.testing.assert_allclose(head.W, _numpy_adam(w0, grads, cfg), rtol=1e-4, atol=1e-6)
    assert np.any(head.b != 0)


def test_empty_batch_step_keeps_weights_but_advances_schedule():
    cfg = ModelConfig(epochs=2, batch_size=10)
    head = _head(cfg, total_steps=total_steps(20, cfg))
    w0 = head.W.copy()
    lr0 = head.current_lr()
    head.step()
    assert head.W.tobytes() == w0.tobytes() and head.t == 1
    assert head.current_lr() < lr0 == cfg.lr


def test_cosine_schedule_needs_total_steps():
    with pytest.raises(ValueError, match="total_steps"):
        _head(ModelConfig(lr_schedule="cosine"))
    cfg = ModelConfig(lr=1.0, lr_schedule="cosine")
    lrs = [lr_at(s, 10, cfg) for s in range(10)]
    assert lrs[0] == 1.0 and all(a > b for a, b in zip(lrs, lrs[1:])) and lrs[-1] > 0
    assert lr_at(3, 10, ModelConfig(lr=0.5, lr_schedule="constant")) == 0.5


# ----------------------------------------------------------------------------- 8-bit Adam


def test_dynamic_tree_maps():
    for signed in (True, False):
        code = adam8bit.dynamic_tree_map(signed)
        assert code.shape == (256,) and code.dtype == np.float32
        assert np.all(np.diff(code) > 0) and code[-1] == 1.0 and 0.0 in code
        assert code[code > 0].min() < 1e-6  # 7 decades of dynamic range
    s = adam8bit.SIGNED_MAP
    assert s[0] < 0 and np.allclose(np.sort(-s[s < 0]), s[(s > 0) & (s < 1)])
    assert adam8bit.UNSIGNED_MAP[0] == 0.0


def test_8bit_adam_tracks_float32_adam(rng):
    cfg32 = ModelConfig(lr=1e-2, lr_schedule="constant")
    cfg8 = ModelConfig(lr=1e-2, lr_schedule="constant", optimizer="adam8bit")
    h32, h8 = _head(cfg32, n_features=300), _head(cfg8, n_features=300)  # 900 weights: 4 blocks
    assert h8.absmax_m_W.shape == (4,) and h8.qm_W.dtype == np.uint8
    for _ in range(20):
        F = rng.normal(size=(8, 300)).astype(np.float32)
        Z = rng.normal(size=(8, 3)).astype(np.float32)
        y = rng.integers(0, 3, size=8)
        h32.accumulate_batch(F, Z, y)
        h8.accumulate_batch(F, Z, y)
        h32.step()
        h8.step()
    moved = np.abs(h32.W - _head(cfg32, n_features=300).W)
    err = np.abs(h8.W - h32.W)
    assert moved.mean() > 0.02
    assert err.mean() < 0.05 * moved.mean()
    # dequantized moments are close to float32 Adam's
    blocks = np.repeat(h8.absmax_m_W, 256)[: h8.W.size]
    m8 = adam8bit.SIGNED_MAP[h8.qm_W] * blocks
    np.testing.assert_allclose(m8, h32.m_W, atol=0.1 * np.abs(h32.m_W).max())


def test_8bit_blocks_are_independent(rng):
    # the quantization of a block depends on that block only: a gradient change in block 1
    # leaves the weights and codes of block 0 untouched
    cfg = ModelConfig(lr=1e-2, lr_schedule="constant", optimizer="adam8bit")
    a, b = _head(cfg, n_classes=2, n_features=256), _head(cfg, n_classes=2, n_features=256)
    F = rng.normal(size=(4, 256)).astype(np.float32)
    Z = rng.normal(size=(4, 2)).astype(np.float32)
    y = np.array([0, 1, 1, 0])
    a.accumulate_batch(F, Z, y)
    b.accumulate_batch(F, Z, y)
    b.grad_W[1] *= 100.0  # row 1 = block 1
    a.step()
    b.step()
    assert a.W[0].tobytes() == b.W[0].tobytes() and a.qm_W[:256].tobytes() == b.qm_W[:256].tobytes()
    assert a.absmax_m_W[1] != b.absmax_m_W[1]


@pytest.mark.parametrize("optimizer", ["adam", "adam8bit"])
def test_checkpoint_roundtrip_resumes_bitwise(rng, optimizer):
    cfg = ModelConfig(optimizer=optimizer, epochs=1, batch_size=4)
    kw = {"total_steps": 6}
    batches = [
        (rng.normal(size=(4, 37)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32),
         rng.integers(0, 3, size=4))
        for _ in range(6)
    ]
    straight = _head(cfg, **kw)
    for F, Z, y in batches:
        straight.accumulate_batch(F, Z, y)
        straight.step()
    first = _head(cfg, **kw)
    for F, Z, y in batches[:3]:
        first.accumulate_batch(F, Z, y)
        first.step()
    first.accumulate(batches[3][0][0], batches[3][1][0], int(batches[3][2][0]))  # mid-batch
    state = first.state_dict()
    resumed = _head(cfg, **kw)
    resumed.load_state_dict(state)
    F, Z, y = batches[3]
    resumed.accumulate_batch(F[1:], Z[1:], y[1:])
    resumed.step()
    for F, Z, y in batches[4:]:
        resumed.accumulate_batch(F, Z, y)
        resumed.step()
    assert resumed.W.tobytes() == straight.W.tobytes()
    assert resumed.b.tobytes() == straight.b.tobytes()
    bad = dict(state, W=state["W"][:, :5])
    with pytest.raises(ValueError, match="checkpoint array W"):
        _head(cfg, **kw).load_state_dict(bad)


# ----------------------------------------------------------------------------- scaler


def test_scaler_standardizes_and_is_column_slice_invariant(rng):
    F = (rng.normal(3.0, 2.0, size=(57, 40))).astype(np.float32)
    F[:, 7] = 0.25  # a constant feature keeps scale 1
    full = FeatureScaler(40)
    for i in range(0, 57, 5):  # in chunks, in stream order
        full.update(F[i : i + 5])
    full.finalize()
    out = full.apply(F)
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-5)
    std = out.std(0)
    np.testing.assert_allclose(np.delete(std, 7), 1, rtol=1e-4)
    assert np.all(out[:, 7] == 0) and full.inv_std[7] == 1
    for lo, hi in [(0, 9), (9, 10), (10, 40)]:
        part = FeatureScaler(hi - lo)
        for i in range(57):  # one sample at a time
            part.update(F[i : i + 1, lo:hi])
        part.finalize()
        assert part.apply(F[:, lo:hi]).tobytes() == np.ascontiguousarray(out[:, lo:hi]).tobytes()


def test_scaler_disabled_is_identity_and_misuse_is_reported(rng):
    F = rng.normal(size=(3, 4)).astype(np.float32)
    off = FeatureScaler(4, enabled=False)
    off.update(F)
    assert off.apply(F).tobytes() == F.tobytes()
    on = FeatureScaler(4)
    with pytest.raises(RuntimeError, match="calibration"):
        on.apply(F)
    with pytest.raises(ValueError, match="float32"):
        on.update(F.astype(np.float64))
