"""Who is in the run: device ids by node name, ZeroMQ identities, up/silent/down status.

A node named ``node-NN`` or ``nodeNN`` (local runs, compose) is device NN, whatever order the
nodes register in; any other name gets the lowest id no such name claims, in registration
order. Ids are remembered by name, so a restarted node (same name) gets its id back. A node that misses an exchange's deadline is *silent* for it; after
``down_after`` silent exchanges in a row (or when its socket is gone) it is *down*; any frame
from it brings it back *up*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from protocol.wire.stats import TxStats

UP, SILENT, DOWN = "up", "silent", "down"
#: ``node-07`` / ``node07``: the device id is in the name.
_NUMBERED = re.compile(r"^node-?(\d{1,6})$")


def device_of_name(name: str) -> int | None:
    """The device id a name spells (``node-03`` -> 3), or None."""
    m = _NUMBERED.match(name)
    return int(m.group(1)) if m else None


@dataclass
class NodeEntry:
    """One registered device."""

    device: int
    name: str
    identity: bytes
    pid: int = 0
    status: str = UP
    silent_streak: int = 0
    joins: int = 1
    last_stats: TxStats | None = None  # of its latest TX in time
    forced_down: bool = False  # taken down by a control command (node-down)


class Registry:
    """Registration and liveness of the run's devices."""

    def __init__(self, n_devices: int, down_after: int = 3) -> None:
        if n_devices < 1:
            raise ValueError(f"n_devices must be >= 1, got {n_devices}")
        if down_after < 1:
            raise ValueError(f"down_after must be >= 1, got {down_after}")
        self.n_devices = n_devices
        self.down_after = down_after
        self._by_name: dict[str, NodeEntry] = {}
        self._by_identity: dict[bytes, NodeEntry] = {}
        self._by_device: dict[int, NodeEntry] = {}

    def register(self, name: str, identity: bytes, pid: int = 0) -> tuple[NodeEntry, bool]:
        """Admit ``name``; returns ``(entry, rejoined)``. Raises ``LookupError`` when full."""
        entry = self._by_name.get(name)
        if entry is not None:
            self._by_identity.pop(entry.identity, None)
            entry.identity = identity
            entry.pid = pid
            entry.status = UP
            entry.silent_streak = 0
            entry.joins += 1
            self._by_identity[identity] = entry
            return entry, True
        if len(self._by_name) >= self.n_devices:
            raise LookupError(
                f"the run already has its {self.n_devices} devices; node {name!r} is not needed "
                "(start it with the name of a registered node to replace that one)"
            )
        entry = NodeEntry(device=self._id_for(name), name=name, identity=identity, pid=pid)
        self._by_name[name] = entry
        self._by_identity[identity] = entry
        self._by_device[entry.device] = entry
        return entry, False

    def _id_for(self, name: str) -> int:
        spelled = device_of_name(name)
        if spelled is not None:
            if spelled >= self.n_devices:
                raise LookupError(f"node {name!r} is device {spelled}, but the run has devices "
                                  f"0..{self.n_devices - 1}: start node-00 .. node-{self.n_devices - 1:02d}")
            if spelled in self._by_device:
                raise LookupError(f"node {name!r} is device {spelled}, which "
                                  f"{self._by_device[spelled].name!r} already is")
            return spelled
        # Other names: the lowest free id, in registration order.
        return min(d for d in range(self.n_devices) if d not in self._by_device)

    def restore(self, device: int, name: str, joins: int, forced_down: bool) -> NodeEntry:
        """Re-create an entry from a coordinator checkpoint (nodes use their name as their
        ZeroMQ routing id, so the restarted coordinator can address them at once)."""
        entry = NodeEntry(device=device, name=name, identity=name.encode(), joins=joins,
                          forced_down=forced_down)
        self._by_name[name] = entry
        self._by_identity[entry.identity] = entry
        self._by_device[device] = entry
        return entry

    @property
    def complete(self) -> bool:
        return len(self._by_name) == self.n_devices

    @property
    def registered(self) -> int:
        return len(self._by_name)

    def by_identity(self, identity: bytes) -> NodeEntry | None:
        return self._by_identity.get(identity)

    def by_device(self, device: int) -> NodeEntry | None:
        return self._by_device.get(device)

    def entries(self) -> list[NodeEntry]:
        return [self._by_device[d] for d in sorted(self._by_device)]

    def reachable(self) -> list[NodeEntry]:
        """Entries the coordinator sends ROUNDs to (not down, not forced down)."""
        return [e for e in self.entries() if e.status != DOWN and not e.forced_down]

    def heard(self, entry: NodeEntry) -> bool:
        """A TX arrived in time. Returns True if the node came back from down/silent."""
        changed = entry.status != UP
        entry.status = UP
        entry.silent_streak = 0
        return changed

    def missed(self, entry: NodeEntry) -> bool:
        """A deadline passed without its TX. Returns True if it is now newly down."""
        entry.silent_streak += 1
        if entry.silent_streak >= self.down_after and entry.status != DOWN:
            entry.status = DOWN
            return True
        if entry.status == UP:
            entry.status = SILENT
        return False

    def gone(self, entry: NodeEntry) -> bool:
        """Its socket disappeared. Returns True if it was not down already."""
        changed = entry.status != DOWN
        entry.status = DOWN
        return changed

    def snapshot(self) -> list[dict[str, Any]]:
        return [
            {
                "id": e.device,
                "name": e.name,
                "status": DOWN if e.forced_down else e.status,
                "joins": e.joins,
                "pid": e.pid,
            }
            for e in self.entries()
        ]
