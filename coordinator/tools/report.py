"""``rocknet report RUN_DIR``: PNG plots and a one-page markdown summary of a finished run.

Reads what a run leaves (``config.json``, ``metrics.jsonl``, ``summary.json``; see
:mod:`coordinator.service.results`) and writes into ``RUN_DIR/report/`` (or ``--out``):

* ``accuracy_loss.png``: train and eval accuracy and loss against epochs. Per-epoch values are
  the initiator's running metrics as the round records carry them (the last record of each
  epoch); the final evaluation is the summary's test accuracy. Where the run has per-pass
  metrics in ``summary.json`` (``per_node[].passes``) those are used instead (exact).
* ``energy_per_node.png``: each node's energy, stacked CPU / TX / RX / low power.
* ``radio_on_per_node.png``: each node's radio-on time.
* ``prr.png``: the configured link PRR of the topology (heat map) and, observed, each
  device's decode ratio (share of the other devices' packets it decoded, over the run): the
  metrics record reception per device, not per link.
* ``faults.png``: the injected faults and node up/down events on the virtual time axis, over
  the per-round decode ratio.
* ``report.md``: the run's key numbers and the figures, by name.

Virtual time of round ``r`` is the sum of the modeled latencies of rounds ``0 .. r-1``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.tools.run_dir import read_run

FIGURES = {
    "accuracy_loss.png": "Train and eval accuracy and loss against epochs",
    "energy_per_node.png": "Energy per node, stacked CPU / TX / RX / low power",
    "radio_on_per_node.png": "Radio-on time per node",
    "prr.png": "Link PRR: configured (topology) and observed (per-node decode ratio)",
    "faults.png": "Injected faults and node events on the virtual time axis",
}
#: Events drawn on the fault timeline.
TIMELINE_EVENTS = ("fault", "node_down", "node_up", "node_rejoined", "paused", "resumed")
PART_LABELS = (("cpu_mj", "CPU"), ("tx_mj", "TX"), ("rx_mj", "RX"), ("low_power_mj", "low power"))


# ----------------------------------------------------------------------------- data


def round_start_times(rounds: list[dict[str, Any]]) -> dict[int, float]:
    """Virtual start time (s) of every recorded round: the sum of the earlier latencies."""
    t, out = 0.0, {}
    for r in rounds:
        out[r["round"]] = t
        t += float(r["latency_s"])
    out[rounds[-1]["round"] + 1 if rounds else 0] = t
    return out


def epoch_curves(summary: dict[str, Any], rounds: list[dict[str, Any]]) -> dict[str, dict[int, float]]:
    """``{"train_accuracy"|"train_loss"|"eval_accuracy"|"eval_loss": {epoch: value}}``."""
    curves: dict[str, dict[int, float]] = {k: {} for k in ("train_accuracy", "train_loss", "eval_accuracy", "eval_loss")}
    passes = _initiator_passes(summary)
    if passes:
        for p in passes:
            if p.get("kind") not in ("train", "eval") or p.get("accuracy") is None:
                continue
            curves[f"{p['kind']}_accuracy"][int(p["epoch"])] = float(p["accuracy"])
            if p.get("loss") is not None:
                curves[f"{p['kind']}_loss"][int(p["epoch"])] = float(p["loss"])
        return curves
    for r in rounds:
        if r.get("train_accuracy") is not None and r.get("epoch") is not None and r["epoch"] >= 0:
            curves["train_accuracy"][int(r["epoch"])] = float(r["train_accuracy"])
            if r.get("train_loss") is not None:
                curves["train_loss"][int(r["epoch"])] = float(r["train_loss"])
        if r.get("eval_accuracy") is not None and r.get("eval_epoch") is not None:
            curves["eval_accuracy"][int(r["eval_epoch"])] = float(r["eval_accuracy"])
            if r.get("eval_loss") is not None:
                curves["eval_loss"][int(r["eval_epoch"])] = float(r["eval_loss"])
    last_epoch = int(summary.get("epochs") or 0) - 1
    if summary.get("test_accuracy") is not None and last_epoch >= 0:
        curves["eval_accuracy"].setdefault(last_epoch, float(summary["test_accuracy"]))
    return curves


def _initiator_passes(summary: dict[str, Any]) -> list[dict[str, Any]] | None:
    for node in sorted(summary.get("per_node", []), key=lambda n: n["id"]):
        if node.get("passes"):
            return list(node["passes"])
    return None


def observed_decode_ratio(rounds: list[dict[str, Any]], n_devices: int) -> np.ndarray:
    """Per device: mean over rounds of the share of other live devices' packets it decoded."""
    vals = [r["decoded_ratio"] for r in rounds if len(r.get("decoded_ratio", [])) == n_devices]
    if not vals:
        return np.full(n_devices, np.nan)
    return np.asarray(vals, dtype=float).mean(axis=0)


