"""The run's configuration as the coordinator hands it to every node in WELCOME.

Pure data: both sides build the same :class:`~protocol.stream.schedule.Stream` from it, and the node
builds its kernel shard, head and RAM ledger from it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from protocol.config.model import ModelConfig, check_n_devices, fit_dilations
from protocol.stream.schedule import ScheduleConfig

#: What a device does when some partial logits of a sample did not arrive.
#: ``sum``: sum what arrived (the paper's firmware); ``skip``: skip that sample's update;
#: ``reuse``: use the last partial logits received from the missing device.
MISSING_POLICIES = ("sum", "skip", "reuse")

#: The default RAM budget of an nRF52840: 256 KiB.
DEFAULT_RAM_BUDGET_BYTES = 256 * 1024


@dataclass(frozen=True)
class RunConfig:
    """Everything a node needs to know about the run, besides its data shard."""

    dataset: str
    n_devices: int
    n_classes: int
    series_length: int
    model: ModelConfig
    schedule: ScheduleConfig
    missing_policy: str = "sum"
    ram_budget_bytes: int = DEFAULT_RAM_BUDGET_BYTES
    mode: str = "rocknet"
    #: Device profile (node/mcu/profiles.py): ``tuned`` (default) or ``firmware``.
    profile: str = "tuned"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.series_length >= 9:  # a too-short series is refused below, with its fix
            # up to 84 (kernel, dilation) pairs x D dilations: one pair per device at least
            check_n_devices(self.n_devices, len(fit_dilations(self.series_length, self.model)[0]),
                            self.series_length)
        if self.schedule.n_devices != self.n_devices:
            raise ValueError("schedule.n_devices must equal n_devices")
        if self.n_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {self.n_classes}")
        if self.series_length < 9:
            raise ValueError(
                f"series of length {self.series_length} are shorter than a MiniRocket kernel (9)"
            )
        if self.missing_policy not in MISSING_POLICIES:
            raise ValueError(
                f"missing-data policy {self.missing_policy!r} unknown: use one of {MISSING_POLICIES}"
            )
        if self.ram_budget_bytes < 1:
            raise ValueError("the RAM budget must be a positive number of bytes")
        if self.model.head == "ridge" and (self.mode != "rocknet" or self.schedule.gram_block < self.n_classes):
            raise ValueError("the ridge head runs in rocknet mode with Gram blocks of at least n_classes "
                             "samples: use --mode rocknet and protocol.config.model.schedule_config(..., n_classes=C)")
        if self.model.head != "ridge" and self.schedule.gram_block:
            raise ValueError("a schedule with Gram passes (gram_block > 0) needs the ridge head (head='ridge')")
        if self.profile not in ("tuned", "firmware"):
            raise ValueError(f"device profile {self.profile!r} unknown: use --profile tuned or firmware")

    def to_dict(self) -> dict[str, Any]:
        """Plain msgpack-able values (for WELCOME and config.json)."""
        return {
            "dataset": self.dataset,
            "n_devices": self.n_devices,
            "n_classes": self.n_classes,
            "series_length": self.series_length,
            "model": self.model.to_dict(),
            "schedule": asdict(self.schedule),
            "missing_policy": self.missing_policy,
            "ram_budget_bytes": self.ram_budget_bytes,
            "mode": self.mode,
            "extra": dict(self.extra),
            # only when not the default, so that tuned runs keep their fingerprints
            **({"profile": self.profile} if self.profile != "tuned" else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on missing or bad fields."""
        try:
            return cls(
                dataset=str(data["dataset"]),
                n_devices=int(data["n_devices"]),
                n_classes=int(data["n_classes"]),
                series_length=int(data["series_length"]),
                model=ModelConfig.from_dict(data["model"]),
                schedule=ScheduleConfig(**data["schedule"]),
                missing_policy=str(data.get("missing_policy", "sum")),
                ram_budget_bytes=int(data.get("ram_budget_bytes", DEFAULT_RAM_BUDGET_BYTES)),
                mode=str(data.get("mode", "rocknet")),
                profile=str(data.get("profile", "tuned")),
                extra=dict(data.get("extra", {})),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"run configuration is incomplete or malformed: {exc}") from exc

    @property
    def logit_width(self) -> int:
        """Floats of one device's vector in a logit slot: C, or with the ridge head the Gram
        block (a partial Gram row; its test logits take the first C, the rest are 0)."""
        return max(self.n_classes, self.schedule.gram_block)

    def fingerprint(self) -> str:
        """Short hash that identifies the run (checkpoints from another run are refused)."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
