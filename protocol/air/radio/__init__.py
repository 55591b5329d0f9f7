"""The emulated radio: Mixer (network coding) and Glossy (flooding) with one result type."""

from __future__ import annotations

from protocol.air.radio.resolve import PROTOCOLS, AirResult, resolve, resolve_batch

__all__ = ["PROTOCOLS", "AirResult", "resolve", "resolve_batch"]
