"""What a command says, and which exit code it returns, when a run it started fails.

One mapping for ``rocknet run`` (one seed or several), ``sweep`` and ``compare``: bad input
(a :class:`~coordinator.service.run_setup.SetupError` or ``ValueError``) is exit 2, a run the
coordinator aborted is 3, a run stopped by a signal is 130 (the shell's convention for
SIGINT). The exception classes are imported when asked for, so a command's start-up does not
pay for the service modules.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

EXIT_BAD_INPUT = 2
EXIT_ABORTED = 3
EXIT_INTERRUPTED = 130


def run_failures(value_errors: bool = False) -> tuple[type[BaseException], ...]:
    """The exceptions :func:`report_failure` turns into an exit code (for an ``except``);
    ``value_errors``: any ``ValueError`` is bad input too (a command that validates its own
    arguments while it builds the runs)."""
    from coordinator.engine.state import RunAborted
    from coordinator.service.run_setup import SetupError
    from coordinator.service.signals import RunInterrupted

    bad_input: tuple[type[BaseException], ...] = (ValueError,) if value_errors else (SetupError,)
    return (*bad_input, RunAborted, RunInterrupted)


def report_failure(exc: BaseException, prog: str, where: str | Callable[[], str]) -> int:
    """Print ``exc`` for the user and return the exit code; ``where``: where the runs' files
    are (said when a signal stopped them), or a function that says it."""
    from coordinator.engine.state import RunAborted
    from coordinator.service.signals import RunInterrupted

    if isinstance(exc, RunInterrupted):
        print(f"{prog}: {exc}; {where() if callable(where) else where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if isinstance(exc, RunAborted):
        print(f"{prog}: run aborted: {exc}", file=sys.stderr)
        return EXIT_ABORTED
    print(f"{prog}: {exc}", file=sys.stderr)
    return EXIT_BAD_INPUT
