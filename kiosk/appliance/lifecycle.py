"""Turn SIGTERM and SIGINT into an orderly stop.

systemd stops the kiosk with SIGTERM, whose default action kills the
process without running ``finally`` blocks or ``atexit`` handlers, so flaps
and pins would be left as they were. Here both signals set a flag the main
loop polls, and a second signal raises ``SystemExit`` so a loop that is
stuck still unwinds through its ``finally`` blocks.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager


class StopFlag:
    """Set by a signal (or by code) to ask the main loop to stop."""

    def __init__(self):
        self._event = threading.Event()
        self.signal_name: str | None = None

    def set(self, reason: str = "requested") -> None:
        self.signal_name = self.signal_name or reason
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


@contextmanager
def graceful_signals(stop: StopFlag, signals=(signal.SIGTERM, signal.SIGINT)):
    """Within the block, the first signal sets ``stop``; a second raises SystemExit."""
    os.environ["SDL_NO_SIGNAL_HANDLERS"] = "1"
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be installed from the main thread
        return

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if stop:
            raise SystemExit(128 + signum)
        stop.set(name)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
