"""Control commands: status, pause, resume, stop, fault injection (scenarios: scenario.py).

Every command answers with a :class:`ControlReply`: ``ok``, a message, and the round from
which it takes effect (the first round the air has not resolved yet: the next exchange). A bad
command (unknown node, no such link, a value out of range) gets ``ok=False`` and changes
nothing. Node numbers are *topology* node ids (in the default layouts device ``d`` is node
``d`` and relays come after the devices).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from coordinator.engine.engine import RunState
from coordinator.engine.medium import Air
from coordinator.engine.setup import RunSetup
from coordinator.service.scenario import INJECT_COMMANDS, ScenarioEvent
from protocol.air.loss import LossError
from protocol.stream.placement import label_histograms
from protocol.wire.frames import Control, ControlReply

COMMANDS = INJECT_COMMANDS + ("status", "pause", "resume", "stop")


class ControlTarget(Protocol):
    """What control commands act on (the coordinator service satisfies it)."""

    @property
    def state(self) -> RunState: ...

    @property
    def air(self) -> Air: ...

    @property
    def setup(self) -> RunSetup: ...

    def event(self, event: str, **data: Any) -> None: ...

    def status(self) -> dict[str, Any]: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def request_stop(self, reason: str) -> None: ...


class ControlHandler:
    """Applies control commands to a running run (a :class:`ControlTarget`)."""

    def __init__(self, coordinator: ControlTarget, scenario: list[ScenarioEvent] | None = None) -> None:
        self.coordinator = coordinator
        self.pending = list(scenario or [])
        self._histograms: list[list[int]] | None = None  # status: train_label_histograms
        self._handlers: dict[str, Callable[[dict[str, Any]], str]] = {
            "link-down": self._link_down,
            "link-up": self._link_up,
            "loss": self._loss,
            "burst": self._burst,
            "jam": self._jam,
            "node-down": self._node_down,
            "node-up": self._node_up,
            "clear": self._clear,
        }

    def _label_histograms(self) -> list[list[int]]:
        """Per device, its training samples of each class (fixed at setup; computed once)."""
        if self._histograms is None:
            setup = self.coordinator.setup
            self._histograms = label_histograms(setup.y_train, setup.config.n_devices, setup.config.n_classes)
        return self._histograms

    @property
    def loss(self) -> Any:
        return self.coordinator.setup.loss

    def handle(self, msg: Control) -> ControlReply:
        """Run one command; never raises for bad input."""
        c = self.coordinator
        effective = c.air.next_round
        if msg.command == "status":
            data = dict(c.status(), train_label_histograms=self._label_histograms())
            return ControlReply(ok=True, message="status", effective_round=effective, data=data)
        if msg.command == "pause":
            c.pause()
            return ControlReply(ok=True, message="paused", effective_round=effective, data={})
        if msg.command == "resume":
            c.resume()
            return ControlReply(ok=True, message="resumed", effective_round=effective, data={})
        if msg.command == "stop":
            c.request_stop(str(msg.args.get("reason", "stopped by operator")))
            return ControlReply(ok=True, message="stopping", effective_round=effective, data={})
        handler = self._handlers.get(msg.command)
        if handler is None:
            return ControlReply(
                ok=False, message=f"unknown command {msg.command!r}; use one of {COMMANDS}",
                effective_round=-1, data={},
            )
        try:
            text = handler(dict(msg.args))
        except (LossError, ValueError, TypeError, KeyError) as exc:
            return ControlReply(ok=False, message=f"{msg.command}: {exc}", effective_round=-1, data={})
        c.event("fault", command=msg.command, args=dict(msg.args), effective_round=effective,
                faults=self.loss.describe())
        return ControlReply(
            ok=True, message=f"{text}; takes effect from round {effective}",
            effective_round=effective, data={"faults": self.loss.describe()},
        )

    def apply_due(self, next_round: int) -> None:
        """Fire scenario events that are due before the next exchange."""
        vt = self.coordinator.air.virtual_time_s
        due = [e for e in self.pending if e.due(next_round, vt)]
        for event in due:
            self.pending.remove(event)
            reply = self.handle(Control(command=event.command, args=event.args))
            self.coordinator.event("scenario", command=event.command, args=event.args,
                                   ok=reply.ok, message=reply.message)

    # ------------------------------------------------------------------ commands
    @staticmethod
    def _link_arg(args: dict[str, Any]) -> list[int] | None:
        link = args.get("link")
        if link is None:
            return None
        if not isinstance(link, (list, tuple)) or len(link) != 2:
            raise ValueError(f"link must be two node ids, got {link!r}")
        return [int(link[0]), int(link[1])]

    def _link_down(self, args: dict[str, Any]) -> str:
        a, b = int(args["a"]), int(args["b"])
        self.loss.link_down(a, b, directed=bool(args.get("directed", False)))
        return f"link {a}-{b} down"

    def _link_up(self, args: dict[str, Any]) -> str:
        a, b = int(args["a"]), int(args["b"])
        self.loss.link_up(a, b, directed=bool(args.get("directed", False)))
        return f"link {a}-{b} up"

    def _loss(self, args: dict[str, Any]) -> str:
        p = float(args["p"])
        link = self._link_arg(args)
        self.loss.set_bernoulli(p, link=link)
        return f"loss {p} on {'link ' + str(link) if link else 'every link'}"

    def _burst(self, args: dict[str, Any]) -> str:
        p, r = float(args["p"]), float(args["r"])
        link = self._link_arg(args)
        self.loss.set_gilbert_elliott(p, r, link=link)
        return f"Gilbert-Elliott bursts p={p} r={r} on {'link ' + str(link) if link else 'every link'}"

    def _jam(self, args: dict[str, Any]) -> str:
        nodes = args.get("nodes")
        region = args.get("region")
        prr = float(args.get("prr", 0.0))
        start = self.coordinator.air.next_round
        rounds = args.get("rounds")
        to_round = None if rounds is None else start + int(rounds)
        if rounds is not None and int(rounds) < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        jam_id = self.loss.jam(nodes=nodes, region=region, prr_factor=prr,
                               from_round=start, to_round=to_round)
        until = "" if to_round is None else f" until round {to_round}"
        return f"jammer {jam_id} on {nodes or region} (PRR x{prr}){until}"

    def _node_down(self, args: dict[str, Any]) -> str:
        node = int(args["node"])
        self.loss.node_down(node)
        return f"node {node} down"

    def _node_up(self, args: dict[str, Any]) -> str:
        node = int(args["node"])
        self.loss.node_up(node)
        return f"node {node} up"

    def _clear(self, args: dict[str, Any]) -> str:
        self.loss.clear()
        return "every fault cleared"
