"""The on-device neural-network baseline: a tanh MLP trained from scratch on one nRF52840.

RockNet's paper compares against neural-network training on a single microcontroller
(AIfES); its simulation of that baseline is an MLP of 10 hidden layers of 17 neurons with
tanh activations, trained with Adam (lr 1e-3). This module is that baseline, re-derived:

* **Model**: input ``L`` (the int8 series scaled to ``[-1, 1]``: ``x / 127``), then
  ``hidden_layers`` dense layers of ``hidden_width`` neurons with tanh, then a dense layer of
  ``C`` logits; softmax cross-entropy (mean over the batch). Glorot-uniform weights
  (``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``, AIfES' default for tanh), zero biases.
* **Training**: Adam (``lr``, beta 0.9 / 0.999, eps 1e-8), one step per batch of
  ``batch_size`` samples (the last, partial batch of an epoch steps too), samples shuffled
  per epoch by ``np.random.default_rng([seed, epoch])``. float32 throughout (numpy; a batch
  at once, which is the same math as the device's one-sample-at-a-time gradient
  accumulation up to float32 summation order).
* **RAM ledger** (float32 = 4 B, MCU bytes; the dataset is in flash as for RockNet):
  with ``P = sum_l (n_{l-1} n_l + n_l)`` parameters over the layer widths
  ``n_0 = L, n_1 .. n_H = width, n_{H+1} = C``:

  ======================  =====================================
  weights and biases      ``4 P``
  gradient accumulators   ``4 P``
  Adam m, v               ``8 P``
  layer outputs           ``4 (H width + C)`` (kept for backprop)
  backprop deltas         ``4 * 2 * max(width, C)`` (two ping-pong buffers)
  input buffer            ``4 L`` (the series as float32)
  ======================  =====================================

  total ``16 P + 4 (H width + C) + 8 max(width, C) + 4 L``.
* **Compute time** on one Cortex-M4F at 64 MHz (:data:`node.mcu.cycles.CPU_HZ`), per
  :class:`NNCycleCosts` (the MAC, accumulate, softmax and Adam costs are the ones
  :mod:`node.mcu.cycles` uses for RockNet's head, so both sides are costed alike):

  - forward: ``L`` input conversions, per layer ``n_in n_out`` MACs and ``n_out`` bias adds,
    a tanh per hidden neuron, the softmax over ``C``;
  - backward: per layer ``n_in n_out`` gradient accumulations and ``n_out`` bias
    accumulations; the deltas go back through every layer but the first
    (``n_in n_out`` MACs and a tanh derivative per input neuron);
  - step: ``adam_per_param`` per parameter, once per batch.
* **Energy**: CPU time at :data:`protocol.air.energy.EnergyConstants` ``cpu_ma`` and
  ``voltage_v`` (one device, no radio).

Run: ``python -m node.offline.nn_baseline --npz FILE --out JSON`` where FILE holds ``x_train``,
``y_train``, ``x_test``, ``y_test`` (int8 series, integer labels) and optionally
``n_classes``; the coordinator (:mod:`coordinator.tools.baseline`) calls it as a subprocess.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from node.mcu.cycles import CPU_HZ, DEFAULT_COSTS
from protocol.air.energy import DEFAULT_CONSTANTS, EnergyConstants

FLOAT32_BYTES = 4
#: The nRF52840's RAM, as the RockNet ledger's default budget.
DEFAULT_BUDGET_BYTES = 256 * 1024


@dataclass(frozen=True)
class MLPConfig:
    """The baseline's architecture and training (defaults: the paper's AIfES setup)."""

    hidden_layers: int = 10
    hidden_width: int = 17
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    batch_size: int = 16
    epochs: int = 1000
    eval_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("hidden_layers", "hidden_width", "batch_size", "eval_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"MLPConfig.{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ValueError(f"MLPConfig.epochs must be an int >= 0, got {self.epochs!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"MLPConfig.lr must be > 0, got {self.lr!r}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1 and self.eps > 0):
            raise ValueError("MLPConfig: need 0 <= beta1, beta2 < 1 and eps > 0")

    def widths(self, series_length: int, n_classes: int) -> list[int]:
        """Layer widths ``[L, width x hidden_layers, C]``."""
        if series_length < 1 or n_classes < 2:
            raise ValueError(f"need series_length >= 1 and n_classes >= 2, got {series_length}, {n_classes}")
        return [series_length] + [self.hidden_width] * self.hidden_layers + [n_classes]


@dataclass(frozen=True)
class NNCycleCosts:
    """Cycles per elementary operation on a Cortex-M4F (single-precision FPU).

    ``mac``, ``accumulate``, ``softmax_per_class``, ``adam_per_param`` and
    ``sample_overhead`` are :data:`node.mcu.cycles.DEFAULT_COSTS`' values (RockNet's head uses
    the same operations); the others are this model's own.
    """

    input_per_value: float = 3.0  # load int8, convert, scale
    mac: float = DEFAULT_COSTS.mac_per_weight  # 2 loads + VMLA
    bias_add: float = 2.0  # load + VADD
    tanh: float = 120.0  # expf (~100) + VDIV + adds
    softmax_per_class: float = DEFAULT_COSTS.softmax_per_class
    output_delta_per_class: float = 3.0  # p - onehot
    accumulate: float = DEFAULT_COSTS.accumulate_per_weight  # 2 loads + VMLA + store
    bias_accumulate: float = 3.0
    tanh_grad: float = 5.0  # (1 - y^2) * delta
    adam_per_param: float = DEFAULT_COSTS.adam_per_param
    sample_overhead: float = DEFAULT_COSTS.sample_overhead


DEFAULT_NN_COSTS = NNCycleCosts()


# ----------------------------------------------------------------------------- ledger


def n_parameters(widths: list[int]) -> int:
    """``P = sum_l (n_{l-1} n_l + n_l)``."""
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


def ram_ledger(widths: list[int]) -> dict[str, int]:
    """Bytes per buffer of the baseline on one device (see the module docstring)."""
    p = n_parameters(widths)
    outputs = sum(widths[1:])
    return {
        "weights and biases": FLOAT32_BYTES * p,
        "gradient accumulators": FLOAT32_BYTES * p,
        "Adam m, v (float32)": 2 * FLOAT32_BYTES * p,
        "layer outputs (for backprop)": FLOAT32_BYTES * outputs,
        "backprop deltas": 2 * FLOAT32_BYTES * max(widths[1:]),
        "input buffer (float32)": FLOAT32_BYTES * widths[0],
    }


# ----------------------------------------------------------------------------- cycles


def cycles(widths: list[int], costs: NNCycleCosts = DEFAULT_NN_COSTS) -> dict[str, float]:
    """Cycles of one sample's forward and backward pass and of one optimizer step."""
    pairs = list(zip(widths[:-1], widths[1:]))
    hidden = sum(widths[1:-1])
    n_classes = widths[-1]
    forward = (
        widths[0] * costs.input_per_value
        + sum(a * b for a, b in pairs) * costs.mac
        + sum(b for _, b in pairs) * costs.bias_add
        + hidden * costs.tanh
        + n_classes * costs.softmax_per_class
    )
    backward = (
        n_classes * costs.output_delta_per_class
        + sum(a * b for a, b in pairs) * costs.accumulate
        + sum(b for _, b in pairs) * costs.bias_accumulate
        + sum(a * b for a, b in pairs[1:]) * costs.mac
        + sum(a for a, _ in pairs[1:]) * costs.tanh_grad
    )
    return {
        "forward_per_sample": forward + costs.sample_overhead,
        "backward_per_sample": backward,
        "step": n_parameters(widths) * costs.adam_per_param,
    }


