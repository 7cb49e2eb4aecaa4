"""Tell systemd how the kiosk is doing: READY=1, STATUS=..., WATCHDOG=1.

The unit is ``Type=notify`` with ``WatchdogSec=``: systemd waits for
READY=1 before it counts the kiosk as started, and restarts it when the
WATCHDOG=1 pings stop. The pings must come from the main loop itself (call
:meth:`Watchdog.ping` once per loop pass), never from a helper thread: a
thread would keep pinging while the loop hangs, and the hang would never be
noticed.

This is the whole sd_notify protocol (a datagram to the AF_UNIX socket named
in ``$NOTIFY_SOCKET``), so the kiosk needs no libsystemd binding. Outside
systemd (desktop, tests) every call is a cheap no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable, Mapping, Optional

log = logging.getLogger(__name__)

__all__ = ["notify", "ready", "status", "stopping", "Watchdog", "LoopNotifier"]


def _address(path: str) -> str | bytes:
    """``@name`` is Linux's abstract namespace: a leading NUL byte on the wire."""
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    return path


def notify(state: str, env: Optional[Mapping[str, str]] = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1\\nSTATUS=ok"``) to systemd.

    Returns True when the message was sent, False when there is no
    ``$NOTIFY_SOCKET`` (not run by systemd) or sending failed. Never raises:
    a failed notification must not stop the kiosk (systemd will notice the
    missing READY or WATCHDOG by itself).
    """
    env = os.environ if env is None else env
    path = env.get("NOTIFY_SOCKET")
    if not path:
        return False
    if not (path.startswith("/") or path.startswith("@")):
        log.warning("NOTIFY_SOCKET=%r is neither a path nor an abstract socket; not notifying", path)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode("utf-8"), _address(path))
        return True
    except OSError as e:
        log.warning("could not notify systemd at %s: %s", path, e)
        return False


def _one_line(text: str) -> str:
    # sd_notify messages are newline-separated assignments: a newline inside
    # STATUS= would start a bogus assignment.
    return " ".join(str(text).split())


def ready(status_text: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> bool:
    """The kiosk is up: systemd may count the unit as started."""
    msg = "READY=1"
    if status_text:
        msg += "\nSTATUS=" + _one_line(status_text)
    return notify(msg, env)


def status(text: str, env: Optional[Mapping[str, str]] = None) -> bool:
    """One line shown by ``systemctl status kiosk``."""
    return notify("STATUS=" + _one_line(text), env)


def stopping(env: Optional[Mapping[str, str]] = None) -> bool:
    """An orderly stop has begun (so systemd does not mistake it for a hang)."""
    return notify("STOPPING=1", env)


class Watchdog:
    """Knows systemd's watchdog interval and says when to ping.

    systemd passes ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``) when the unit has
    ``WatchdogSec=``. We ping at half that interval, so one slow loop pass
    does not cost a restart. Call :meth:`ping` on every main-loop pass; it
    only sends when a ping is due, so calling it at 30 Hz is cheap.
    """

    def __init__(
        self,
        env: Optional[Mapping[str, str]] = None,
        clock: Callable[[], float] = time.monotonic,
        send: Optional[Callable[[str], bool]] = None,
    ):
        self._env = os.environ if env is None else env
        self._clock = clock
        self._send = send or (lambda msg: notify(msg, self._env))
        self.timeout_s: Optional[float] = self._read_timeout(self._env)
        self._last: Optional[float] = None

    @staticmethod
    def _read_timeout(env: Mapping[str, str]) -> Optional[float]:
        usec = env.get("WATCHDOG_USEC")
        if not usec:
            return None
        pid = env.get("WATCHDOG_PID")
        if pid and pid.strip() != str(os.getpid()):
            return None  # the watchdog is meant for another process (we are a child)
        try:
            value = int(usec)
        except ValueError:
            log.warning("WATCHDOG_USEC=%r is not a number; watchdog off", usec)
            return None
        return value / 1e6 if value > 0 else None

    @property
    def enabled(self) -> bool:
        return self.timeout_s is not None

    @property
    def interval_s(self) -> Optional[float]:
        """How often to ping: half the watchdog timeout, None when it is off."""
        return None if self.timeout_s is None else self.timeout_s / 2

    def due(self) -> bool:
        """True when a ping should be sent now."""
        if not self.enabled:
            return False
        return self._last is None or self._clock() - self._last >= self.interval_s

    def ping(self, force: bool = False) -> bool:
        """Send WATCHDOG=1 if one is due (or ``force``). Returns True if sent."""
        if not self.enabled or not (force or self.due()):
            return False
        self._last = self._clock()
        return self._send("WATCHDOG=1")


def describe(view) -> Optional[str]:
    """One STATUS line from a :class:`kiosk.view.View` (None: nothing to say)."""
    if view is None:
        return None
    text = f"screen: {getattr(view, 'screen', '?')}"
    faults = getattr(view, "faults", ()) or ()
    if faults:
        text += "; faults: " + ", ".join(f"{f.code} {f.part}" for f in faults)
    return text


class LoopNotifier:
    """What the main loop calls: ``ready()`` once, ``alive(view)`` every pass, ``stopping()``.

    ``alive`` feeds the watchdog (when due) and keeps ``systemctl status``'s
    STATUS line current: sent when it changes, at most every ``status_every_s``.
    Call ``alive`` only while the loop and its worker are healthy; if they
    hang, the pings stop and systemd restarts the kiosk.
    """

    def __init__(
        self,
        env: Optional[Mapping[str, str]] = None,
        clock: Callable[[], float] = time.monotonic,
        status_every_s: float = 5.0,
    ):
        self._env = os.environ if env is None else env
        self._clock = clock
        self.watchdog = Watchdog(self._env, clock=clock)
        self.status_every_s = status_every_s
        self._status: Optional[str] = None
        self._status_t = float("-inf")

    def ready(self, text: str = "running") -> bool:
        self._status, self._status_t = text, self._clock()
        return ready(text, self._env)

    def alive(self, view=None) -> None:
        self.watchdog.ping()
        text = describe(view)
        now = self._clock()
        if text is not None and text != self._status and now - self._status_t >= self.status_every_s:
            self._status, self._status_t = text, now
            status(text, self._env)

    def stopping(self) -> bool:
        return stopping(self._env)
