"""Keeping the worker's parts alive: open on demand, retry with back-off, close once.

The camera and the model are parts the worker cannot run without; either can
fail at start or later (a camera unplugged, a model file refused). A
``Supervised`` part owns that cycle, as Frigate's camera watchdog does, so the
worker's loop only asks "is it there?". Faults go back through callbacks; the
part knows nothing of screens or logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, Optional, TypeVar

from kiosk.errors import KioskError

T = TypeVar("T")


@dataclass
class Backoff:
    """Retry delays that double up to a limit, reset on success."""

    first: float = 1.0
    limit: float = 30.0
    delay: float = 0.0
    next_try: float = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next_try

    def failed(self, now: float) -> None:
        self.delay = self.first if self.delay == 0 else min(self.delay * 2, self.limit)
        self.next_try = now + self.delay

    def succeeded(self) -> None:
        self.delay, self.next_try = 0.0, 0.0


class Supervised(Generic[T]):
    """One part: ``opener()`` makes it; ``failure`` is the error family that means "retry later"."""

    def __init__(self, opener: Callable[[], T], failure: type[KioskError], backoff: Backoff,
                 on_failed: Callable[[KioskError], None], on_opened: Callable[[T], None] = lambda part: None):
        self.opener, self.failure, self.backoff = opener, failure, backoff
        self.on_failed, self.on_opened = on_failed, on_opened
        self.part: Optional[T] = None

    def ensure(self, now: float) -> Optional[T]:
        """The part, opening it when missing and its back-off allows; None while it is not there."""
        if self.part is None and self.backoff.due(now):
            try:
                self.part = self.opener()
            except self.failure as e:
                self.backoff.failed(now)
                self.on_failed(e)
            else:
                self.backoff.succeeded()
                self.on_opened(self.part)
        return self.part

    def failed(self, now: float, err: KioskError) -> None:
        """The part broke while in use: close it, report, retry after the back-off."""
        self.close()
        self.backoff.failed(now)
        self.on_failed(err)

    def close(self) -> None:
        part, self.part = self.part, None
        if part is not None:
            part.close()