def timing(
    widths: list[int],
    n_train: int,
    cfg: MLPConfig,
    costs: NNCycleCosts = DEFAULT_NN_COSTS,
    energy: EnergyConstants = DEFAULT_CONSTANTS,
) -> dict[str, float]:
    """Modeled MCU seconds and mJ: per training sample (step amortized), per inference, total."""
    c = cycles(widths, costs)
    batch = max(1, min(cfg.batch_size, n_train))
    steps_per_epoch = math.ceil(n_train / batch)
    train_sample_cycles = c["forward_per_sample"] + c["backward_per_sample"] + c["step"] * steps_per_epoch / n_train
    total_cycles = cfg.epochs * (
        n_train * (c["forward_per_sample"] + c["backward_per_sample"]) + steps_per_epoch * c["step"]
    )
    mj_per_s = energy.voltage_v * energy.cpu_ma  # V x mA = mW = mJ/s
    train_sample_s = train_sample_cycles / CPU_HZ
    inference_s = c["forward_per_sample"] / CPU_HZ
    total_s = total_cycles / CPU_HZ
    return {
        "train_sample_s": train_sample_s,
        "inference_sample_s": inference_s,
        "step_s": c["step"] / CPU_HZ,
        "training_total_s": total_s,
        "train_sample_mj": train_sample_s * mj_per_s,
        "inference_sample_mj": inference_s * mj_per_s,
        "training_total_mj": total_s * mj_per_s,
    }


