"""The three training modes and what each needs from the configuration (pure, docs/modes.md).

- ``rocknet``: the paper. The owner floods a sample's series (and label); every device
  floods its partial logits; everybody learns from the summed logits.
- ``private-labels``: the series travels without its label; only its owner sums the partial
  logits and floods ``g = softmax(z) - onehot(y)``; the others learn from ``g``.
- ``data-parallel``: the baseline RockNet is compared with. Every device holds the whole
  model (all 84 kernels, the full head), trains on its own samples only and floods its
  gradient sum at every optimizer step; every device averages what arrived and steps.

:func:`stream_for` builds a run's stream for its mode: coordinator and nodes call it with
the same :class:`~protocol.config.run.RunConfig` and get the same rounds.
"""

from __future__ import annotations

from protocol.config.model import (
    N_KERNELS,
    ModelConfig,
    fit_dilations,
    kernels_of_units,
    n_features_total,
    unit_ranges,
)
from protocol.config.run import RunConfig
from protocol.stream.schedule import Stream, build_stream
from protocol.stream.training_mode import MODES, TrainingMode
from protocol.wire.frames import DEFAULT_MAX_BYTES

__all__ = [
    "MODES", "MODE_DATA_PARALLEL", "MODE_PRIVATE_LABELS", "MODE_ROCKNET", "TrainingMode",
    "check_mode", "dp_gradient_bytes", "dp_n_params", "dp_statistics_bytes", "kernels_held",
    "stream_for", "units_held",
]


MODE_ROCKNET = TrainingMode.ROCKNET
MODE_PRIVATE_LABELS = TrainingMode.PRIVATE_LABELS
MODE_DATA_PARALLEL = TrainingMode.DATA_PARALLEL

#: Data-parallel gradient message: sample count (int32), then ``grad_W`` (C x F) and
#: ``grad_b`` (C), float32, little-endian.
DP_COUNT_BYTES = 4
#: Data-parallel statistics message: sample count (int64), then the Welford mean and M2
#: of every feature, float64.
DP_STATS_COUNT_BYTES = 8


def check_mode(mode: str) -> TrainingMode:
    """``mode`` as a :class:`TrainingMode`; ``ValueError`` naming the modes otherwise."""
    if mode not in MODES:
        raise ValueError(f"--mode must be one of {', '.join(MODES)}; got {mode!r}")
    return TrainingMode(mode)


def dp_n_features(cfg: ModelConfig, series_length: int) -> int:
    """F: the whole model's feature count (what every data-parallel replica holds)."""
    return n_features_total(fit_dilations(series_length, cfg)[1])


def dp_n_params(cfg: ModelConfig, series_length: int, n_classes: int) -> int:
    """Parameters of the whole head: ``C x F`` weights plus ``C`` biases."""
    return n_classes * dp_n_features(cfg, series_length) + n_classes


def dp_gradient_bytes(cfg: ModelConfig, series_length: int, n_classes: int) -> int:
    """Bytes of one device's gradient message (count + float32 gradient sums)."""
    return DP_COUNT_BYTES + 4 * dp_n_params(cfg, series_length, n_classes)


def dp_statistics_bytes(cfg: ModelConfig, series_length: int) -> int:
    """Bytes of one device's feature-statistics message (count + float64 mean and M2)."""
    return DP_STATS_COUNT_BYTES + 16 * dp_n_features(cfg, series_length)


def units_held(config: RunConfig, device: int) -> tuple[int, int]:
    """The (kernel, dilation) units ``[start, stop)`` device ``device`` computes, ``u = kernel
    * D + dilation_index`` (all ``84 * D`` in data-parallel; see
    :func:`protocol.config.model.unit_ranges`)."""
    n_dil = len(fit_dilations(config.series_length, config.model)[0])
    if config.mode == TrainingMode.DATA_PARALLEL:
        return 0, N_KERNELS * n_dil
    return unit_ranges(config.n_devices, n_dil)[device]


def kernels_held(config: RunConfig, device: int) -> tuple[int, int]:
    """The kernels ``[start, stop)`` the units of device ``device`` touch (all 84 in
    data-parallel; whole kernels up to 84 devices)."""
    n_dil = len(fit_dilations(config.series_length, config.model)[0])
    return kernels_of_units(*units_held(config, device), n_dil)


def stream_for(config: RunConfig) -> Stream:
    """The run's stream and rounds for ``config.mode`` (``ValueError`` for an unknown mode)."""
    mode = check_mode(config.mode)
    if mode is TrainingMode.DATA_PARALLEL:
        sizes = (
            dp_statistics_bytes(config.model, config.series_length),
            dp_gradient_bytes(config.model, config.series_length, config.n_classes),
        )
        # What one RX carries: every other device's message (plus a little framing).
        rx_bytes = (config.n_devices - 1) * max(sizes) + 64 * 1024
        if rx_bytes > DEFAULT_MAX_BYTES:
            raise ValueError(
                f"data-parallel: one exchange would deliver {rx_bytes:,d} B to every node, over "
                f"the {DEFAULT_MAX_BYTES:,d} B frame limit: use fewer nodes or num_features"
            )
        return build_stream(config.schedule, mode, sync_bytes=sizes)
    return build_stream(config.schedule, mode)
