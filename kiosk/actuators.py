"""Bin flaps: gpiozero outputs with safe states, one owner, deadlines, jam lockout.

Safety rules, all enforced here rather than trusted to callers:
- every output starts in its *closed* state (``initial_value``);
- one ``FlapBank`` owns every flap and a lock: at most one flap is open;
- every open has a deadline (``max_open_s``) after which the flap closes by
  itself. The deadline is enforced by ``poll()``, which a watchdog thread
  calls every ``watchdog_s`` and the main loop may also call every frame;
  both are safe together (locked, idempotent), and the thread keeps working
  if the UI loop hangs;
- with a closed-position switch, a flap that does not report closed within
  ``close_check_s`` is opened briefly and closed again once; if it still does
  not report closed the bin is locked out and a ``FlapJammed`` fault is
  raised for the UI and the log (recorded, logged, and passed to
  ``on_fault``, never thrown into the main loop);
- ``close()`` drives every flap closed *first* and waits for the servos to
  get there, then releases the pins. gpiozero's own ``close()`` turns pins
  into inputs, so a servo released while open would go limp where it is.

SIGTERM: gpiozero cleans up only on an orderly exit; ``kiosk.appliance.lifecycle``
turns SIGTERM into one, so ``with FlapBank(...)`` (or ``Hardware``) closes
the flaps. An ``atexit`` hook covers a normal exit that forgot ``close()``,
and ``kiosk flaps close-all`` (systemd ``ExecStopPost=``) covers the rest.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import time
import weakref
from enum import Enum
from typing import Callable, Iterable, Optional

from kiosk.config import BinConfig
from kiosk.devices.flap import Flap
from kiosk.errors import HardwareError
from kiosk.faults import Fault, PartKind

log = logging.getLogger(__name__)

# Would be config fields (see the report): flap.release_delay_s, flap.retry_open_s
RELEASE_DELAY_S = 0.5  # time for a servo to reach closed before its signal is released
RETRY_OPEN_S = 0.5  # jam retry: open this long (let a wedged item fall), then close again
WATCHDOG_S = 0.05


class FlapJammed(HardwareError):
    """A flap did not report closed after a retry; its bin is locked out."""

    code = "E410"


class FlapState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    CLOSING = "closing"  # commanded closed, waiting for the switch
    RETRY = "retry"  # jam retry: briefly open again
    LOCKED_OUT = "locked_out"


def _close_at_exit(ref) -> None:
    bank = ref()
    if bank is not None:
        bank.close()


class FlapBank:
    """Every flap, one lock, at most one open.

    ``open(bin)`` refuses (False) while another flap is not closed, while
    the bin is locked out, or after ``close()``; a flap whose pins cannot be
    driven is closed, locked out with a fault, and refused. Bins without a flap are
    chutes: ``open`` returns True and does nothing. Unknown bins raise KeyError.
    ``clock`` is what deadlines are measured with (a fake one in tests).
    At start-up every flap with a closed switch is checked like after any
    close: one that does not read closed is retried, then locked out.
    Deadlines are enforced by ``poll()``: from the watchdog thread every
    ``watchdog_s`` (None: no thread) and from the main loop if it likes.
    """

    def __init__(self, bins: Iterable[BinConfig], pin_factory, clock: Callable[[], float] = time.monotonic, *,
                 watchdog_s: Optional[float] = WATCHDOG_S, release_delay_s: float = RELEASE_DELAY_S,
                 retry_open_s: float = RETRY_OPEN_S, on_fault: Optional[Callable[[Fault], None]] = None):
        self.clock = clock
        self.release_delay_s = release_delay_s
        self.retry_open_s = retry_open_s
        self.on_fault = on_fault
        self._lock = threading.RLock()
        self._closed = False
        bins = list(bins)
        self.bin_ids = [b.id for b in bins]
        self.flaps: dict[str, Flap] = {}
        self.faults: list[Fault] = []
        try:
            for b in bins:
                if b.flap is not None:
                    self.flaps[b.id] = Flap(b.id, b.flap, pin_factory=pin_factory)
        except BaseException:
            self._release_all()
            raise
        self._state = {b: FlapState.CLOSED for b in self.flaps}
        self._until: dict[str, float] = {}  # OPEN: deadline; CLOSING: switch check; RETRY: end of retry
        self._attempt: dict[str, int] = {}
        self._opened_t: dict[str, float] = {}
        now = clock()
        for b in self.flaps:
            self._verify(b, now, attempt=1)  # a flap found open at start-up is a jam like any other
        self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit)
        self.poll()  # switches that already read closed settle the start-up check at once
        self._stop = threading.Event()
        self._watchdog = None
        if watchdog_s:
            self._watchdog = threading.Thread(target=self._watch, args=(watchdog_s,), name="flap-watchdog", daemon=True)
            self._watchdog.start()

    # ---- queries -------------------------------------------------------------
    def state(self, bin_id: str) -> Optional[FlapState]:
        """The flap's state (None: this bin has no flap)."""
        self._check_bin(bin_id)
        return self._state.get(bin_id)

    @property
    def open_bin(self) -> Optional[str]:
        """The bin whose flap is open (or being retried), if any."""
        with self._lock:
            for b, s in self._state.items():
                if s in (FlapState.OPEN, FlapState.RETRY):
                    return b
        return None

    @property
    def locked_out(self) -> set[str]:
        with self._lock:
            return {b for b, s in self._state.items() if s is FlapState.LOCKED_OUT}

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_bin(self, bin_id) -> None:
        if bin_id not in self.bin_ids:
            raise KeyError(f"unknown bin {bin_id!r} (bins are {', '.join(self.bin_ids)})")

    # ---- commands ----------------------------------------------------------------
    def open(self, bin_id: str) -> bool:
        """Open one flap, with a deadline. False if refused (see class doc)."""
        self._check_bin(bin_id)
        with self._lock:
            if self._closed:
                log.error("bin %s: open refused, flaps are shut down", bin_id)
                return False
            flap = self.flaps.get(bin_id)
            if flap is None:
                return True  # no flap: an open chute
            st = self._state[bin_id]
            if st is FlapState.OPEN:
                return True  # already open; the deadline is not extended
            if st is FlapState.LOCKED_OUT:
                log.warning("bin %s: open refused, flap is locked out after a jam", bin_id)
                return False
            if st is not FlapState.CLOSED:
                return False  # still closing
            busy = [b for b, s in self._state.items() if b != bin_id and s not in (FlapState.CLOSED, FlapState.LOCKED_OUT)]
            if busy:
                log.warning("bin %s: open refused, flap of %s is not closed", bin_id, busy[0])
                return False
            now = self.clock()
            try:
                flap.drive_open()
            except Exception as e:  # a pin that cannot be driven: lock the bin out, as after a jam
                self._safe_close(flap)
                self._state[bin_id] = FlapState.LOCKED_OUT
                fault = Fault(FlapJammed.code, PartKind.FLAP,
                              f"bin {bin_id}: flap could not be driven open ({e}); bin locked out until a "
                              "technician clears it", bin_id)
                self.faults.append(fault)
                log.error("%s [%s]", fault.message, fault.code)
            else:
                self._state[bin_id] = FlapState.OPEN
                self._until[bin_id] = now + flap.cfg.max_open_s
                self._opened_t[bin_id] = now
                log.info("bin %s: flap open", bin_id)
                return True
        if self.on_fault:  # outside the lock, as in poll()
            try:
                self.on_fault(fault)
            except Exception:
                log.exception("on_fault handler failed")
        return False

    def close(self) -> None:
        """Shut the bank down: every flap closed first, then the pins released. Idempotent.

        (One flap: :meth:`close_flap`; every flap, bank still running: :meth:`close_all`.)
        """
        self._shutdown()

    def close_flap(self, bin_id: str) -> None:
        """Command one flap closed (with a switch: verified by ``poll``)."""
        self._check_bin(bin_id)
        with self._lock:
            if bin_id in self.flaps and not self._closed:
                self._begin_close(bin_id, self.clock(), attempt=1, reason="closed")

    def close_all(self) -> None:
        """Command every flap closed now; the bank stays usable."""
        with self._lock:
            if self._closed:
                return
            now = self.clock()
            for b in self.flaps:
                self._begin_close(b, now, attempt=1, reason="close-all")

    def lock_out(self, bin_id: str, reason: str) -> None:
        """Keep a bin locked out (a lockout from before a restart): driven closed, refused until reset."""
        self._check_bin(bin_id)
        with self._lock:
            if self._closed or self._state.get(bin_id) is FlapState.LOCKED_OUT:
                return
            self._safe_close(self.flaps[bin_id])
            self._state[bin_id] = FlapState.LOCKED_OUT
            self.faults.append(Fault(FlapJammed.code, PartKind.FLAP, f"bin {bin_id}: {reason}", bin_id))
            log.warning("bin %s: locked out (%s)", bin_id, reason)

    def reset_lockout(self, bin_id: str) -> None:
        """A technician cleared the jam: close and verify again."""
        self._check_bin(bin_id)
        with self._lock:
            if self._state.get(bin_id) is FlapState.LOCKED_OUT and not self._closed:
                self._safe_close(self.flaps[bin_id])
                self._verify(bin_id, self.clock(), attempt=1)
                log.warning("bin %s: lockout reset by a technician", bin_id)

    def _begin_close(self, b: str, now: float, attempt: int, reason: str) -> None:
        flap = self.flaps[b]
        st = self._state[b]
        self._safe_close(flap)  # whatever the state: closed is always the right command
        if st not in (FlapState.OPEN, FlapState.RETRY):
            return  # already closed, being verified, or locked out
        if st is FlapState.RETRY:
            attempt = 2
        else:
            log.info("bin %s: flap %s after %.1f s", b, reason, now - self._opened_t.get(b, now))
        self._verify(b, now, attempt)

    def _verify(self, b: str, now: float, attempt: int) -> None:
        """Closed was commanded: with a switch, wait for it to agree; without one, trust it."""
        flap = self.flaps[b]
        if flap.has_switch:
            self._state[b] = FlapState.CLOSING
            self._until[b] = now + flap.cfg.close_check_s
            self._attempt[b] = attempt
        else:
            self._state[b] = FlapState.CLOSED

    def _safe_close(self, flap: Flap) -> None:
        try:
            flap.drive_closed()
        except Exception:
            log.exception("bin %s: driving the flap closed failed", flap.bin_id)

    # ---- deadlines and the jam check ------------------------------------------------
    def poll(self, now: Optional[float] = None) -> list[Fault]:
        """Enforce deadlines and check closed switches. Safe from any thread; returns new faults."""
        new = []
        with self._lock:
            if self._closed:
                return new
            now = self.clock() if now is None else now
            for b, st in list(self._state.items()):
                flap = self.flaps[b]
                until = self._until.get(b, now)
                if st is FlapState.OPEN:
                    if now >= until:
                        log.warning("bin %s: flap open for its limit of %gs: closing", b, flap.cfg.max_open_s)
                        self._begin_close(b, now, attempt=1, reason="closed at its deadline")
                elif st is FlapState.CLOSING:
                    if flap.switch_closed():
                        self._state[b] = FlapState.CLOSED
                    elif now >= until:
                        if self._attempt.get(b, 1) == 1:
                            log.warning("bin %s: flap did not report closed within %gs: opening and closing once more",
                                        b, flap.cfg.close_check_s)
                            self._drive_open_quietly(flap)
                            self._state[b] = FlapState.RETRY
                            self._until[b] = now + self.retry_open_s
                        else:
                            self._state[b] = FlapState.LOCKED_OUT
                            fault = Fault(FlapJammed.code, PartKind.FLAP,
                                          f"bin {b}: flap jammed, it did not report closed after a retry "
                                          f"(switch GPIO{flap.cfg.closed_switch_pin}); bin locked out until a technician clears it",
                                          b)
                            self.faults.append(fault)
                            new.append(fault)
                            log.error("%s [%s]", fault.message, fault.code)
                elif st is FlapState.RETRY:
                    if now >= until:
                        self._begin_close(b, now, attempt=2, reason="closed again")
        for f in new:
            if self.on_fault:
                try:
                    self.on_fault(f)
                except Exception:
                    log.exception("on_fault handler failed")
        return new

    def _drive_open_quietly(self, flap: Flap) -> None:
        try:
            flap.drive_open()
        except Exception:
            log.exception("bin %s: jam retry could not open the flap", flap.bin_id)

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.poll()
            except Exception:
                log.exception("flap watchdog: poll failed")

    # ---- shutdown -------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._shutdown()

    def __del__(self):
        # gpiozero's own __del__ would release the pins as they are (a servo goes limp open)
        try:
            if not self._closed:
                self._shutdown()
        except Exception:
            pass

    def _shutdown(self) -> None:
        """Drive every flap closed, let the servos get there, then release the pins. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        w = self._watchdog
        if w is not None and w is not threading.current_thread():
            w.join(timeout=2.0)
        with self._lock:
            for flap in self.flaps.values():
                self._safe_close(flap)
            for b in self._state:
                if self._state[b] is not FlapState.LOCKED_OUT:
                    self._state[b] = FlapState.CLOSED
            try:
                if self.flaps:
                    last_move = max(f.moved_t for f in self.flaps.values())
                    wait = last_move + self.release_delay_s - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
            finally:  # a second SIGTERM during the wait still releases (closed was already driven)
                self._release_all()
        try:
            atexit.unregister(self._atexit)
        except Exception:
            pass
        log.info("flaps closed and released")

    def _release_all(self) -> None:
        for flap in getattr(self, "flaps", {}).values():
            flap.release()


__all__ = ["FlapJammed", "Flap", "FlapState", "FlapBank", "RELEASE_DELAY_S", "RETRY_OPEN_S"]
