"""A device's checkpoint: written atomically after an optimizer step (at most once a second,
:class:`node.agent.AgentOptions`), refused when foreign.

File: a sealed document (:func:`protocol.files.write_sealed`: a magic line, the sha256 of
the body, one msgpack body) with the head's state (W_i, b, gradient accumulators, optimizer
state), the feature scaler's statistics, the last partial logits per device and the meta
(run fingerprint, device id, last consumed item, steps, per-pass metrics). Written to a temp
file (fsync'ed with ``--checkpoint-fsync``), then renamed over the old one, so a crash leaves
either the old or the new checkpoint, never half of one. (It was an ``.npz``: 3.9 ms a save
here, most of the CPU a node spent per optimizer step.)
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from protocol.files import SealedFileError, read_sealed, write_sealed

if TYPE_CHECKING:
    from node.device.base import DeviceBase as Device

FORMAT = "rocknet-node-checkpoint/2"
MAGIC = b"rocknet-node-checkpoint\n"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (corrupt, another run's, another device's)."""


def _flatten(prefix: str, state: dict[str, Any], out: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            out[f"{prefix}{key}"] = value
        else:
            meta[f"{prefix}{key}"] = value.item() if isinstance(value, np.generic) else value


def save_checkpoint(path: Path, device: Device, fsync: bool = False) -> None:
    """Write ``device``'s state to ``path`` atomically (temp file + rename).

    With ``fsync`` the file and its directory are also flushed to the disk before and after
    the rename, which survives a host crash or power loss; without it a killed process (or
    container) still leaves the old or the new checkpoint whole, at a quarter of the cost
    (the fsync costs several ms a step).
    """
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, Any] = {}
    _flatten("head/", device.head.state_dict(), arrays, scalars)
    if device.scaler is not None:
        _flatten("scaler/", device.scaler.state_dict(), arrays, scalars)
    arrays["last_logits"] = device._last_logits
    arrays["have_last"] = device._have_last
    meta = {
        "format": FORMAT,
        "fingerprint": device.config_fingerprint,
        "device": device.device,
        "processed_item": device.processed_item,
        "steps_taken": device.steps_taken,
        "scaler_done": device._scaler_done,
        "passes": [p.as_dict() for p in device.passes],
        "scalars": scalars,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # 0600: a checkpoint holds the device's model; only its owner reads it.
    write_sealed(path, MAGIC, {"meta": meta, "arrays": arrays}, fsync=fsync, mode=0o600)


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and sanity-check a checkpoint file; raises :class:`CheckpointError`."""
    try:
        document, _ = read_sealed(path, MAGIC)
        meta = document["meta"]
        arrays = {k: np.array(v) for k, v in document["arrays"].items()}
    except SealedFileError as exc:
        raise CheckpointError(f"{path} is {exc}; delete it to start fresh") from exc
    except (KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint ({exc}); delete it to start fresh") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} file; delete it to start fresh")
    return meta, arrays


def load_checkpoint(path: Path, device: Device) -> None:
    """Restore ``device`` from ``path``, all or nothing."""
    meta, arrays = read_checkpoint(path)
    if meta.get("fingerprint") != device.config_fingerprint:
        raise CheckpointError(f"{path} belongs to another run (configuration differs)")
    if meta.get("device") != device.device:
        raise CheckpointError(f"{path} belongs to device {meta.get('device')}, not {device.device}")
    scalars = meta.get("scalars", {})

    def part(prefix: str) -> dict[str, Any]:
        state: dict[str, Any] = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        state.update({k[len(prefix):]: v for k, v in scalars.items() if k.startswith(prefix)})
        return state

    # Validate everything on copies first: a failure must leave the device untouched.
    head_state, scaler_state = part("head/"), part("scaler/")
    try:
        probe_head = copy.deepcopy(device.head)
        probe_head.load_state_dict(head_state)
        probe_scaler = None
        if device.scaler is not None:
            probe_scaler = copy.deepcopy(device.scaler)
            probe_scaler.load_state_dict(scaler_state)
        last = arrays["last_logits"]
        have = arrays["have_last"]
        if last.shape != device._last_logits.shape or have.shape != device._have_last.shape:
            raise ValueError("partial-logit buffers have the wrong shape")
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} does not fit this device ({exc}); delete it to start fresh") from exc
    device.head = probe_head
    if probe_scaler is not None:
        device.scaler = probe_scaler
    device._last_logits = last.astype(np.float32)
    device._have_last = have.astype(bool)
    device.processed_item = int(meta["processed_item"])
    device.steps_taken = int(meta["steps_taken"])
    device._scaler_done = bool(meta["scaler_done"])
    from node.device.base import PassMetrics

    device.passes = [
        PassMetrics(kind=p["kind"], epoch=p["epoch"], correct=p["correct"], total=p["total"],
                    loss_sum=(p["loss"] or 0.0) * p["total"], skipped=p["skipped"])
        for p in meta.get("passes", [])
    ]