# ----------------------------------------------------------------------------- plots


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def plot_accuracy_loss(curves: dict[str, dict[int, float]], path: Path, title: str) -> Path:
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, style, label in (("train_accuracy", "o-", "train"), ("eval_accuracy", "s-", "eval (test set)")):
        pts = sorted(curves[key].items())
        if pts:
            ax1.plot([e + 1 for e, _ in pts], [v for _, v in pts], style, label=label)
    ax1.set_ylim(0, 1.02)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("accuracy")
    ax1.set_title(f"{title}: accuracy")
    for key, style, label in (("train_loss", "o-", "train"), ("eval_loss", "s-", "eval (test set)")):
        pts = sorted(curves[key].items())
        if pts:
            ax2.plot([e + 1 for e, _ in pts], [v for _, v in pts], style, label=label)
    if not curves["eval_loss"]:
        ax2.text(0.98, 0.95, "eval loss not recorded by this run", transform=ax2.transAxes,
                 ha="right", va="top", fontsize=8, color="gray")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("cross-entropy")
    ax2.set_title(f"{title}: loss")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    return _save(fig, path)


def plot_energy(per_node: list[dict[str, Any]], path: Path) -> Path:
    plt = _plt()
    ids = [n["id"] for n in per_node]
    fig, ax = plt.subplots(figsize=(max(6, 0.4 * len(ids) + 2), 4))
    bottom = np.zeros(len(ids))
    for key, label in PART_LABELS:
        vals = np.array([n.get("energy_parts_mj", {}).get(key, 0.0) for n in per_node])
        ax.bar(range(len(ids)), vals, bottom=bottom, label=label)
        bottom += vals
    ax.set_xticks(range(len(ids)), [str(i) for i in ids])
    ax.set_xlabel("device")
    ax.set_ylabel("energy (mJ)")
    ax.set_title("energy per node over the run")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_radio_on(per_node: list[dict[str, Any]], virtual_time_s: float, path: Path) -> Path:
    plt = _plt()
    ids = [n["id"] for n in per_node]
    on = [n.get("radio_on_s", 0.0) for n in per_node]
    fig, ax = plt.subplots(figsize=(max(6, 0.4 * len(ids) + 2), 4))
    ax.bar(range(len(ids)), on, color="tab:orange")
    ax.set_xticks(range(len(ids)), [str(i) for i in ids])
    ax.set_xlabel("device")
    ax.set_ylabel("radio on (s)")
    share = f" (of {virtual_time_s:.1f} s virtual time)" if virtual_time_s > 0 else ""
    ax.set_title("radio-on time per node" + share)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_prr(topology: dict[str, Any], observed: np.ndarray, path: Path) -> Path:
    plt = _plt()
    prr = np.asarray(topology.get("prr", []), dtype=float)
    roles = topology.get("roles", ["compute"] * len(prr))
    labels = []
    d = 0
    for i, role in enumerate(roles):
        if role == "compute":
            labels.append(f"d{d}")
            d += 1
        else:
            labels.append(f"r{i}")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [1.1, 1]})
    if prr.size:
        shown = prr.copy()
        np.fill_diagonal(shown, np.nan)  # no link to itself
        im = ax1.imshow(shown, vmin=0, vmax=1, cmap="viridis")
        fig.colorbar(im, ax=ax1, fraction=0.046, pad=0.04, label="PRR")
        step = max(1, len(labels) // 20)
        ax1.set_xticks(range(0, len(labels), step), labels[::step], rotation=90, fontsize=7)
        ax1.set_yticks(range(0, len(labels), step), labels[::step], fontsize=7)
    ax1.set_title("configured link PRR (topology)")
    ax1.set_xlabel("receiver")
    ax1.set_ylabel("sender")
    ax2.bar(range(len(observed)), observed, color="tab:green")
    ax2.set_ylim(0, 1.05)
    ax2.set_xticks(range(len(observed)), [str(i) for i in range(len(observed))], fontsize=7)
    ax2.set_xlabel("device")
    ax2.set_ylabel("decoded share of others' packets")
    ax2.set_title("observed: per-node decode ratio\n(per-link reception is not recorded)", fontsize=10)
    ax2.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_faults(rounds: list[dict[str, Any]], events: list[dict[str, Any]], path: Path) -> Path:
    plt = _plt()
    starts = round_start_times(rounds)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 4.8), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    t = np.array([starts[r["round"]] for r in rounds])
    ratio = np.array([np.mean(r["decoded_ratio"]) if r.get("decoded_ratio") else np.nan for r in rounds])
    alive = np.array([sum(r.get("alive", [])) for r in rounds])
    ax1.plot(t, ratio, lw=0.8, label="mean decode ratio")
    active = np.array([bool(r.get("loss")) for r in rounds])
    if active.any():
        ax1.fill_between(t, 0, 1.05, where=active, color="red", alpha=0.12, step="post", label="faults active")
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("decode ratio")
    ax1b = ax1.twinx()
    ax1b.plot(t, alive, color="gray", lw=0.8, ls="--", label="devices alive")
    ax1b.set_ylabel("devices alive", color="gray")
    ax1b.set_ylim(0, max(1, int(alive.max(initial=1))) * 1.1)
    handles = ax1.get_legend_handles_labels()[0] + ax1b.get_legend_handles_labels()[0]
    ax1.legend(handles=handles, fontsize=8, loc="lower left")
    ax1.set_title("faults on the virtual time axis")
    shown = [e for e in events if e.get("event") in TIMELINE_EVENTS]
    colors = {"fault": "red", "node_down": "black", "node_up": "green", "node_rejoined": "green",
              "paused": "gray", "resumed": "gray"}
    end = max(starts.values()) if starts else 0.0
    for i, e in enumerate(shown):
        when = starts.get(int(e.get("effective_round", e["round"])), end)
        ax2.axvline(when, color=colors.get(e["event"], "blue"), lw=1)
        ax1.axvline(when, color=colors.get(e["event"], "blue"), lw=0.6, alpha=0.5)
        ax2.text(when, 0.1 + 0.8 * ((i % 4) / 4), _event_label(e), fontsize=7, rotation=0,
                 ha="left", va="bottom")
    if not shown:
        ax2.text(0.5, 0.5, "no faults injected, no node went down", transform=ax2.transAxes,
                 ha="center", va="center", color="gray")
    ax2.set_yticks([])
    ax2.set_xlabel("virtual time (s)")
    return _save(fig, path)


