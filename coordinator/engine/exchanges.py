"""Exchanges: which rounds the coordinator asks the nodes about, and what each node receives.

An exchange sends one ROUND to every reachable node and collects their TXs. It covers the
series of rounds ``[series_from, series_to)`` and the partial logits of items
``[logits_from, logits_to)`` (those travel in rounds ``logits_from + 1 .. logits_to``).

- lockstep: one exchange per round ``r``: the series of item ``r`` and the logits of item
  ``r - 1``, exactly as the radio rounds happen;
- batch (default): per optimizer batch ``[a, b)`` of the stream, one exchange carries the
  series of rounds ``[a, b)`` together with the partial logits of the previous batch, and the
  next one the partial logits of items ``[a, b)`` (with the series of the batch after it):
  one exchange per batch, pipelined as the radio rounds are. ``W`` changes only at optimizer
  steps, so every partial logit of a batch uses the same weights and nodes compute them at
  once. Each round's air is drawn once (cached), so both modes deliver
  the same payloads and train bitwise the same model.

Other modes (docs/modes.md):

- private labels: as above plus the owner's ``g`` of each training item, one round after
  its logits. Lockstep: one exchange per round (series, logits and ``g`` of three items);
  batch: per batch A (series), B (logits; owners compute ``g``), C (``g``; every device
  accumulates and steps). The stream's bubble round after each step keeps the first item
  of the next batch on the stepped weights, so both give bitwise the same model;
- data-parallel: one exchange per sync (lockstep and batch alike): every device sends its
  whole message, the air resolves all the sync's rounds, and a device receives another's
  message if it decoded every packet of it in every round of the sync.

This module is transport-free: :func:`deliver` turns TXs and resolved rounds into RXs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from coordinator.engine.medium import Air
from coordinator.engine.outcome import RoundOutcome
from protocol.wire.frames import Round, Rx, Tx
from protocol.stream.schedule import Stream


@dataclass(frozen=True)
class ExchangePlan:
    """Ranges of one exchange (empty range: from == to; item ranges, ``sync`` -1: none).

    ``rounds`` is ``(first, stop)``, the rounds the exchange touches (set by
    :func:`plan_exchanges`; without it the rocknet layout, round = item, is assumed).
    """

    exchange: int
    series_from: int
    series_to: int
    logits_from: int
    logits_to: int
    grad_from: int = 0
    grad_to: int = 0
    sync: int = -1
    rounds: tuple[int, int] | None = None

    @property
    def last_round(self) -> int:
        """Highest round this exchange touches (its air must be resolved up to here)."""
        if self.rounds is not None:
            return self.rounds[1] - 1
        last = -1
        if self.series_to > self.series_from:
            last = self.series_to - 1
        if self.logits_to > self.logits_from:
            last = max(last, self.logits_to)
        return last

    @property
    def first_round(self) -> int:
        """Lowest round this exchange touches (no later exchange needs an earlier one)."""
        if self.rounds is not None:
            return self.rounds[0]
        return self.series_from if self.series_to > self.series_from else self.logits_from

    def message(self) -> Round:
        return Round.build(  # built here from typed plan fields: decode validates
            exchange=self.exchange,
            series_from=self.series_from,
            series_to=self.series_to,
            logits_from=self.logits_from,
            logits_to=self.logits_to,
            grad_from=self.grad_from,
            grad_to=self.grad_to,
            sync=self.sync,
        )


def _with_rounds(stream: Stream, plan: ExchangePlan) -> ExchangePlan:
    """``plan`` with the rounds its ranges touch."""
    touched: list[int] = []
    if plan.series_to > plan.series_from:
        touched += [stream.series_round(plan.series_from), stream.series_round(plan.series_to - 1)]
    if plan.logits_to > plan.logits_from:
        touched += [stream.logits_round(plan.logits_from), stream.logits_round(plan.logits_to - 1)]
    if plan.grad_to > plan.grad_from:
        touched += [stream.grad_round(plan.grad_from), stream.grad_round(plan.grad_to - 1)]
    if plan.sync >= 0:
        sync = stream.syncs[plan.sync]
        touched += [sync.first_round, sync.stop_round - 1]
    if not touched:
        return replace(plan, rounds=(0, 0))
    return replace(plan, rounds=(min(touched), max(touched) + 1))


def plan_exchanges(stream: Stream, lockstep: bool) -> list[ExchangePlan]:
    """All exchanges of the run, in order."""
    if stream.data_parallel:
        return [_with_rounds(stream, ExchangePlan(s.index, 0, 0, 0, 0, sync=s.index))
                for s in stream.syncs]
    if stream.private_labels:
        return [_with_rounds(stream, p) for p in _private_label_plans(stream, lockstep)]
    return [_with_rounds(stream, p) for p in _rocknet_plans(stream, lockstep)]


def _private_label_plans(stream: Stream, lockstep: bool) -> list[ExchangePlan]:
    plans: list[ExchangePlan] = []
    if lockstep:
        for r in range(stream.n_rounds):
            s, lg, g = stream.series_item(r), stream.logits_item(r), stream.grad_item(r)
            plans.append(ExchangePlan(
                len(plans),
                *((s, s + 1) if s is not None else (0, 0)),
                *((lg, lg + 1) if lg is not None else (0, 0)),
                *((g, g + 1) if g is not None else (0, 0)),
            ))
        return plans
    for a, b in stream.batches:
        plans.append(ExchangePlan(len(plans), a, b, 0, 0))
        if stream.needs_logits(a):
            plans.append(ExchangePlan(len(plans), 0, 0, a, b))
        if stream.needs_grad(a):
            plans.append(ExchangePlan(len(plans), 0, 0, 0, 0, a, b))
    return plans


def _rocknet_plans(stream: Stream, lockstep: bool) -> list[ExchangePlan]:
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
    # Pipelined as the radio rounds are: the exchange that carries the partial logits of
    # batch k also carries the series of batch k + 1 (series need no weights).
    pending: tuple[int, int] | None = None  # the batch whose logits are still to travel
    for a, b in stream.batches:
        la, lb = pending if pending is not None else (0, 0)
        plans.append(ExchangePlan(len(plans), a, b, la, lb))
        pending = (a, b) if stream.needs_logits(a) else None
    if pending is not None:
        plans.append(ExchangePlan(len(plans), 0, 0, *pending))
    return plans


def _empty_rx(exchange: int, n_devices: int, n_classes: int, series_length: int) -> Rx:
    return Rx.build(
        exchange=exchange,
        series_items=np.zeros(0, np.int32),
        series=np.zeros((0, series_length), np.int8),
        labels=np.zeros(0, np.int16),
        logits_items=np.zeros(0, np.int32),
        logits=np.zeros((0, n_devices, n_classes), np.float32),
        logits_mask=np.zeros((0, n_devices), bool),
        grads=np.zeros((0, n_classes), np.float32),
    )


def deliver(plan: ExchangePlan, txs: dict[int, Tx], air: Air) -> dict[int, Rx]:
    """What each responding device receives in this exchange (air already resolved).

    A payload reaches device ``d`` if its source sent it in this exchange and ``d`` decoded
    every packet of it in its round(s). A device always has its own payloads. Payloads of
    the wrong shape (a faulty node) are dropped, as if never sent.
    """
    stream = air.stream
    n, c, length = air.n_devices, air.n_classes, air.series_length
    # Who sent which series / logits (indexed by item).
    series_by_item: dict[int, tuple[np.ndarray, int]] = {}
    for tx in txs.values():
        if tx.series.shape[1:] != (length,):
            continue
        for row, item in enumerate(tx.series_items.tolist()):
            if plan.series_from <= item < plan.series_to and int(stream.owner[item]) == tx.device:
                series_by_item[item] = (tx.series[row], int(tx.labels[row]))
    logits_items = [
        t for t in range(plan.logits_from, plan.logits_to) if stream.needs_logits(t)
    ]
    row_of = {t: i for i, t in enumerate(logits_items)}
    sent = np.zeros((len(logits_items), n, c), np.float32)
    sent_mask = np.zeros((len(logits_items), n), bool)
    for tx in txs.values():
        if tx.logits.shape[1:] != (c,) or not 0 <= tx.device < n:
            continue
        for row, item in enumerate(tx.logits_items.tolist()):
            if item in row_of:
                sent[row_of[item], tx.device] = tx.logits[row]
                sent_mask[row_of[item], tx.device] = True
    grads_by_item = _sent_grads(plan, txs, air)
    syncs = _sent_syncs(plan, txs, air)

    series_rounds = [t for t in range(plan.series_from, plan.series_to) if t in series_by_item]
    # Looked up once per item, not once per item and device: [item] -> series_ok[N] and
    # [item, receiver, source] -> that source's logits decoded and sent.
    series_ok = {t: _outcome(air, stream.series_round(t)).series_ok for t in series_rounds}
    series_owner = {t: int(stream.owner[t]) for t in series_rounds}
    logits_ok = (np.stack([_outcome(air, stream.logits_round(t)).logits_ok for t in logits_items])
                 & sent_mask[:, None, :]) if logits_items else np.zeros((0, n, n), bool)
    out: dict[int, Rx] = {}
    for device in txs:
        s_items = [t for t in series_rounds if series_owner[t] != device and series_ok[t][device]]
        mask = logits_ok[:, device, :].copy()
        mask[:, device] = sent_mask[:, device]  # a device always has its own payloads
        logits = np.where(mask[:, :, None], sent, np.float32(0.0)).astype(np.float32)
        g_items = [
            t for t in sorted(grads_by_item)
            if int(stream.owner[t]) == device or _grad_ok(air, stream.grad_round(t))[device]
        ]
        sync_sources = [j for j in sorted(syncs[1]) if j != device and syncs[0][device, j]]
        out[device] = Rx.build(  # typed arrays built here: the receiver's decode validates
            exchange=plan.exchange,
            series_items=np.asarray(s_items, np.int32),
            series=np.asarray([series_by_item[t][0] for t in s_items], np.int8).reshape(len(s_items), length),
            labels=np.asarray([series_by_item[t][1] for t in s_items], np.int16),
            logits_items=np.asarray(logits_items, np.int32),
            logits=logits,
            logits_mask=mask,
            grad_items=np.asarray(g_items, np.int32),
            grads=np.asarray([grads_by_item[t] for t in g_items], np.float32).reshape(len(g_items), c),
            sync_sources=np.asarray(sync_sources, np.int32),
            sync_payloads=_stack_payloads([syncs[1][j] for j in sync_sources], syncs[2]),
        )
    return out


def _sent_grads(plan: ExchangePlan, txs: dict[int, Tx], air: Air) -> dict[int, np.ndarray]:
    """Private labels: item -> the ``g`` its owner sent in this exchange."""
    stream = air.stream
    grads: dict[int, np.ndarray] = {}
    if plan.grad_to <= plan.grad_from:
        return grads
    for tx in txs.values():
        if tx.grads.shape[1:] != (air.n_classes,):
            continue
        for row, item in enumerate(tx.grad_items.tolist()):
            if (plan.grad_from <= item < plan.grad_to and stream.needs_grad(item)
                    and int(stream.owner[item]) == tx.device):
                grads[item] = tx.grads[row]
    return grads


def _sent_syncs(plan: ExchangePlan, txs: dict[int, Tx], air: Air
                ) -> tuple[np.ndarray, dict[int, np.ndarray], int]:
    """Data-parallel: ``(ok[N, N], source -> message, message bytes)`` of this exchange's sync.

    ``ok[d, j]``: device ``d`` decoded every packet of ``j``'s message in every round of
    the sync. A message of the wrong length is dropped.
    """
    n = air.n_devices
    ok = np.zeros((n, n), dtype=bool)
    if plan.sync < 0:
        return ok, {}, 0
    sync = air.stream.syncs[plan.sync]
    messages = {
        tx.device: tx.sync_payload for tx in txs.values()
        if tx.sync_payload.shape == (sync.message_bytes,) and 0 <= tx.device < n
    }
    ok[:] = True
    for r in range(sync.first_round, sync.stop_round):
        sync_ok = _outcome(air, r).sync_ok
        assert sync_ok is not None
        ok &= sync_ok
    return ok, messages, sync.message_bytes


def _stack_payloads(payloads: list[np.ndarray], n_bytes: int) -> np.ndarray:
    if not payloads:
        return np.zeros((0, n_bytes), np.uint8)
    return np.stack(payloads).astype(np.uint8, copy=False)


def _grad_ok(air: Air, round_no: int) -> np.ndarray:
    ok = _outcome(air, round_no).grad_ok
    assert ok is not None
    return ok


def _outcome(air: Air, round_no: int) -> RoundOutcome:
    outcome = air.outcome(round_no)
    if outcome is None:
        raise RuntimeError(f"round {round_no} was not resolved before delivery (a planning bug)")
    return outcome


def silent_rx(plan: ExchangePlan, air: Air) -> Rx:
    """The RX of a device that missed the deadline: it was off the air this exchange."""
    return _empty_rx(plan.exchange, air.n_devices, air.n_classes, air.series_length)
