"""``rocknet monitor``: follow a running coordinator, as a live dashboard or as JSON lines.

One concept a module:

* :mod:`.state`: :class:`MonitorState`, a ``status`` snapshot with the feed folded in (pure);
* :mod:`.follow`: :class:`Follower`, attaching to the coordinator's feed and control sockets
  and keeping a state in step (resyncs on a gap);
* :mod:`.render`: :func:`render_dashboard`, a rich renderable of a state (pure), with its
  panels in :mod:`.node_table`, :mod:`.topology_panel` and the words in :mod:`.text`;
* :mod:`.links`: :func:`link_view`, the topology with the injected faults applied;
* :mod:`.output`: :class:`Output`, the ``--jsonl`` lines;
* :mod:`.command`: :func:`run_monitor`, the command itself.
"""

from coordinator.ui.monitor.command import run_monitor
from coordinator.ui.monitor.follow import (
    CoordinatorGone,
    Follower,
    SnapshotRefused,
    take_snapshot,
)
from coordinator.ui.monitor.history import History
from coordinator.ui.monitor.links import LinkView, link_view
from coordinator.ui.monitor.output import Output
from coordinator.ui.monitor.render import View, render_dashboard
from coordinator.ui.monitor.state import Applied, EventEntry, MonitorState, NodeRow
from coordinator.ui.monitor.text import event_text, fault_lines, fault_text, sparkline

__all__ = [
    "Applied", "CoordinatorGone", "EventEntry", "Follower", "History", "LinkView", "MonitorState",
    "NodeRow", "Output", "SnapshotRefused", "View", "event_text", "fault_lines", "fault_text",
    "link_view", "render_dashboard", "run_monitor", "sparkline", "take_snapshot",
]
