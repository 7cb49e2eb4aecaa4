"""What the worker measures as it goes: items per bin today, and the frame rate.

Both are shown on the screen (the service screen lists today's counts, the
status line the frame rate); neither decides anything. The day comes from an
injected function so a test can cross midnight without waiting for it.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping


def local_day() -> str:
    return time.strftime("%Y-%m-%d")


class DailyTally:
    """Items per bin since local midnight; starts from what the event log already counted today."""

    def __init__(self, initial: Mapping[str, int] = (), today: Callable[[], str] = local_day):
        self.today = today
        self._day = today()
        self._counts: dict[str, int] = dict(initial)

    def count(self, bin_id: str) -> None:
        self._roll()
        self._counts[bin_id] = self._counts.get(bin_id, 0) + 1

    def snapshot(self) -> dict[str, int]:
        self._roll()
        return dict(self._counts)

    def _roll(self) -> None:
        day = self.today()
        if day != self._day:
            self._day, self._counts = day, {}


class FrameRate:
    """Frames per second from frame timestamps, smoothed (an exponential average)."""

    def __init__(self, smoothing: float = 0.9):
        self.smoothing = smoothing
        self.fps = 0.0
        self._last: float | None = None

    def update(self, t: float) -> float:
        if self._last is not None and t > self._last:
            inst = 1.0 / (t - self._last)
            self.fps = inst if self.fps == 0 else self.smoothing * self.fps + (1 - self.smoothing) * inst
        self._last = t
        return self.fps
