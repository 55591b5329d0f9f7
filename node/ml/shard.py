"""A device's shard of the model: its kernels, its slice of the feature vector, its samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocol.config.model import (
    ModelConfig,
    feature_ranges,
    fit_dilations,
    kernel_ranges,
    n_features_total,
)
from protocol.stream.schedule import contiguous_split


@dataclass(frozen=True)
class ShardSpec:
    """What device ``device`` of ``n_devices`` computes.

    Attributes:
        kernel_start, kernel_stop: its kernels ``[start, stop)`` of the 84.
        feature_start, feature_stop: its slice of the full (kernel-major) feature vector.
        n_features: ``feature_stop - feature_start`` (F_i).
        n_features_total: length of the full feature vector (F).
        dilations, features_per_dilation: int32[D], the same on every device.
    """

    device: int
    n_devices: int
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
        return self.kernel_stop - self.kernel_start

    @property
    def owns_bias(self) -> bool:
        """Device 0 owns the head's bias b."""
        return self.device == 0


def build_shard(cfg: ModelConfig, series_length: int, device: int, n_devices: int) -> ShardSpec:
    """The shard of ``device`` (0-based) for series of ``series_length`` samples."""
    kranges = kernel_ranges(n_devices)
    if not 0 <= device < n_devices:
        raise ValueError(f"device must be in [0, {n_devices}), got {device}")
    dilations, fpd = fit_dilations(series_length, cfg)
    k0, k1 = kranges[device]
    f0, f1 = feature_ranges(n_devices, fpd)[device]
    return ShardSpec(
        device=device,
        n_devices=n_devices,
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
