"""The ``rocknet`` command.

- ``rocknet run``: coordinator + N local node processes, trains, prints the table, writes DIR/.
- ``rocknet coordinator``: the coordinator alone (nodes connect from elsewhere: containers).
- ``rocknet node``: one device process (runs ``python -m node``; the coordinator package
  never imports the node package).
- ``rocknet status | pause | resume | stop | inject ...``: talk to a running coordinator.
- ``rocknet monitor``: the live dashboard.
- ``--config exp.toml`` on run, coordinator, sweep and compare: flags from an experiment file
  (:mod:`coordinator.ui.experiment_file`); flags on the command line override it.

Every flag can also come from the environment as ``ROCKNET_<FLAG>`` (e.g. ``ROCKNET_NODES``),
which is how docker-compose.yml configures the containers.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from coordinator.ui.experiment_file import CONFIG_COMMANDS, add_config_flag, parse_with_config
from coordinator.ui.run_command import cmd_run
from coordinator.ui.run_command import run_args as _run_args  # noqa: F401  (tests use the old name)

DEFAULT_NODE_PORT = 7100
DEFAULT_FEED_PORT = 7101
DEFAULT_CONTROL_PORT = 7102


def _env(name: str, default: Any) -> Any:
    value = os.environ.get(f"ROCKNET_{name.upper().replace('-', '_')}")
    if value is None or value.strip() == "":  # an empty variable counts as unset
        return default
    if isinstance(default, bool):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    return value



def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nodes", type=int, default=_env("nodes", 20), help="devices (default %(default)s)")
    p.add_argument("--dataset", default=_env("dataset", "GunPoint"),
                   help="UCR dataset: bundled (GunPoint, ItalyPowerDemand, OSULeaf, ...) or a folder "
                        "under --data-dir (default %(default)s)")
    p.add_argument("--data-dir", type=Path, default=_env("data_dir", None),
                   help="UCR 2018 archive root: <dir>/<Name>/<Name>_TRAIN.tsv")
    p.add_argument("--epochs", type=int, default=_env("epochs", None),
                   help="training epochs (default: the model's default)")
    p.add_argument("--batch-size", type=int, default=_env("batch_size", None))
    p.add_argument("--protocol", choices=("mixer", "mixer-coordinated", "glossy"), default=_env("protocol", "mixer"))
    p.add_argument("--loss", type=float, default=_env("loss", 0.0),
                   help="uniform i.i.d. packet drop probability on every link (default 0)")
    p.add_argument("--topology", type=Path, default=_env("topology", None),
                   help="topology file (TOML/JSON); default: a multi-hop office layout + 1 relay")
    p.add_argument("--seed", type=int, default=_env("seed", 0))
    p.add_argument("--optimizer", choices=("adam", "adam8bit"), default=_env("optimizer", "adam"))
    p.add_argument("--num-features", type=int, default=_env("num_features", 10_000))
    p.add_argument("--missing", dest="missing_policy", choices=("sum", "skip", "reuse"),
                   default=_env("missing", "sum"),
                   help="missing partial logits: sum what arrived (paper), skip the sample, "
                        "or reuse the device's last ones")
    p.add_argument("--ram-budget", type=int, default=_env("ram_budget", 256 * 1024),
                   help="emulated MCU RAM per device in bytes (default 262144 = 256 KiB)")
    p.add_argument("--eval-every", type=int, default=_env("eval_every", 0),
                   help="evaluate on the test set every K epochs (0: only at the end)")
    p.add_argument("--profile", choices=("tuned", "firmware"), default=_env("profile", "tuned"),
                   help="device profile (docs/fidelity.md): tuned (ours) or firmware (the official code)")
    p.add_argument("--recipe", choices=("tuned", "paper"), default=_env("recipe", "tuned"),
                   help="training recipe: tuned (ours) or paper (batch 128, constant lr, no decay/scaling, 8-bit Adam)")
    p.add_argument("--select", choices=("none", "decay", "epoch"), default=_env("select", None),
                   help="validation rule on the devices (docs/ml-core.md): decay (weight decays "
                        "100/10/1 on 80 %% of the training set, the best retrained on all), epoch "
                        "(the paper's best-validation epoch); default: the recipe's")
    p.add_argument("--quantization", choices=("global", "mulaw", "auto"), default=_env("quantization", "auto"),
                   help="int8 scale of the series: auto (default: mulaw when the global scale leaves "
                        "the median training series under 16 int8 codes, else global), global "
                        "(DESIGN 1.1) or mulaw (companded, for heavy-tailed data)")
    p.add_argument("--head", choices=("auto", "sgd", "ridge"), default=_env("head", "auto"),
                   help="the linear head (docs/ml-core.md): auto (default: ridge when its Gram matrix "
                        "fits the RAM budget and no SGD flag such as --epochs is given, else sgd), sgd "
                        "(the paper: mini-batch Adam), ridge (Gram rows exchanged, leave-one-out solve)")
    p.add_argument("--mode", choices=("rocknet", "private-labels", "data-parallel"),
                   default=_env("mode", "rocknet"),
                   help="training mode (docs/modes.md): rocknet (the paper), private-labels "
                        "(labels stay with their owner, g on the air), data-parallel (baseline)")
    p.add_argument("--split", default=_env("split", "contiguous"),
                   help="data placement: contiguous (firmware, default), iid, label-sorted, "
                        "or dirichlet:ALPHA (e.g. dirichlet:0.5; small ALPHA = strongly non-IID)")
    p.add_argument("--lockstep", action="store_true", default=_env("lockstep", False),
                   help="one exchange per radio round (default: one per optimizer batch; same result)")
    p.add_argument("--realtime", action="store_true", default=_env("realtime", False),
                   help="pace rounds to the emulated schedule (implies --lockstep)")
    p.add_argument("--deadline", type=float, default=_env("deadline", 30.0),
                   help="seconds a node has to answer a ROUND before it is silent for it")
    p.add_argument("--down-after", type=int, default=_env("down_after", 3),
                   help="silent exchanges in a row before a node is reported down")
    p.add_argument("--checkpoint-interval", type=float, default=_env("checkpoint_interval", 1.0),
                   help="seconds between full coordinator checkpoints; the exchanges in between "
                        "go to the replay log (default %(default)s)")
    p.add_argument("--scenario", type=Path, default=_env("scenario", None),
                   help="TOML file of timed fault events")
    p.add_argument("--out", type=Path, default=_env("out", None),
                   help="run directory (default runs/<dataset>-<N>n-<time>)")
    p.add_argument("--curve-dir", type=Path, default=_env("curve_dir", None),
                   help="CURVE keys (rocknet keys init DIR); off when not given")
    p.add_argument("--host", default=_env("host", "127.0.0.1"), help="address to bind")
    p.add_argument("--node-port", type=int, default=_env("node_port", DEFAULT_NODE_PORT))
    p.add_argument("--feed-port", type=int, default=_env("feed_port", DEFAULT_FEED_PORT))
    p.add_argument("--control-port", type=int, default=_env("control_port", DEFAULT_CONTROL_PORT))
    p.add_argument("--no-reference", action="store_true", default=_env("no_reference", False),
                   help="skip the centralized reference run (centralized_test_accuracy)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no table")


def _client_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--connect", default=_env("control", f"tcp://127.0.0.1:{DEFAULT_CONTROL_PORT}"),
                   help="coordinator's control endpoint (default %(default)s)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")


#: Subcommands whose parsers live in coordinator/tools (importing those imports numba: ~0.2 s).
TOOL_COMMANDS = ("sweep", "report", "baseline", "compare")
#: Subcommands parsed without them.
LIGHT_COMMANDS = ("run", "coordinator", "status", "pause", "resume", "stop", "inject", "monitor")


def build_parser(tools: bool = True) -> argparse.ArgumentParser:
    """The whole ``rocknet`` parser; ``tools=False`` leaves out :data:`TOOL_COMMANDS` (for a
    command line that names another subcommand: ``rocknet run`` starts its zygote sooner)."""
    parser = argparse.ArgumentParser(prog="rocknet", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a local testbed: coordinator + N node processes")
    _add_run_flags(run)
    run.add_argument("--mem-limit-mb", type=int, default=_env("mem_limit_mb", 1024),
                     help="OS memory cap per node process (a watchdog on its USS: what it owns, not the pages it shares with the zygote), MB")
    run.add_argument("--backend", choices=("processes", "inprocess"), default=_env("backend", "processes"),
                     help="processes: one OS process per device (default); inprocess: every "
                          "device inside this process, no sockets (same model bit for bit, faster)")
    from coordinator.tools.seeds import add_seed_flags

    add_seed_flags(run)  # rocknet run --seeds K [--jobs J]: OUT/seed<S>/ each, OUT/seeds.md
    coord = sub.add_parser("coordinator", help="run the coordinator alone (nodes connect to it)")
    _add_run_flags(coord)
    sub.add_parser("node", help="run one device process (see rocknet node --help)", add_help=False)
    for name, text in (("status", "print the running coordinator's status"),
                       ("pause", "pause the run after the current exchange"),
                       ("resume", "resume a paused run"),
                       ("stop", "stop the run (summary still written)")):
        p = sub.add_parser(name, help=text)
        _client_flags(p)
        if name == "status":
            p.add_argument("--json", action="store_true", help="one JSON object")
    inject = sub.add_parser("inject", help="inject a fault into the running air")
    _client_flags(inject)
    isub = inject.add_subparsers(dest="fault", required=True)
    for name in ("link-down", "link-up"):
        q = isub.add_parser(name)
        q.add_argument("a", type=int)
        q.add_argument("b", type=int)
    q = isub.add_parser("loss", help="i.i.d. drop probability P (every link or --link A B)")
    q.add_argument("p", type=float)
    q.add_argument("--link", type=int, nargs=2)
    q = isub.add_parser("burst", help="Gilbert-Elliott bursts: P good->bad, R bad->good per slot")
    q.add_argument("p", type=float)
    q.add_argument("r", type=float)
    q.add_argument("--link", type=int, nargs=2)
    q = isub.add_parser("jam", help="jam receivers NODES (comma list): PRR x --prr for --rounds K")
    q.add_argument("nodes")
    q.add_argument("--prr", type=float, default=0.0)
    q.add_argument("--rounds", type=int)
    for name in ("node-down", "node-up"):
        q = isub.add_parser(name)
        q.add_argument("node", type=int)
    isub.add_parser("clear", help="remove every injected fault")
    mon = sub.add_parser("monitor", help="live dashboard of a running testbed")
    mon.add_argument("--connect", default=_env("monitor_host", "127.0.0.1"),
                     help="coordinator host (or tcp://HOST:PORT of the control socket)")
    mon.add_argument("--control-port", type=int, default=DEFAULT_CONTROL_PORT)
    mon.add_argument("--feed-port", type=int, default=DEFAULT_FEED_PORT)
    mon.add_argument("--jsonl", action="store_true", help="print the feed as JSON lines")
    mon.add_argument("--count", type=int, default=0, help="exit after K round events (0: never)")
    mon.add_argument("--wait", type=float, default=0.0,
                     help="seconds to wait for a coordinator to appear (0: forever)")
    sub.add_parser("warmup", help="compile and cache the numba kernels")
    sub.add_parser("keys", help="CURVE keys: init/add/show (rocknet keys -h)", add_help=False)
    sub.add_parser("model", help="device + round model per N, no training (rocknet model -h)", add_help=False)
    if tools:
        from coordinator.tools import baseline
        from coordinator.tools import compare
        from coordinator.tools import report
        from coordinator.tools import sweep

        for module in (sweep, report, baseline, compare):
            module.add_parser(sub)
    for name in CONFIG_COMMANDS:  # every flag of these can come from an experiment file
        if name in sub.choices:
            add_config_flag(sub.choices[name])
    return parser


def _cmd_control(a: argparse.Namespace) -> int:
    from coordinator.ui.control_client import ControlClient, ControlTimeout

    args: dict[str, Any] = {}
    command = a.command
    if command == "inject":
        command = a.fault
        if a.fault in ("link-down", "link-up"):
            args = {"a": a.a, "b": a.b}
        elif a.fault == "loss":
            args = {"p": a.p, "link": a.link}
        elif a.fault == "burst":
            args = {"p": a.p, "r": a.r, "link": a.link}
        elif a.fault == "jam":
            try:
                nodes = [int(x) for x in a.nodes.split(",") if x.strip()]
            except ValueError:
                print(f"rocknet: jam NODES is a comma list of node ids, got {a.nodes!r}", file=sys.stderr)
                return 2
            args = {"nodes": nodes, "prr": a.prr, "rounds": a.rounds}
        elif a.fault in ("node-down", "node-up"):
            args = {"node": a.node}
        args = {k: v for k, v in args.items() if v is not None}
    from protocol.net.keys import CurveKeyError

    try:
        with ControlClient(a.connect, timeout_s=a.timeout) as client:
            reply = client.request(command, args)
    except CurveKeyError as exc:
        print(f"rocknet: {exc}", file=sys.stderr)
        return 2
    except ControlTimeout as exc:
        print(f"rocknet: {exc}", file=sys.stderr)
        return 4
    if command == "status":
        if a.json:
            print(json.dumps(reply.data))
        else:
            _print_status(reply.data)
        return 0
    stream = sys.stdout if reply.ok else sys.stderr
    print(("ok: " if reply.ok else "error: ") + reply.message, file=stream)
    return 0 if reply.ok else 1


def _print_status(s: dict[str, Any]) -> None:
    acc = s.get("accuracy", {})
    print(f"{s['phase']}  {s['dataset']}  nodes {s['registered']}/{s['n_devices']}  "
          f"protocol {s['protocol']}  round {s['round']}/{s['rounds']}  "
          f"virtual {s['virtual_time_s']:.1f} s  wall {s['wall_time_s']:.1f} s  "
          f"train acc {acc.get('train_accuracy')}  eval acc {acc.get('eval_accuracy')}")
    hists = s.get("train_label_histograms") or []
    for n in s["nodes"]:
        labels = hists[n["id"]] if 0 <= n["id"] < len(hists) else None
        print(f"  {n['id']:>3} {n['name']:<20} {n['status']:<7}"
              + ("" if labels is None else f" labels {'/'.join(map(str, labels))}"))
    for f in s.get("faults", []):
        print(f"  fault: {f}")


def main(argv: list[str] | None = None) -> int:
    """``rocknet ARGV`` (default: this process's command line); returns the exit status.

    Called as the program (``argv`` None), it freezes the garbage collector's objects on
    the way out: the interpreter's final collections then skip the ~120k objects of the
    imports (numba, numpy...), which saves ~0.12 s of every ``rocknet run`` after its work
    is done (everything is written and reaped by then; nothing is left for a collection).
    """
    program = argv is None
    code = _main(list(sys.argv[1:] if argv is None else argv))
    if program:
        gc.freeze()
    return code


def _main(argv: list[str]) -> int:
    if argv and argv[0] == "keys":
        from coordinator.ui.keys_cli import main as keys_main

        return keys_main(argv[1:])
    if argv and argv[0] == "model":
        from coordinator.ui.model_cli import main as model_main

        return model_main(argv[1:])
    if argv and argv[0] == "node":
        # The device process lives in the node package; run it without importing it here.
        os.execv(sys.executable, [sys.executable, "-m", "node", *argv[1:]])
    if argv and argv[0] == "warmup":
        os.execv(sys.executable, [sys.executable, "-m", "node.offline.warmup"])
    # The tools' parsers only for their own commands, help or a command line argparse must
    # reject with the whole list of subcommands.
    tools = not argv or argv[0] not in LIGHT_COMMANDS
    a = parse_with_config(lambda: build_parser(tools=tools), argv)
    logging.basicConfig(level=logging.WARNING if getattr(a, "quiet", False) else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if a.command == "run":
        return cmd_run(a, spawn_nodes=True)
    if a.command == "coordinator":
        return cmd_run(a, spawn_nodes=False)
    if a.command in TOOL_COMMANDS:
        from coordinator.tools import baseline
        from coordinator.tools import compare
        from coordinator.tools import report
        from coordinator.tools import sweep

        modules = {"sweep": sweep, "report": report, "baseline": baseline, "compare": compare}
        return modules[a.command].main(a)
    if a.command == "monitor":
        from coordinator.ui.monitor import run_monitor

        return run_monitor(a)
    return _cmd_control(a)


if __name__ == "__main__":
    sys.exit(main())
