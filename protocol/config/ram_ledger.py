"""RAM ledger: every buffer a device holds, in MCU bytes (nRF52840: 256 KiB RAM, 1 MB flash).

Assumptions (the numbers an nRF52840 build of our kernels would need):

* **Flash, not RAM**: the device's dataset shard (its training and test series, labels) and
  the training series its biases are fitted on are in flash, as the paper's code generator
  embeds them in the firmware. Code and constant tables in flash too. Not counted: the
  stack, the radio driver's own state, the C runtime.
* float32 = 4 B, int32 = 4 B, int8/uint8 = 1 B; no padding between buffers.
* One sample is in flight on a device at a time: its int8 series (``L`` B), its feature
  vector (``F_i`` float32) and the partial logits of all devices (``N x C`` float32). In the
  pipeline the device accumulates the gradient of sample ``t`` before it computes the
  features of ``t + 1``, so one feature buffer suffices.
* Convolution scratch, as :mod:`node.ml.minirocket` computes it: 9 shifted copies of the
  series plus the ``alpha`` sum and one kernel output, int32, ``11 L`` values.
* The scaler keeps ``mean`` and ``1/std`` (float32 per feature). Its calibration
  accumulators (float64 mean and M2, 16 B per feature) live only during the calibration
  pass, when the gradient accumulators are unused: they overlay them, and only what does
  not fit there is counted extra.
* Radio (Mixer): the round's ``G`` packets are kept for decoding, each with its PHY payload
  ``4 + 2 ceil(G/8) + 100`` bytes, plus one transmit buffer. ``G`` = 1 initiator packet +
  the series' packets + every device's logits packets (:mod:`protocol.stream.schedule`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from protocol.config.model import (ADAM8BIT_BLOCK, ModelConfig, fit_dilations, kernels_of_units, max_devices,
                                   n_features_total,
                                   unit_offsets, unit_ranges)
from protocol.stream.schedule import PACKET_PAYLOAD_BYTES, SERIES_HEADER_BYTES, packets_for

#: The nRF52840's RAM.
DEFAULT_BUDGET_BYTES = 256 * 1024
FLOAT32_BYTES = 4
INT32_BYTES = 4


def _n_blocks(n: int) -> int:
    """8-bit Adam's blocks of :data:`~protocol.config.model.ADAM8BIT_BLOCK` entries covering ``n``."""
    return (n + ADAM8BIT_BLOCK - 1) // ADAM8BIT_BLOCK


class RamBudgetExceeded(ValueError):
    """A configuration whose per-device RAM does not fit the budget."""


@dataclass(frozen=True)
class Ledger:
    """Bytes per buffer of one device (``entries``) and their sum."""

    device: int
    n_devices: int
    n_kernels: int
    n_features: int
    entries: dict[str, int]
    total_bytes: int

    def lines(self) -> list[str]:
        """Human-readable ``name: bytes`` lines, largest first."""
        width = max(len(k) for k in self.entries)
        rows = sorted(self.entries.items(), key=lambda kv: -kv[1])
        return [f"{k:<{width}}  {v:>9,d} B" for k, v in rows] + [f"{'total':<{width}}  {self.total_bytes:>9,d} B"]


def mixer_packets(n_devices: int, series_length: int, n_classes: int) -> int:
    """Packets ``G`` of a round that carries one series and every device's partial logits."""
    return 1 + packets_for(series_length + SERIES_HEADER_BYTES) + n_devices * packets_for(FLOAT32_BYTES * n_classes)


