"""What a run leaves behind: ``config.json``, ``metrics.jsonl`` (a line per round and per
event) and ``summary.json``, plus the final table printed to the terminal.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from coordinator.engine.values import plain_values

from protocol.files import atomic_write_text
from protocol.wire.frames import Final


def default_run_dir(dataset: str, nodes: int, kind: str = "") -> Path:
    """``runs/[<kind>-]<dataset>-<N>n-<time>``: where a run goes without ``--out``."""
    prefix = f"{kind}-" if kind else ""
    return Path("runs") / f"{prefix}{dataset}-{nodes}n-{time.strftime('%Y%m%d-%H%M%S')}"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` via a temp file + rename (never a half-written file)."""
    atomic_write_text(path, json.dumps(plain_values(data), indent=2), fsync=True)


class RunWriter:
    """Appends metrics as the run goes; writes the summary at the end."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._metrics: TextIO = open(self.out_dir / "metrics.jsonl", "a", buffering=1)

    def config(self, data: dict[str, Any]) -> None:
        write_json_atomic(self.out_dir / "config.json", data)

    def record(self, record: dict[str, Any], plain: bool = False) -> None:
        """Append one line; ``plain=True`` when ``record`` is already JSON-safe."""
        self._metrics.write(json.dumps(record if plain else plain_values(record)) + "\n")

    def flush(self) -> int:
        """Flush metrics.jsonl to the OS; returns its length in bytes."""
        self._metrics.flush()
        return self._metrics.tell()

    def truncate(self, length: int) -> None:
        """Cut metrics.jsonl back to ``length`` bytes (what a checkpoint had seen)."""
        self._metrics.flush()
        self._metrics.truncate(length)
        self._metrics.seek(length)

    def weights(self, finals: dict[int, Final]) -> Path:
        """Every device's final W_i and b, gathered at STOP (for equivalence checks)."""
        path = self.out_dir / "weights.npz"
        arrays: dict[str, np.ndarray] = {}
        for device, final in sorted(finals.items()):
            arrays[f"W_{device}"] = np.asarray(final.weights)
            arrays[f"b_{device}"] = np.asarray(final.bias)
        np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy stubs type **kwds as allow_pickle
        return path

    def summary(self, data: dict[str, Any]) -> Path:
        path = self.out_dir / "summary.json"
        write_json_atomic(path, data)
        return path

    def close(self) -> None:
        self._metrics.close()


def print_summary_table(summary: dict[str, Any], console: Any | None = None) -> None:
    """The final table: accuracy, then per node RAM, energy, radio-on time, packets."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    acc = summary.get("test_accuracy")
    ref = summary.get("centralized_test_accuracy")
    head = (
        f"[bold]{summary['dataset']}[/]  nodes={summary['nodes']}  protocol={summary['protocol']}  "
        f"epochs={summary['epochs']}  rounds={summary['rounds']}\n"
        f"test accuracy: [bold]{_fmt(acc)}[/]   centralized reference: {_fmt(ref)}   "
        f"virtual time: {summary['virtual_time_s']:.1f} s   wall time: {summary['wall_time_s']:.1f} s"
    )
    console.print(head)
    table = Table(title="per node")
    for col in ("id", "name", "status", "RAM B", "energy mJ", "radio-on s", "rx pkts", "lost pkts",
                "compute s (MCU)"):
        table.add_column(col, justify="right")
    for n in summary["per_node"]:
        table.add_row(
            str(n["id"]), str(n.get("name", "")), str(n.get("status", "")),
            str(n["ram_bytes"]), f"{n['energy_mj']:.1f}", f"{n['radio_on_s']:.2f}",
            str(n["rx_packets"]), str(n["lost_packets"]), f"{n['compute_s_modeled']:.2f}",
        )
    console.print(table)


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4f}"
