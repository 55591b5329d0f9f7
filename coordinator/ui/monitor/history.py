"""A bounded series over a whole run, for the dashboard's sparklines."""

from __future__ import annotations

from collections.abc import Iterator


def bucket_mean(values: list[float | None]) -> float | None:
    """Mean of the known values (None if every value is missing)."""
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


class History:
    """A series over the whole run in at most ``2 * capacity`` points: when full, pairs of
    points are merged (mean; None if both are missing) and later points are taken in pairs."""

    def __init__(self, capacity: int = 1024) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.stride = 1  # rounds per stored point
        self._points: list[float | None] = []
        self._pending: list[float | None] = []

    def append(self, value: float | None) -> None:
        self._pending.append(value)
        if len(self._pending) < self.stride:
            return
        self._points.append(bucket_mean(self._pending))
        self._pending = []
        if len(self._points) >= 2 * self.capacity:
            pts = self._points
            self._points = [bucket_mean(pts[i:i + 2]) for i in range(0, len(pts), 2)]
            self.stride *= 2

    def clear(self) -> None:
        self.stride = 1
        self._points, self._pending = [], []

    def values(self) -> list[float | None]:
        return self._points + ([bucket_mean(self._pending)] if self._pending else [])

    def __len__(self) -> int:
        return len(self._points) + (1 if self._pending else 0)

    def __iter__(self) -> Iterator[float | None]:
        return iter(self.values())