def _event_label(e: dict[str, Any]) -> str:
    if e["event"] == "fault":
        args = e.get("args") or {}
        text = " ".join(f"{k}={v}" for k, v in args.items())
        return f"{e.get('command')} {text}".strip()
    if "device" in e:
        return f"{e['event']} d{e['device']}"
    return str(e["event"])


# ----------------------------------------------------------------------------- report


def make_report(run_dir: Path, out_dir: Path | None = None) -> Path:
    """Write the figures and ``report.md`` of ``run_dir``; returns the markdown's path."""
    run_dir = Path(run_dir)
    config, summary, rounds, events = read_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    per_node = sorted(summary.get("per_node", []), key=lambda n: n["id"])
    n_devices = int(summary.get("nodes") or len(per_node))
    title = f"{summary.get('dataset')} N={n_devices}"
    curves = epoch_curves(summary, rounds)
    observed = observed_decode_ratio(rounds, n_devices)
    plot_accuracy_loss(curves, out / "accuracy_loss.png", title)
    plot_energy(per_node, out / "energy_per_node.png")
    plot_radio_on(per_node, float(summary.get("virtual_time_s") or 0.0), out / "radio_on_per_node.png")
    plot_prr(config.get("topology", {}), observed, out / "prr.png")
    plot_faults(rounds, events, out / "faults.png")
    md = out / "report.md"
    md.write_text(report_markdown(config, summary, rounds, events, curves, observed))
    return md


