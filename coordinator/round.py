"""Exchanges: which rounds the coordinator asks the nodes about, and what each node receives.

An exchange sends one ROUND to every reachable node and collects their TXs. It covers the
series of rounds ``[series_from, series_to)`` and the partial logits of items
``[logits_from, logits_to)`` (those travel in rounds ``logits_from + 1 .. logits_to``).

- lockstep: one exchange per round ``r``: the series of item ``r`` and the logits of item
  ``r - 1``, exactly as the radio rounds happen;
- batch (default): per optimizer batch ``[a, b)`` of the stream, exchange A carries the
  series of rounds ``[a, b)`` and exchange B the partial logits of items ``[a, b)``. ``W``
  changes only at optimizer steps, so every partial logit of a batch uses the same weights and
  nodes compute them at once. Each round's air is drawn once (cached), so both modes deliver
  the same payloads and train bitwise the same model.

This module is transport-free: :func:`deliver` turns TXs and resolved rounds into RXs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coordinator.air import Air, RoundOutcome
from protocol.frames import Round, Rx, Tx
from protocol.schedule import Stream


@dataclass(frozen=True)
class ExchangePlan:
    """Ranges of one exchange (empty range: from == to)."""

    exchange: int
    series_from: int
    series_to: int
    logits_from: int
    logits_to: int

    @property
    def last_round(self) -> int:
        """Highest round this exchange touches (its air must be resolved up to here)."""
        last = -1
        if self.series_to > self.series_from:
            last = self.series_to - 1
        if self.logits_to > self.logits_from:
            last = max(last, self.logits_to)
        return last

    def message(self) -> Round:
        return Round(
            exchange=self.exchange,
            series_from=self.series_from,
            series_to=self.series_to,
            logits_from=self.logits_from,
            logits_to=self.logits_to,
        )


def plan_exchanges(stream: Stream, lockstep: bool) -> list[ExchangePlan]:
    """All exchanges of the run, in order."""
    plans: list[ExchangePlan] = []
    if lockstep:
        for r in range(stream.n_rounds):
            s_item = stream.series_item(r)
            l_item = stream.logits_item(r)
            plans.append(
                ExchangePlan(
                    exchange=len(plans),
                    series_from=r if s_item is not None else 0,
                    series_to=r + 1 if s_item is not None else 0,
                    logits_from=l_item if l_item is not None else 0,
                    logits_to=l_item + 1 if l_item is not None else 0,
                )
            )
        return plans
    for a, b in stream.batches:
        plans.append(ExchangePlan(len(plans), a, b, 0, 0))
        if stream.needs_logits(a):
            plans.append(ExchangePlan(len(plans), 0, 0, a, b))
    return plans


def _empty_rx(exchange: int, n_devices: int, n_classes: int, series_length: int) -> Rx:
    return Rx(
        exchange=exchange,
        series_items=np.zeros(0, np.int32),
        series=np.zeros((0, series_length), np.int8),
        labels=np.zeros(0, np.int16),
        logits_items=np.zeros(0, np.int32),
        logits=np.zeros((0, n_devices, n_classes), np.float32),
        logits_mask=np.zeros((0, n_devices), bool),
        radio={"silent": True},
    )


def deliver(plan: ExchangePlan, txs: dict[int, Tx], air: Air) -> dict[int, Rx]:
    """What each responding device receives in this exchange (air already resolved).

    A payload reaches device ``d`` if its source sent it in this exchange and ``d`` decoded
    every packet of it in its round. A device always has its own payloads.
    """
    n, c, length = air.n_devices, air.n_classes, air.series_length
    # Who sent which series / logits (indexed by item).
    series_by_item: dict[int, tuple[np.ndarray, int]] = {}
    for tx in txs.values():
        for row, item in enumerate(tx.series_items.tolist()):
            if plan.series_from <= item < plan.series_to and int(air.stream.owner[item]) == tx.device:
                series_by_item[item] = (tx.series[row], int(tx.labels[row]))
    logits_items = [
        t for t in range(plan.logits_from, plan.logits_to) if air.stream.needs_logits(t)
    ]
    row_of = {t: i for i, t in enumerate(logits_items)}
    sent = np.zeros((len(logits_items), n, c), np.float32)
    sent_mask = np.zeros((len(logits_items), n), bool)
    for tx in txs.values():
        for row, item in enumerate(tx.logits_items.tolist()):
            if item in row_of:
                sent[row_of[item], tx.device] = tx.logits[row]
                sent_mask[row_of[item], tx.device] = True

    series_rounds = [t for t in range(plan.series_from, plan.series_to) if t in series_by_item]
    out: dict[int, Rx] = {}
    for device in txs:
        s_items = [
            t for t in series_rounds
            if int(air.stream.owner[t]) != device and _outcome(air, t).series_ok[device]
        ]
        mask = np.zeros((len(logits_items), n), bool)
        for row, item in enumerate(logits_items):
            mask[row] = _outcome(air, item + 1).logits_ok[device] & sent_mask[row]
        mask[:, device] = sent_mask[:, device]  # a device always has its own payloads
        logits = np.where(mask[:, :, None], sent, np.float32(0.0)).astype(np.float32)
        out[device] = Rx(
            exchange=plan.exchange,
            series_items=np.asarray(s_items, np.int32),
            series=np.asarray([series_by_item[t][0] for t in s_items], np.int8).reshape(len(s_items), length),
            labels=np.asarray([series_by_item[t][1] for t in s_items], np.int16),
            logits_items=np.asarray(logits_items, np.int32),
            logits=logits,
            logits_mask=mask,
            radio={},
        )
    return out


def _outcome(air: Air, round_no: int) -> RoundOutcome:
    outcome = air.outcome(round_no)
    if outcome is None:
        raise RuntimeError(f"round {round_no} was not resolved before delivery (a planning bug)")
    return outcome


def silent_rx(plan: ExchangePlan, air: Air) -> Rx:
    """The RX of a device that missed the deadline: it was off the air this exchange."""
    return _empty_rx(plan.exchange, air.n_devices, air.n_classes, air.series_length)
