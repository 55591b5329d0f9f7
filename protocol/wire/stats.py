"""Typed records of what a device reports: per TX (:class:`TxStats`) and in FINAL
(:class:`FinalMetrics`), with the per-pass metrics both carry (:class:`PassRecord`).

The wire keeps plain msgpack maps (``Tx.stats``, ``Final.stats``): :meth:`to_wire` gives
exactly the map a device sent before these records existed (same keys, same order, optional
keys left out when unset), and :meth:`from_wire` validates a received map eagerly, with a
``ValueError`` that names the offending key. Pure: no numpy, no zmq.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Self, cast

__all__ = ["FinalMetrics", "PassKind", "PassRecord", "TxStats"]

#: "val": a validation pass (items held out of the training split, docs/ml-core.md).
PassKind = Literal["train", "eval", "val"]
_PASS_KINDS: tuple[PassKind, ...] = ("train", "eval", "val")


def _mapping(data: object, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a map, got {type(data).__name__}")
    return cast(dict[str, Any], data)


def _int(data: dict[str, Any], key: str, what: str, minimum: int | None = None) -> int:
    if key not in data:
        raise ValueError(f"{what} lacks {key!r}")
    value = data[key]
    # bool is an int subclass: a flag where a count belongs is a wrong map, not a 0/1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what}[{key!r}] must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{what}[{key!r}] must be >= {minimum}, got {value}")
    return value


def _float(data: dict[str, Any], key: str, what: str, optional: bool = False) -> float | None:
    if key not in data:
        raise ValueError(f"{what} lacks {key!r}")
    value = data[key]
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what}[{key!r}] must be a finite number, got {value!r}")
    return value


def _seconds(data: dict[str, Any], key: str, what: str) -> float:
    value = _float(data, key, what)
    assert value is not None  # not optional: _float raised on None
    if value < 0:
        raise ValueError(f"{what}[{key!r}] must be >= 0 seconds, got {value}")
    return value


def _positive(data: dict[str, Any], key: str, what: str) -> float:
    value = _float(data, key, what)
    assert value is not None  # not optional: _float raised on None
    if value <= 0:
        raise ValueError(f"{what}[{key!r}] must be > 0, got {value}")
    return float(value)


def _optional_int(data: dict[str, Any], key: str, what: str) -> int | None:
    return _int(data, key, what, minimum=0) if key in data else None


def _with_counters(out: dict[str, Any], bad_frames: int | None, stale_frames: int | None) -> dict[str, Any]:
    """``out`` plus the agent's frame counters that are known (the wire leaves out the rest)."""
    if bad_frames is not None:
        out["bad_frames"] = bad_frames
    if stale_frames is not None:
        out["stale_frames"] = stale_frames
    return out


@dataclass(frozen=True)
class PassRecord:
    """One pass (training epoch or evaluation) as one device saw it.

    ``correct`` / ``total``: samples scored (argmax hit / scored at all); ``skipped``: samples
    the device could not use (series, logits or ``g`` missing); ``accuracy`` and ``loss``
    (mean cross-entropy, nats) are ``None`` while ``total`` is 0.
    """

    kind: PassKind
    epoch: int
    correct: int
    total: int
    skipped: int
    accuracy: float | None
    loss: float | None

    @classmethod
    def from_counts(cls, kind: PassKind, epoch: int, correct: int, total: int,
                    loss_sum: float, skipped: int) -> PassRecord:
        """The record of running counts (``loss_sum``: summed cross-entropy, nats)."""
        return cls(kind=kind, epoch=epoch, correct=correct, total=total, skipped=skipped,
                   accuracy=correct / total if total else None,
                   loss=loss_sum / total if total else None)

    def to_wire(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "epoch": self.epoch,
            "correct": self.correct,
            "total": self.total,
            "accuracy": self.accuracy,
            "loss": self.loss,
            "skipped": self.skipped,
        }

    @classmethod
    def from_wire(cls, data: object) -> Self:
        what = "pass record"
        d = _mapping(data, what)
        kind = d.get("kind")
        if kind not in _PASS_KINDS:
            raise ValueError(f"{what}['kind'] must be one of {_PASS_KINDS}, got {kind!r}")
        correct = _int(d, "correct", what, minimum=0)
        total = _int(d, "total", what, minimum=0)
        if correct > total:
            raise ValueError(f"{what}['correct'] = {correct} exceeds 'total' = {total}")
        return cls(
            kind=cast(PassKind, kind),
            epoch=_int(d, "epoch", what, minimum=-1),
            correct=correct,
            total=total,
            skipped=_int(d, "skipped", what, minimum=0),
            accuracy=_float(d, "accuracy", what, optional=True),
            loss=_float(d, "loss", what, optional=True),
        )


def _optional_pass(d: dict[str, Any], key: str) -> PassRecord | None:
    if key not in d:
        return None
    record = PassRecord.from_wire(d[key])
    if record.kind != key:
        raise ValueError(f"TX stats[{key!r}] holds a {record.kind!r} pass")
    return record