# ----------------------------------------------------------------------------- training


@dataclass
class MLP:
    """Weights ``W[l]`` (float32 [n_out, n_in]) and biases ``b[l]`` with Adam's state."""

    W: list[np.ndarray]
    b: list[np.ndarray]

    @classmethod
    def init(cls, widths: list[int], seed: int) -> MLP:
        rng = np.random.default_rng([seed, 7])
        ws, bs = [], []
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            a = math.sqrt(6.0 / (n_in + n_out))
            ws.append(rng.uniform(-a, a, size=(n_out, n_in)).astype(np.float32))
            bs.append(np.zeros(n_out, dtype=np.float32))
        return cls(ws, bs)

    def params(self) -> list[np.ndarray]:
        return [*self.W, *self.b]

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """Activations of every layer for a batch ``x`` (float32 [B, L]); the last are logits."""
        acts = [x]
        last = len(self.W) - 1
        for i, (w, b) in enumerate(zip(self.W, self.b)):
            z = acts[-1] @ w.T + b
            acts.append(z if i == last else np.tanh(z))
        return acts

    def gradients(self, acts: list[np.ndarray], y: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], float, int]:
        """Mean cross-entropy gradients; returns ``(dW, db, loss_sum, correct)``."""
        logits = acts[-1].astype(np.float64)
        z = logits - logits.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        n = len(y)
        loss_sum = float(-log_p[np.arange(n), y].sum())
        correct = int((np.argmax(logits, axis=1) == y).sum())
        delta = np.exp(log_p)
        delta[np.arange(n), y] -= 1.0
        delta = (delta / n).astype(np.float32)
        dW: list[np.ndarray] = [np.empty(0, np.float32)] * len(self.W)
        db: list[np.ndarray] = [np.empty(0, np.float32)] * len(self.W)
        for i in range(len(self.W) - 1, -1, -1):
            dW[i] = delta.T @ acts[i]
            db[i] = delta.sum(axis=0)
            if i > 0:
                delta = (delta @ self.W[i]) * (1.0 - acts[i] * acts[i])
        return dW, db, loss_sum, correct


class Adam:
    """Adam with bias correction, float32 moments."""

    def __init__(self, params: list[np.ndarray], cfg: MLPConfig) -> None:
        self.cfg = cfg
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        c = self.cfg
        self.t += 1
        lr_t = c.lr * math.sqrt(1.0 - c.beta2**self.t) / (1.0 - c.beta1**self.t)
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= np.float32(c.beta1)
            m += np.float32(1.0 - c.beta1) * g
            v *= np.float32(c.beta2)
            v += np.float32(1.0 - c.beta2) * g * g
            p -= np.float32(lr_t) * m / (np.sqrt(v) + np.float32(c.eps))


def scale_inputs(x_int8: np.ndarray) -> np.ndarray:
    """int8 series -> float32 in ``[-1, 1]`` (``x / 127``, -128 clipped to -1)."""
    return np.clip(np.asarray(x_int8, dtype=np.float32) / np.float32(127.0), -1.0, 1.0)


