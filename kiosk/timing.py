"""Per-stage stopwatch for the frame path (used by ``kiosk bench``; free when off)."""

from __future__ import annotations

import time
from contextlib import contextmanager


class StageTimer:
    """Accumulates seconds per stage for the current frame; ``frame()`` starts a new one."""

    def __init__(self):
        self.frames: list[dict[str, float]] = []
        self.current: dict[str, float] = {}

    def frame(self) -> None:
        if self.current:
            self.frames.append(self.current)
        self.current = {}

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.current[name] = self.current.get(name, 0.0) + time.perf_counter() - t0

    def finish(self) -> list[dict[str, float]]:
        self.frame()
        return self.frames


class NullTimer:
    @contextmanager
    def stage(self, name: str):
        yield

    def frame(self) -> None:
        pass


NULL_TIMER = NullTimer()
