"""OS memory cap for a plain node process: an RSS watchdog.

A container gets a hard cap from its ``mem_limit``; a plain process gets this watchdog, which
stops the process with a clear message when its resident set exceeds the cap. (RLIMIT_AS is
not used: numba's loader reserves ~400 MB of address space, so a tight RLIMIT_AS breaks it.)
"""

from __future__ import annotations

import logging
import os
import threading

import psutil

log = logging.getLogger("rocknet.node")


class RssWatchdog:
    """Checks this process's RSS every ``interval_s`` seconds; exits when over ``limit_mb``."""

    def __init__(self, limit_mb: int, exit_code: int, interval_s: float = 0.25) -> None:
        if limit_mb <= 0:
            raise ValueError(f"memory limit must be positive, got {limit_mb} MB")
        self.limit_bytes = limit_mb * 1024 * 1024
        self.exit_code = exit_code
        self.interval_s = interval_s
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="rss-watchdog", daemon=True)
        self._process = psutil.Process()
        self.peak_bytes = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()

    def _watch(self) -> None:
        while not self._halt.wait(self.interval_s):
            rss = self._process.memory_info().rss
            self.peak_bytes = max(self.peak_bytes, rss)
            if rss > self.limit_bytes:
                log.error(
                    "memory cap exceeded: RSS %.1f MB > limit %.1f MB; stopping this node "
                    "(raise --mem-limit-mb or use more devices for smaller shards)",
                    rss / 2**20, self.limit_bytes / 2**20,
                )
                logging.shutdown()
                os._exit(self.exit_code)