@dataclass(frozen=True)
class TxStats:
    """What a device reports with every TX (counters since its previous TX).

    ``compute_wall_s``: host seconds spent computing; ``compute_modeled_s``: modeled MCU
    seconds of the same work; ``model_sample_s`` / ``model_step_s``: modeled MCU seconds per
    sample and per optimizer step (the coordinator sizes compute windows with them);
    ``ram_bytes``: the device's MCU RAM ledger total; ``processed_item``: last item consumed
    (-1: none). ``train`` / ``eval``: the latest pass of that kind, if any. ``bad_frames`` /
    ``stale_frames``: the node's frame counters, added by the agent (None: not added).
    """

    compute_wall_s: float
    compute_modeled_s: float
    samples_transformed: int
    steps: int
    ram_bytes: int
    processed_item: int
    model_sample_s: float
    model_step_s: float
    train: PassRecord | None = None
    eval: PassRecord | None = None
    bad_frames: int | None = None
    stale_frames: int | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "compute_wall_s": self.compute_wall_s,
            "compute_modeled_s": self.compute_modeled_s,
            "samples_transformed": self.samples_transformed,
            "steps": self.steps,
            "ram_bytes": self.ram_bytes,
            "processed_item": self.processed_item,
            "model_sample_s": self.model_sample_s,
            "model_step_s": self.model_step_s,
        }
        if self.train is not None:
            out["train"] = self.train.to_wire()
        if self.eval is not None:
            out["eval"] = self.eval.to_wire()
        return _with_counters(out, self.bad_frames, self.stale_frames)

    @classmethod
    def from_wire(cls, data: object) -> Self:
        what = "TX stats"
        d = _mapping(data, what)
        return cls(
            compute_wall_s=_seconds(d, "compute_wall_s", what),
            compute_modeled_s=_seconds(d, "compute_modeled_s", what),
            samples_transformed=_int(d, "samples_transformed", what, minimum=0),
            steps=_int(d, "steps", what, minimum=0),
            ram_bytes=_int(d, "ram_bytes", what, minimum=0),
            processed_item=_int(d, "processed_item", what, minimum=-1),
            model_sample_s=_seconds(d, "model_sample_s", what),
            model_step_s=_seconds(d, "model_step_s", what),
            train=_optional_pass(d, "train"),
            eval=_optional_pass(d, "eval"),
            bad_frames=_optional_int(d, "bad_frames", what),
            stale_frames=_optional_int(d, "stale_frames", what),
        )


@dataclass(frozen=True)
class FinalMetrics:
    """What a device reports in FINAL: every pass of the run and the optimizer steps taken.

    ``weights_digest``: data-parallel replicas' 16-hex-digit SHA-256 prefix of ``W`` and
    ``b`` (equal digests: equal replicas); ``ram_bytes``, ``bad_frames``, ``stale_frames``
    are added by the agent; ``ridge_samples`` and ``ridge_alpha``: the ridge head's solve
    (the training samples it kept, the leave-one-out alpha); None: left out.
    """

    passes: tuple[PassRecord, ...]
    steps: int
    weights_digest: str | None = None
    ram_bytes: int | None = None
    bad_frames: int | None = None
    stale_frames: int | None = None
    ridge_samples: int | None = None
    ridge_alpha: float | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"passes": [p.to_wire() for p in self.passes], "steps": self.steps}
        if self.weights_digest is not None:
            out["weights_digest"] = self.weights_digest
        if self.ridge_samples is not None:
            out["ridge_samples"] = self.ridge_samples
        if self.ridge_alpha is not None:
            out["ridge_alpha"] = self.ridge_alpha
        if self.ram_bytes is not None:
            out["ram_bytes"] = self.ram_bytes
        return _with_counters(out, self.bad_frames, self.stale_frames)

    @classmethod
    def from_wire(cls, data: object) -> Self:
        what = "FINAL stats"
        d = _mapping(data, what)
        passes = d.get("passes")
        if not isinstance(passes, list):
            raise ValueError(f"{what}['passes'] must be a list, got {passes!r}")
        digest = d.get("weights_digest")
        if digest is not None and not (
            isinstance(digest, str) and len(digest) == 16 and all(c in "0123456789abcdef" for c in digest)
        ):
            raise ValueError(f"{what}['weights_digest'] must be 16 lowercase hex digits, got {digest!r}")
        return cls(
            passes=tuple(PassRecord.from_wire(p) for p in passes),
            steps=_int(d, "steps", what, minimum=0),
            weights_digest=digest,
            ram_bytes=_optional_int(d, "ram_bytes", what),
            bad_frames=_optional_int(d, "bad_frames", what),
            stale_frames=_optional_int(d, "stale_frames", what),
            ridge_samples=_optional_int(d, "ridge_samples", what),
            ridge_alpha=_positive(d, "ridge_alpha", what) if "ridge_alpha" in d else None,
        )
