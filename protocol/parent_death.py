"""Die with the parent: the one place that asks Linux for a signal when a process's parent dies.

Used by every process the testbed starts on a host: the zygote and the node processes it
forks (``node/zygote.py``, ``node/process.py``) and the workers of the run pool
(``coordinator/tools/run_pool.py``), so that none outlives the process that launched it.
"""

from __future__ import annotations

import signal

#: ``prctl`` option: the signal delivered when the parent (the thread that forked us) dies.
PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Get ``sig`` when the parent dies (Linux; a no-op where ``prctl`` is missing).

    The death signal is armed only from this call on: a caller that may have lost its parent
    already should compare ``os.getppid()`` with the parent's pid afterwards.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig))
    except (OSError, AttributeError):
        pass