def evaluate(model: MLP, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(accuracy, mean cross-entropy)`` of ``model`` on ``x`` (float32) and labels ``y``."""
    if len(y) == 0:
        return float("nan"), float("nan")
    logits = model.forward(x)[-1].astype(np.float64)
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = float(-log_p[np.arange(len(y)), y].mean())
    return float((np.argmax(logits, axis=1) == y).mean()), loss


def train(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    cfg: MLPConfig = MLPConfig(),
) -> dict[str, Any]:
    """Train the baseline and return its accuracy history, ledger and modeled time/energy.

    ``x_*`` are int8 series [n, L]; ``y_*`` class indices ``0 .. n_classes - 1``.
    """
    x_tr, x_te = scale_inputs(x_train), scale_inputs(x_test)
    y_tr = np.asarray(y_train, dtype=np.int64)
    y_te = np.asarray(y_test, dtype=np.int64)
    if len(y_tr) == 0:
        raise ValueError("the baseline needs at least one training sample")
    if y_tr.max(initial=0) >= n_classes or (len(y_te) and y_te.max() >= n_classes):
        raise ValueError(f"labels must be < n_classes = {n_classes}")
    widths = cfg.widths(int(x_tr.shape[1]), n_classes)
    model = MLP.init(widths, cfg.seed)
    params = model.params()
    opt = Adam(params, cfg)
    batch = max(1, min(cfg.batch_size, len(y_tr)))
    history: list[dict[str, Any]] = []
    started = time.perf_counter()
    for epoch in range(cfg.epochs):
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(y_tr))
        loss_sum, correct = 0.0, 0
        for a in range(0, len(order), batch):
            idx = order[a : a + batch]
            acts = model.forward(x_tr[idx])
            dW, db, ls, cr = model.gradients(acts, y_tr[idx])
            loss_sum += ls
            correct += cr
            opt.step(params, [*dW, *db])
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            test_acc, test_loss = evaluate(model, x_te, y_te)
            history.append({
                "epoch": epoch,
                "train_accuracy": correct / len(y_tr),
                "train_loss": loss_sum / len(y_tr),
                "test_accuracy": test_acc,
                "test_loss": test_loss,
            })
    wall_s = time.perf_counter() - started
    final_acc, final_loss = evaluate(model, x_te, y_te)
    ledger = ram_ledger(widths)
    total = sum(ledger.values())
    accs = [h["test_accuracy"] for h in history if not math.isnan(h["test_accuracy"])]
    return {
        "model": "mlp-tanh",
        "widths": widths,
        "n_parameters": n_parameters(widths),
        "config": asdict(cfg),
        "n_train": int(len(y_tr)),
        "n_test": int(len(y_te)),
        "n_classes": int(n_classes),
        "test_accuracy": final_acc,
        "test_loss": final_loss,
        "test_accuracy_best_epoch": max(accs) if accs else None,
        "history": history,
        "ram": {"entries": ledger, "total_bytes": total, "budget_bytes": DEFAULT_BUDGET_BYTES,
                "fits": total <= DEFAULT_BUDGET_BYTES},
        "cycles": cycles(widths),
        "cycle_costs": asdict(DEFAULT_NN_COSTS),
        "cpu_hz": CPU_HZ,
        "timing": timing(widths, len(y_tr), cfg),
        "wall_s": wall_s,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m node.offline.nn_baseline", description=__doc__.split("\n")[0])
    ap.add_argument("--npz", type=Path, required=True, help="x_train, y_train, x_test, y_test (int8 series)")
    ap.add_argument("--out", type=Path, required=True, help="JSON result file")
    d = MLPConfig()
    ap.add_argument("--epochs", type=int, default=d.epochs)
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--hidden-layers", type=int, default=d.hidden_layers)
    ap.add_argument("--hidden-width", type=int, default=d.hidden_width)
    ap.add_argument("--eval-every", type=int, default=d.eval_every)
    ap.add_argument("--seed", type=int, default=d.seed)
    a = ap.parse_args(argv)
    try:
        cfg = MLPConfig(hidden_layers=a.hidden_layers, hidden_width=a.hidden_width, lr=a.lr,
                        batch_size=a.batch_size, epochs=a.epochs, eval_every=a.eval_every, seed=a.seed)
        with np.load(a.npz) as data:
            x_train, y_train = data["x_train"], data["y_train"]
            x_test, y_test = data["x_test"], data["y_test"]
            n_classes = int(data["n_classes"]) if "n_classes" in data else int(
                max(y_train.max(initial=0), y_test.max(initial=0))) + 1
        result = train(x_train, y_train, x_test, y_test, n_classes, cfg)
    except (OSError, KeyError, ValueError) as exc:
        print(f"nn_baseline: {exc}", file=sys.stderr)
        return 2
    a.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
