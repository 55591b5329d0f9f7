"""A loss model's faults as plain values: the status/monitor listing and the checkpoint state.

:func:`describe_faults` lists the active faults as msgpack-able dicts; :func:`faults_to_state`
and :func:`faults_from_state` write and read back every fault and every Gilbert–Elliott chain
state (checkpoints).
"""

from __future__ import annotations

from typing import Any, Callable

from protocol.air.faults import Faults, Jam, LossError
from protocol.air.gilbert_elliott import GEParams


def describe_faults(faults: Faults) -> list[dict[str, Any]]:
    """Active faults as plain dicts (msgpack-able), for status and the monitor."""
    out: list[dict[str, Any]] = []
    if faults.p_global > 0:
        out.append({"kind": "bernoulli", "p": faults.p_global, "link": None})
    for (a, b), p in sorted(faults.p_link.items()):
        out.append({"kind": "bernoulli", "p": p, "link": [a, b]})
    if faults.ge_global is not None:
        g = faults.ge_global
        out.append({"kind": "gilbert_elliott", "link": None, "p": g.p, "r": g.r,
                    "loss_good": g.loss_good, "loss_bad": g.loss_bad})
    for (a, b), g in sorted(faults.ge_link.items()):
        out.append({"kind": "gilbert_elliott", "link": [a, b], "p": g.p, "r": g.r,
                    "loss_good": g.loss_good, "loss_bad": g.loss_bad,
                    "bad": faults.ge_state.get((a, b), False)})
    for a, b in sorted(faults.down_links):
        out.append({"kind": "link_down", "link": [a, b]})
    for n in sorted(faults.down_nodes):
        out.append({"kind": "node_down", "node": n})
    for j in faults.jams:
        out.append({"kind": "jam", "id": j.jam_id, "nodes": list(j.nodes),
                    "region": None if j.region is None else list(j.region),
                    "prr_factor": j.prr_factor, "from_round": j.from_round,
                    "to_round": j.to_round})
    return out


def faults_to_state(faults: Faults) -> dict[str, Any]:
    """Every fault and every Gilbert–Elliott chain state, as plain values (checkpoints)."""
    def ge(g: GEParams | None) -> list[float] | None:
        return None if g is None else [g.p, g.r, g.loss_good, g.loss_bad]

    return {
        "p_global": faults.p_global,
        "p_link": [[a, b, p] for (a, b), p in sorted(faults.p_link.items())],
        "ge_global": ge(faults.ge_global),
        "ge_link": [[a, b, *ge(g)] for (a, b), g in sorted(faults.ge_link.items())],  # type: ignore[misc]
        "ge_state": [[a, b, bool(v)] for (a, b), v in sorted(faults.ge_state.items())],
        "down_links": sorted([a, b] for a, b in faults.down_links),
        "down_nodes": sorted(faults.down_nodes),
        "jams": [[j.jam_id, list(j.nodes), None if j.region is None else list(j.region),
                  j.prr_factor, j.from_round, j.to_round] for j in faults.jams],
        "next_jam": faults.next_jam,
        "last_round": faults.last_round,
    }


def _region(values: Any) -> tuple[float, float, float]:
    """A jam region ``(x_m, y_m, radius_m)`` read back from a saved state."""
    x_m, y_m, radius_m = (float(v) for v in values)
    return x_m, y_m, radius_m


def faults_from_state(state: dict[str, Any], check_node: Callable[[Any], int]) -> Faults:
    """Read :func:`faults_to_state`'s output back; raises :class:`LossError` if malformed.

    ``check_node`` validates a node id of the downed nodes (its :class:`LossError` is reported
    as a malformed state); link endpoints are left to the caller.
    """
    try:
        p_link = {(int(a), int(b)): float(p) for a, b, p in state["p_link"]}
        ge_global = None if state["ge_global"] is None else GEParams(*map(float, state["ge_global"]))
        ge_link = {(int(x[0]), int(x[1])): GEParams(*map(float, x[2:6])) for x in state["ge_link"]}
        ge_state = {(int(a), int(b)): bool(v) for a, b, v in state["ge_state"]}
        down_links = {(int(a), int(b)) for a, b in state["down_links"]}
        down_nodes = {check_node(n) for n in state["down_nodes"]}
        jams = [Jam(int(i), tuple(int(n) for n in nodes), None if reg is None else _region(reg),
                    float(f), int(fr), None if to is None else int(to))
                for i, nodes, reg, f, fr, to in state["jams"]]
        p_global = float(state["p_global"])
        next_jam, last_round = int(state["next_jam"]), int(state["last_round"])
    except (KeyError, TypeError, ValueError) as exc:
        raise LossError(f"loss state is malformed: {exc}") from exc
    return Faults(p_global, p_link, ge_global, ge_link, ge_state, down_links, down_nodes, jams,
                  next_jam, last_round)
