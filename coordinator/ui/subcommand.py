"""Run one ``rocknet`` subcommand module on its own (``python -m coordinator.tools.sweep ...``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any


def run_standalone(name: str, add_parser: Callable[[Any], None], main: Callable[[argparse.Namespace], int],
                   argv: list[str] | None = None) -> int:
    """Parse ``argv`` as ``rocknet NAME ...`` would and call the module's ``main``."""
    parser = argparse.ArgumentParser(prog=f"python -m coordinator.tools.{name}")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = list(sys.argv[1:] if argv is None else argv)
    return main(parser.parse_args([name, *args]))
