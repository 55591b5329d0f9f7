"""A device's shard of the model: its (kernel, dilation) units, its slice of the feature
vector, its samples.

Up to 84 devices a shard is a range of whole kernels (all their dilations); past 84 it is a
range of units ``u = kernel * D + dilation_index`` (:func:`protocol.config.model.unit_ranges`),
so up to ``84 * D`` devices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocol.config.model import (
    ModelConfig,
    fit_dilations,
    kernels_of_units,
    n_features_total,
    unit_offsets,
    unit_ranges,
)
from protocol.stream.schedule import contiguous_split


@dataclass(frozen=True)
class ShardSpec:
    """What device ``device`` of ``n_devices`` computes.

    Attributes:
        unit_start, unit_stop: its (kernel, dilation) units ``[start, stop)`` of the
            ``84 * D`` (``u = kernel * D + dilation_index``).
        kernel_start, kernel_stop: the kernels ``[start, stop)`` its units touch (whole
            kernels up to 84 devices; past 84 a kernel may be shared by two devices).
        feature_start, feature_stop: its slice of the full (kernel-major) feature vector.
        n_features: ``feature_stop - feature_start`` (F_i).
        n_features_total: length of the full feature vector (F).
        dilations, features_per_dilation: int32[D], the same on every device.
    """

    device: int
    n_devices: int
    unit_start: int
    unit_stop: int
    kernel_start: int
    kernel_stop: int
    feature_start: int
    feature_stop: int
    n_features: int
    n_features_total: int
    dilations: np.ndarray
    features_per_dilation: np.ndarray

    @property
    def n_kernels(self) -> int:
        """Kernels its units touch (a kernel shared with a neighbour counts here too)."""
        return self.kernel_stop - self.kernel_start

    @property
    def n_units(self) -> int:
        """(kernel, dilation) pairs it computes."""
        return self.unit_stop - self.unit_start

    @property
    def owns_bias(self) -> bool:
        """Device 0 owns the head's bias b."""
        return self.device == 0


def build_shard(cfg: ModelConfig, series_length: int, device: int, n_devices: int) -> ShardSpec:
    """The shard of ``device`` (0-based) for series of ``series_length`` samples."""
    dilations, fpd = fit_dilations(series_length, cfg)
    uranges = unit_ranges(n_devices, len(dilations))
    if not 0 <= device < n_devices:
        raise ValueError(f"device must be in [0, {n_devices}), got {device}")
    u0, u1 = uranges[device]
    k0, k1 = kernels_of_units(u0, u1, len(dilations))
    offsets = unit_offsets(fpd)
    f0, f1 = int(offsets[u0]), int(offsets[u1])
    return ShardSpec(
        device=device,
        n_devices=n_devices,
        unit_start=u0,
        unit_stop=u1,
        kernel_start=k0,
        kernel_stop=k1,
        feature_start=f0,
        feature_stop=f1,
        n_features=f1 - f0,
        n_features_total=n_features_total(fpd),
        dilations=dilations,
        features_per_dilation=fpd,
    )


def sample_range(n_samples: int, device: int, n_devices: int) -> tuple[int, int]:
    """The contiguous ``[start, stop)`` of a train or test set that ``device`` owns
    (the same split as :func:`protocol.stream.schedule.build_stream`)."""
    return contiguous_split(n_samples, n_devices)[device]
