"""OS memory cap for a plain node process: a USS watchdog.

A container gets a hard cap from its ``mem_limit``; a plain process gets this watchdog, which
stops the process with a clear message when the memory it *owns* exceeds the cap.

What is counted is the USS (unique set size: the pages only this process maps, from
``/proc/self/smaps_rollup``), not the RSS. Node processes forked from the zygote
(``node/zygote.py``) share the zygote's pages (the interpreter, numpy, numba, the compiled
kernels: ~100 MB of RSS), and those pages are paid for once for all nodes; counting them would
make every node look ~100 MB bigger than it is and a cap would measure the zygote, not the
device. A page a node writes (its shard, its head, its optimizer state, a copy-on-write copy of
a shared page) is its own and is counted. For a process started on its own (no zygote) USS is
nearly its RSS, so the cap means the same there.

(RLIMIT_AS is not used: numba's loader reserves ~400 MB of address space, so a tight RLIMIT_AS
breaks it. A cgroup v2 ``memory.max`` per device would be a kernel-enforced alternative where
the cgroup tree is delegated to the user; this machine does not offer one.)
"""

from __future__ import annotations

import logging
import os
import threading

import psutil

log = logging.getLogger("rocknet.node")


def owned_bytes(process: psutil.Process | None = None) -> int:
    """The memory a process owns: its USS in bytes (shared pages not counted)."""
    return int((process or psutil.Process()).memory_full_info().uss)


class MemoryWatchdog:
    """Checks this process's USS every ``interval_s`` seconds; exits when over ``limit_mb``
    (the USS is read only once the RSS, its upper bound, is over the cap)."""

    def __init__(self, limit_mb: int, exit_code: int, interval_s: float = 0.25) -> None:
        if limit_mb <= 0:
            raise ValueError(f"memory limit must be positive, got {limit_mb} MB")
        self.limit_mb = limit_mb
        self.limit_bytes = limit_mb * 1024 * 1024
        self.exit_code = exit_code
        self.interval_s = interval_s
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="memory-watchdog", daemon=True)
        self._process = psutil.Process()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()

    def check(self) -> int:
        """One measurement; exits the process when over the cap.

        Returns the USS in bytes, or the RSS when the RSS is within the cap: USS <= RSS, so
        then the cap holds without reading ``smaps``. Reading ``smaps`` walks every mapping
        of a ~500 MB numba address space (milliseconds of kernel time); 200 node processes
        doing it 4 times a second saturated 2 cores (docs/scaling.md), reading the RSS is
        one ``statm`` line.
        """
        rss = int(self._process.memory_info().rss)
        if rss <= self.limit_bytes:
            return rss
        try:
            uss = owned_bytes(self._process)
        except (psutil.Error, OSError):  # smaps unreadable (odd /proc): fall back to RSS
            uss = rss
        if uss > self.limit_bytes:
            log.error(
                "memory cap exceeded: this node owns %.1f MB (USS, shared pages not counted) > "
                "cap --mem-limit-mb %d; stopping this node (exit %d). Fix: raise --mem-limit-mb "
                "(ROCKNET_MEM_LIMIT_MB), or use more devices so that each shard is smaller",
                uss / 2**20, self.limit_mb, self.exit_code,
            )
            logging.shutdown()
            os._exit(self.exit_code)
        return uss

    def _watch(self) -> None:
        while not self._halt.wait(self.interval_s):
            self.check()


#: The old name (it measured RSS); kept so that older imports still work.
RssWatchdog = MemoryWatchdog
