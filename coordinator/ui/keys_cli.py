"""``rocknet keys init|add|show``: create and list a testbed's CURVE keys.

The key files and their layout are :mod:`protocol.net.keys`; this is only the command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from protocol.net.keys import (
    COORDINATOR,
    NODES_DIR,
    OPERATOR,
    CurveKeyError,
    ensure_keys,
    fingerprint,
    init_keys,
    load_public,
    local_node_names,
)


def _names(args: argparse.Namespace) -> list[str]:
    if getattr(args, "names", None):
        return [n.strip() for n in args.names.split(",") if n.strip()]
    if getattr(args, "nodes", None) is not None:
        return local_node_names(args.nodes)
    return []


def main_init(args: argparse.Namespace) -> int:
    """``rocknet keys init DIR [--nodes N | --names a,b,c] [--force]``."""
    names = _names(args)
    init_keys(args.directory, names, force=args.force)
    print(f"wrote CURVE keys to {args.directory}: coordinator, operator and {len(names)} node(s)")
    _print_keys(Path(args.directory))
    return 0


def main_add(args: argparse.Namespace) -> int:
    """``rocknet keys add DIR NAME...``: keys for more nodes (a running coordinator sees them)."""
    created = ensure_keys(args.directory, args.names)
    print(f"created: {', '.join(created) if created else 'nothing (all keys existed)'}")
    return 0


def main_show(args: argparse.Namespace) -> int:
    """``rocknet keys show DIR``: every key's owner and fingerprint (as the coordinator logs it)."""
    _print_keys(Path(args.directory))
    return 0


def _print_keys(directory: Path) -> None:
    if not directory.is_dir():
        raise CurveKeyError(f"{directory} is not a directory: create it with `rocknet keys init`")
    rows = [(COORDINATOR, directory / f"{COORDINATOR}.key"), (OPERATOR, directory / f"{OPERATOR}.key")]
    rows += [(f"node {p.name[:-4]}", p) for p in sorted((directory / NODES_DIR).glob("*.key"))]
    for who, path in rows:
        if path.exists():
            secret = path.with_name(path.name + "_secret")
            print(f"  {who:<24} {fingerprint(load_public(path))}  "
                  f"{'(+ secret)' if secret.exists() else '(public only)'}  {path}")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``rocknet keys``: one subcommand per action, each with its ``func``."""
    p = argparse.ArgumentParser(prog="rocknet keys", description="CURVE keys of a testbed.")
    sub = p.add_subparsers(dest="action", required=True)
    init = sub.add_parser("init", help="create the coordinator's, operator's and nodes' keys")
    init.add_argument("directory", type=Path)
    who = init.add_mutually_exclusive_group()
    who.add_argument("--nodes", type=int, help="N nodes named node-00 .. node-{N-1} (local runs)")
    who.add_argument("--names", help="comma-separated node names (e.g. compose hostnames)")
    init.add_argument("--force", action="store_true", help="replace existing keys")
    init.set_defaults(func=main_init)
    add = sub.add_parser("add", help="create keys for more nodes, keep the existing ones")
    add.add_argument("directory", type=Path)
    add.add_argument("names", nargs="+")
    add.set_defaults(func=main_add)
    show = sub.add_parser("show", help="list keys with their fingerprints")
    show.add_argument("directory", type=Path)
    show.set_defaults(func=main_show)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rocknet keys ...``; errors are one line naming the fix (exit 2)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CurveKeyError, OSError) as exc:
        print(f"rocknet keys: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
