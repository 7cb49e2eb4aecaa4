"""The service PIN pad's state: digits typed, checked against the stored hash.

Kept apart from drawing so the rules that matter for a public kiosk (the PIN
is never stored or logged in clear, repeated wrong PINs lock the pad for
longer each time, a restart does not reset that, an abandoned pad closes
itself) are tested without pixels. Each check leaves a :class:`PinAttempt`
in ``attempts`` for the event log (``kiosk stats`` counts wrong PINs).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from kiosk.config import read_pin_hash, verify_pin

log = logging.getLogger(__name__)

MAX_DIGITS = 12
MAX_TRIES = 5  # wrong PINs in a row before the pad locks
LOCKOUT_S = 60.0  # the first lockout; each one after it doubles...
MAX_LOCKOUT_S = 3600.0  # ...up to an hour: 5 guesses an hour, the right PIN of a million in ~11 years
IDLE_CLOSE_S = 30.0  # an untouched pad closes itself
PIN_TRIES_FILE = "pin-tries.json"  # on the data partition: a restart must not reset the lockout


def lockout_s(lockouts: int) -> float:
    """How long the ``lockouts``-th lockout in a row lasts."""
    return min(MAX_LOCKOUT_S, LOCKOUT_S * 2.0 ** max(0, lockouts - 1))


@dataclass(frozen=True)
class PinAttempt:
    """One check of a PIN, for the event log: never the digits."""

    ok: bool
    wrong_in_a_row: int
    locked_s: float = 0.0  # this wrong PIN locked the pad for so long

    def describe(self) -> str:
        if self.ok:
            return "right PIN"
        if self.locked_s:
            return f"wrong PIN, {self.wrong_in_a_row} in a row: pad locked for {self.locked_s:.0f} s"
        return f"wrong PIN, {self.wrong_in_a_row} in a row"


class PinTries:
    """Wrong PINs in a row and the lockout, kept in a small file so a restart (or a power cut) keeps them.

    Wall-clock time in the file (monotonic clocks restart with the process);
    a clock set back cannot stretch a lockout past its own length.
    """

    def __init__(self, path: Optional[Path], wall: Callable[[], float] = time.time):
        self.path = Path(path) if path is not None else None
        self.wall = wall

    def load(self) -> tuple[int, int, float]:
        """(wrong in a row, lockouts in a row, seconds of lockout left)."""
        from kiosk.files import read_json

        if self.path is None:
            return 0, 0, 0.0
        try:
            d = read_json(self.path, 4096)
            wrong, lockouts, until = int(d["wrong_in_a_row"]), int(d["lockouts"]), float(d["locked_until"])
        except FileNotFoundError:
            return 0, 0, 0.0
        except (OSError, ValueError, TypeError, KeyError, OverflowError) as e:
            # unreadable: as if the last lockout had just begun, never as if nothing had happened
            log.error("service PIN: %s unreadable (%s): the pad starts locked", self.path, e)
            return MAX_TRIES, 1, LOCKOUT_S
        wrong, lockouts = max(0, min(wrong, 10**6)), max(0, min(lockouts, 64))
        left = min(max(0.0, until - self.wall()), lockout_s(lockouts)) if until == until else 0.0
        return wrong, lockouts, left

    def save(self, wrong: int, lockouts: int, left_s: float) -> None:
        import json

        from kiosk.files import atomic_write_text

        if self.path is None:
            return
        try:
            atomic_write_text(self.path, json.dumps({"wrong_in_a_row": wrong, "lockouts": lockouts,
                                                     "locked_until": self.wall() + left_s}) + "\n")
        except OSError as e:
            log.error("service PIN: tries not kept in %s (%s): a restart would reset the lockout", self.path, e)


class PinPad:
    """``pin_hash`` from the config, or ``pin_hash_file`` (read at each check, so a new hash needs no restart)."""

    def __init__(self, pin_hash: Optional[str], clock: Callable[[], float], *, pin_hash_file: Optional[Path] = None,
                 tries: Optional[PinTries] = None):
        self.pin_hash = pin_hash
        self.pin_hash_file = Path(pin_hash_file) if pin_hash_file is not None else None
        self.clock = clock
        self.store = tries if tries is not None else PinTries(None)
        self.is_open = False
        self.digits = ""
        self.message: Optional[str] = None  # a wording key: pin_wrong, pin_locked, pin_not_set
        self.tries, self.lockouts, left = self.store.load()
        self.locked_until = clock() + left if left else 0.0
        self.attempts: list[PinAttempt] = []  # for the event log; whoever records them empties it
        self._touched = 0.0

    @property
    def configured(self) -> bool:
        return bool(self.pin_hash or self.pin_hash_file)

    def open(self) -> None:
        self.is_open, self.digits, self._touched = True, "", self.clock()
        self.message = None if self.configured else "pin_not_set"
        if not self.configured:
            log.warning("service screen asked for, but no service PIN is configured (service.pin_hash_file)")
        else:
            log.info("service PIN pad opened")

    def close(self) -> None:
        self.is_open, self.digits = False, ""

    def lock_left(self) -> int:
        return max(0, int(self.locked_until - self.clock() + 0.999))

    def tick(self) -> None:
        if self.is_open and self.clock() - self._touched > IDLE_CLOSE_S:
            log.info("service PIN pad closed: not touched for %.0f s", IDLE_CLOSE_S)
            self.close()

    def press(self, key: str) -> bool:
        """A key: a digit, 'del' or 'ok'. True once the right PIN is entered."""
        self._touched = self.clock()
        if not self.configured:
            return False
        if self.lock_left():
            self.message = "pin_locked"
            return False
        if key == "del":
            self.digits = self.digits[:-1]
        elif key == "ok":
            return self._check()
        elif key.isdigit() and len(self.digits) < MAX_DIGITS:
            self.digits += key
            if self.message == "pin_wrong":
                self.message = None
        return False

    def state(self) -> tuple:
        """What the pad shows; part of the UI's redraw key."""
        left = self.lock_left()
        return (self.is_open, len(self.digits), "pin_locked" if left else self.message, left)

    def _stored_hash(self) -> Optional[str]:
        if self.pin_hash_file is None:
            return self.pin_hash
        try:
            return read_pin_hash(self.pin_hash_file)
        except (OSError, ValueError) as e:
            log.error("service PIN: service.pin_hash_file %s: %s", self.pin_hash_file, e)
            return None

    def _check(self) -> bool:
        pin, self.digits = self.digits, ""
        stored = self._stored_hash()
        if not stored:
            self.message = "pin_not_set"
            return False
        try:
            ok = bool(pin) and verify_pin(pin, stored)
        except Exception as e:  # never out of the UI loop: a wrong PIN, and the journal says why
            log.error("service PIN: stored hash is unusable (%s: %s)", type(e).__name__, e)
            ok = False
        if ok:
            log.info("service screen unlocked with the PIN")
            self.tries, self.lockouts, self.message = 0, 0, None
            self.store.save(0, 0, 0.0)
            self.attempts.append(PinAttempt(True, 0))
            self.close()
            return True
        self.tries += 1
        locked = 0.0
        if self.tries % MAX_TRIES == 0:
            self.lockouts += 1
            locked = lockout_s(self.lockouts)
            self.locked_until = self.clock() + locked
            self.message = "pin_locked"
            log.warning("service PIN: %d wrong PINs in a row; pad locked for %.0f s", self.tries, locked)
        else:
            self.message = "pin_wrong"
            log.warning("service PIN: wrong PIN entered (%d in a row)", self.tries)
        self.store.save(self.tries, self.lockouts, locked)
        self.attempts.append(PinAttempt(False, self.tries, locked))
        return False