def report_markdown(config: dict[str, Any], summary: dict[str, Any], rounds: list[dict[str, Any]],
                    events: list[dict[str, Any]], curves: dict[str, dict[int, float]],
                    observed: np.ndarray) -> str:
    """The one-page summary (figures referenced by file name)."""
    per_node = summary.get("per_node", [])

    def f(x: Any, d: int = 4) -> str:
        return "n/a" if x is None else f"{x:.{d}f}"

    energy = [n["energy_mj"] for n in per_node]
    ram = [n["ram_bytes"] for n in per_node]
    lat = [r["latency_s"] for r in rounds]
    lines = [
        f"# Run report: {summary.get('dataset')}, {summary.get('nodes')} nodes, {summary.get('protocol')}",
        "",
        "| | |",
        "|---|---|",
        f"| phase | {summary.get('phase')} ({summary.get('rounds')} of {summary.get('rounds_planned')} rounds, "
        f"{summary.get('epochs')} epochs, {summary.get('mode')} mode) |",
        f"| test accuracy (initiator) | {f(summary.get('test_accuracy'))} |",
        f"| centralized reference | {f(summary.get('centralized_test_accuracy'))} |",
        f"| virtual time | {f(summary.get('virtual_time_s'), 1)} s "
        f"(mean round {f(1e3 * float(np.mean(lat)) if lat else None, 1)} ms) |",
        f"| wall time | {f(summary.get('wall_time_s'), 1)} s (x{f(summary.get('realtime_factor'), 0)} real time) |",
        f"| packet loss ratio | {f(summary.get('packet_loss_ratio'))} |",
        f"| energy per node | mean {f(float(np.mean(energy)) if energy else None, 1)} mJ, "
        f"max {f(max(energy) if energy else None, 1)} mJ |",
        f"| RAM per node (ledger) | max {max(ram) if ram else 'n/a'} B ({f(max(ram) / 1024 if ram else None, 1)} KiB) |",
        f"| mean decode ratio | {f(float(np.nanmean(observed)) if observed.size else None)} |",
        "",
        "## Figures",
        "",
    ]
    notes = {
        "accuracy_loss.png": "" if curves["eval_loss"] else " (eval loss not recorded by this run's coordinator)",
        "prr.png": " (observed is per node, not per link: the metrics record each device's decode ratio)",
    }
    for name, caption in FIGURES.items():
        lines += [f"**{name}**: {caption}{notes.get(name, '')}.", "", f"![{caption}]({name})", ""]
    shown = [e for e in events if e.get("event") in TIMELINE_EVENTS]
    lines += ["## Events", ""]
    if shown:
        for e in shown[:30]:
            lines.append(f"- round {e.get('effective_round', e['round'])}: {_event_label(e)}")
        if len(shown) > 30:
            lines.append(f"- ... and {len(shown) - 30} more (metrics.jsonl)")
    else:
        lines.append("No faults were injected and no node went down.")
    lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> None:
    """Add ``report`` to the ``rocknet`` command's subparsers."""
    p = subparsers.add_parser("report", help="plots and a one-page markdown summary of a run directory",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path, help="a run directory (rocknet run --out DIR)")
    p.add_argument("--out", type=Path, default=None, help="where to write (default RUN_DIR/report)")


def main(args: argparse.Namespace) -> int:
    """Run ``rocknet report``; 0 on success, 2 when RUN_DIR is not a finished run."""
    try:
        md = make_report(args.run_dir, args.out)
    except ValueError as exc:
        print(f"rocknet report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {md}")
    for name in FIGURES:
        print(f"  {md.parent / name}")
    return 0


def _standalone(argv: list[str] | None = None) -> int:
    from coordinator.ui.subcommand import run_standalone

    return run_standalone("report", add_parser, main, argv)


__all__ = ["FIGURES", "add_parser", "epoch_curves", "main", "make_report", "round_start_times"]

if __name__ == "__main__":
    sys.exit(_standalone())