def ledger(
    cfg: ModelConfig,
    n_devices: int,
    series_length: int,
    n_classes: int,
    device: int = 0,
) -> Ledger:
    """The RAM ledger of ``device`` (default 0: the most kernels, and the bias b).

    Args:
        cfg: model configuration (features, optimizer, feature scaling).
        n_devices: N.
        series_length: L.
        n_classes: C.
        device: which device (0-based).
    """
    dilations, fpd = fit_dilations(series_length, cfg)
    uranges = unit_ranges(n_devices, len(dilations))  # by kernel up to 84, by unit past
    if not 0 <= device < n_devices:
        raise ValueError(f"device must be in [0, {n_devices}), got {device}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    u0, u1 = uranges[device]
    k0, k1 = kernels_of_units(u0, u1, len(dilations))
    n_kernels = k1 - k0
    offsets = unit_offsets(fpd)
    f_i = int(offsets[u1] - offsets[u0])
    owns_bias = device == 0
    c = n_classes
    n_w = c * f_i
    n_b = c if owns_bias else 0

    e: dict[str, int] = {}
    e["weights W"] = n_w * FLOAT32_BYTES
    e["bias b"] = n_b * FLOAT32_BYTES
    e["gradient accumulators"] = (n_w + n_b) * FLOAT32_BYTES
    if cfg.optimizer == "adam":
        e["Adam m, v (float32)"] = 2 * (n_w + n_b) * FLOAT32_BYTES
    else:
        e["Adam m, v (uint8)"] = 2 * (n_w + n_b)
        blocks = _n_blocks(n_w) + (_n_blocks(n_b) if n_b else 0)
        e["Adam block scales"] = 2 * blocks * FLOAT32_BYTES
    e["kernel biases"] = f_i * FLOAT32_BYTES
    e["kernel tables"] = n_kernels * 3 + 2 * len(dilations) * INT32_BYTES
    e["feature buffer"] = f_i * FLOAT32_BYTES
    e["convolution buffers"] = 11 * series_length * INT32_BYTES
    e["int8 series buffer"] = series_length
    e["received partial logits"] = n_devices * c * FLOAT32_BYTES
    if cfg.feature_scaling:
        e["scaler mean, 1/std"] = 2 * f_i * FLOAT32_BYTES
        e["scaler calibration (beyond overlay)"] = max(0, 16 * f_i - e["gradient accumulators"])
    # The validation rule (protocol/stream/validation.py): "epoch" keeps the best epoch's
    # W (and b); "decay" keeps one int32 count of correct validation items per candidate
    # (its heads are trained one after another in the same buffers).
    if cfg.selection == "epoch":
        e["best-validation copy of W, b"] = (n_w + n_b) * FLOAT32_BYTES
    elif cfg.selection == "decay":
        e["validation counts"] = len(cfg.select_weight_decays) * INT32_BYTES
    g = mixer_packets(n_devices, series_length, n_classes)
    phy = 4 + 2 * math.ceil(g / 8) + PACKET_PAYLOAD_BYTES
    e["radio packet buffers"] = (g + 1) * phy
    return Ledger(
        device=device,
        n_devices=n_devices,
        n_kernels=n_kernels,
        n_features=f_i,
        entries=e,
        total_bytes=sum(e.values()),
    )


def over_budget(led: Ledger, budget_bytes: int) -> tuple[int, str] | None:
    """``(bytes over, "its three largest buffers")`` if ``led`` exceeds ``budget_bytes``,
    else None: what every budget check's message starts from."""
    over = led.total_bytes - budget_bytes
    if over <= 0:
        return None
    top = sorted(led.entries.items(), key=lambda kv: -kv[1])[:3]
    return over, ", ".join(f"{k} {v:,d} B" for k, v in top)


def _fits(cfg: ModelConfig, n_devices: int, series_length: int, n_classes: int, budget_bytes: int) -> bool:
    return ledger(cfg, n_devices, series_length, n_classes).total_bytes <= budget_bytes


def _advice(cfg: ModelConfig, n_devices: int, series_length: int, n_classes: int, budget_bytes: int) -> str:
    tips = []
    n_max = max_devices(len(fit_dilations(series_length, cfg)[0]))  # 84 x D: one unit each
    n_ok = next((n for n in range(n_devices + 1, n_max + 1)
                 if _fits(cfg, n, series_length, n_classes, budget_bytes)), None)
    if n_ok is not None:
        tips.append(f"use at least {n_ok} devices")
    # the fewest features that still give every (kernel, dilation) one bias
    n_dil = len(fit_dilations(series_length, cfg)[0]) if cfg.dilation_style == "paper" else 1
    lo, hi = 84 * n_dil, cfg.num_features
    if lo <= hi and _fits(replace(cfg, num_features=lo), n_devices, series_length, n_classes, budget_bytes):
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _fits(replace(cfg, num_features=mid), n_devices, series_length, n_classes, budget_bytes):
                lo = mid
            else:
                hi = mid
        tips.append(f"use num_features <= {lo}")
    if cfg.optimizer == "adam" and _fits(replace(cfg, optimizer="adam8bit"), n_devices, series_length, n_classes, budget_bytes):
        tips.append("use optimizer='adam8bit'")
    if not tips:
        tips.append("this series length and class count do not fit any configuration: raise the budget")
    return "; or ".join(tips)


def check(
    led: Ledger,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
    *,
    cfg: ModelConfig | None = None,
    series_length: int | None = None,
    n_classes: int | None = None,
) -> None:
    """Raise :class:`RamBudgetExceeded` if ``led`` does not fit ``budget_bytes``.

    The message gives the bytes over and the three largest buffers; with ``cfg``,
    ``series_length`` and ``n_classes`` it also computes what would fit (more devices, fewer
    features, 8-bit Adam).
    """
    overrun = over_budget(led, budget_bytes)
    if overrun is None:
        return
    over, biggest = overrun
    if cfg is not None and series_length is not None and n_classes is not None:
        advice = _advice(cfg, led.n_devices, series_length, n_classes, budget_bytes)
    else:
        advice = "use more devices (fewer kernels per device) or fewer features (num_features)"
    raise RamBudgetExceeded(
        f"device {led.device} of {led.n_devices} needs {led.total_bytes:,d} B of RAM, "
        f"{over:,d} B ({over / 1024:.1f} KiB) over the budget of {budget_bytes:,d} B "
        f"(largest: {biggest}). To fit: {advice}."
    )


def per_device_table(
    series_length: int,
    n_classes: int,
    cfg: ModelConfig,
    n_devices_list: list[int] | range = range(1, 21),
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
) -> list[dict[str, Any]]:
    """One row per N: device 0's kernels, features and bytes (the largest device)."""
    rows = []
    total_f = n_features_total(fit_dilations(series_length, cfg)[1])
    for n in n_devices_list:
        led = ledger(cfg, n, series_length, n_classes)
        rows.append(
            {
                "n_devices": n,
                "n_kernels": led.n_kernels,
                "n_features": led.n_features,
                "n_features_total": total_f,
                "total_bytes": led.total_bytes,
                "total_kib": round(led.total_bytes / 1024, 1),
                "fits": led.total_bytes <= budget_bytes,
                "entries": dict(led.entries),
            }
        )
    return rows


# ----------------------------------------------------------------------------- other modes


def private_labels_ledger(
    cfg: ModelConfig, n_devices: int, series_length: int, n_classes: int, device: int = 0
) -> Ledger:
    """The RAM ledger of a private-labels device (docs/modes.md).

    As :func:`ledger`, plus the ``g`` buffer (C float32: the owner's outgoing ``g``, a
    receiver's incoming one; one item is in flight at a time) and the radio buffers of a
    round that also carries one ``g`` (and a series header without the label).
    """
    base = ledger(cfg, n_devices, series_length, n_classes, device)
    e = dict(base.entries)
    e["gradient g (private labels)"] = n_classes * FLOAT32_BYTES
    g = (1 + packets_for(series_length + SERIES_HEADER_BYTES - 1)
         + (n_devices + 1) * packets_for(FLOAT32_BYTES * n_classes))
    e["radio packet buffers"] = (g + 1) * (4 + 2 * math.ceil(g / 8) + PACKET_PAYLOAD_BYTES)
    return replace(base, entries=e, total_bytes=sum(e.values()))


#: Data-parallel rounds carry at most this many packets (protocol.stream.schedule.DP_MAX_PACKETS_PER_ROUND).
DP_ROUND_PACKETS = 64


def data_parallel_ledger(
    cfg: ModelConfig, n_devices: int, series_length: int, n_classes: int, device: int = 0
) -> Ledger:
    """The RAM ledger of a data-parallel device: the whole model on every device.

    Besides what a one-device RockNet holds (all 84 kernels, the full ``W`` and ``b``, their
    gradient accumulators and Adam state, biases, features, scaler, convolution buffers):

    * a second gradient-sized buffer, the sum of the other devices' gradients: a device's
      own gradient must stay intact while it is being sent (its packets go out over many
      rounds) and the others' arrive meanwhile;
    * radio buffers for a round of ``G`` = 64 packets;
    * the feature-statistics sync after calibration: the device's Welford accumulators
      (float64 mean and M2, 16 B per feature) and a merge buffer of the same size, laid
      over the buffers training has not used yet (both gradient buffers and Adam's state),
      counted only beyond them.

    ``n_devices`` changes nothing here but the row label: that is the point.
    """
    if not 0 <= device < n_devices:
        raise ValueError(f"device must be in [0, {n_devices}), got {device}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    dilations, fpd = fit_dilations(series_length, cfg)
    f = n_features_total(fpd)
    c = n_classes
    n_w, n_b = c * f, c
    e: dict[str, int] = {}
    e["weights W"] = n_w * FLOAT32_BYTES
    e["bias b"] = n_b * FLOAT32_BYTES
    e["gradient accumulators"] = (n_w + n_b) * FLOAT32_BYTES
    e["sum of received gradients"] = (n_w + n_b) * FLOAT32_BYTES
    if cfg.optimizer == "adam":
        e["Adam m, v (float32)"] = 2 * (n_w + n_b) * FLOAT32_BYTES
    else:
        e["Adam m, v (uint8)"] = 2 * (n_w + n_b)
        e["Adam block scales"] = 2 * (_n_blocks(n_w) + _n_blocks(n_b)) * FLOAT32_BYTES
    e["kernel biases"] = f * FLOAT32_BYTES
    e["kernel tables"] = 84 * 3 + 2 * len(dilations) * INT32_BYTES
    e["feature buffer"] = f * FLOAT32_BYTES
    e["convolution buffers"] = 11 * series_length * INT32_BYTES
    e["int8 series buffer"] = series_length
    e["logits"] = c * FLOAT32_BYTES
    if cfg.feature_scaling:
        e["scaler mean, 1/std"] = 2 * f * FLOAT32_BYTES
        overlay = sum(v for k, v in e.items() if k.startswith(("gradient", "sum of", "Adam")))
        e["scaler statistics sync (beyond overlay)"] = max(0, 2 * 16 * f - overlay)
    g = DP_ROUND_PACKETS
    e["radio packet buffers"] = (g + 1) * (4 + 2 * math.ceil(g / 8) + PACKET_PAYLOAD_BYTES)
    return Ledger(device=device, n_devices=n_devices, n_kernels=84, n_features=f, entries=e,
                  total_bytes=sum(e.values()))


def check_data_parallel(led: Ledger, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
    """Raise :class:`RamBudgetExceeded` if a data-parallel replica does not fit the budget.

    More devices do not help (every device holds the whole model), so the message says how
    far over it is and how to run it anyway, as a measurement beyond the device.
    """
    overrun = over_budget(led, budget_bytes)
    if overrun is None:
        return
    over, biggest = overrun
    raise RamBudgetExceeded(
        f"data-parallel: every device holds the whole model ({led.n_features:,d} features) and "
        f"needs {led.total_bytes:,d} B of RAM, {over:,d} B ({over / 1024:.1f} KiB) over the "
        f"budget of {budget_bytes:,d} B (largest: {biggest}); more devices do not help. To run "
        f"it anyway as a measurement, lift the budget: --ram-budget {led.total_bytes}."
    )
