"""The service PIN pad's state: digits typed, checked against the stored hash.

Kept apart from drawing so the rules that matter for a public kiosk (the PIN
is never stored or logged in clear, repeated wrong PINs lock the pad for a
while, an abandoned pad closes itself) are tested without pixels.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from kiosk.config import verify_pin

log = logging.getLogger(__name__)

MAX_DIGITS = 12
MAX_TRIES = 5  # wrong PINs in a row before the pad locks
LOCKOUT_S = 60.0
IDLE_CLOSE_S = 30.0  # an untouched pad closes itself


class PinPad:
    def __init__(self, pin_hash: Optional[str], clock: Callable[[], float]):
        self.pin_hash = pin_hash
        self.clock = clock
        self.is_open = False
        self.digits = ""
        self.message: Optional[str] = None  # a wording key: pin_wrong, pin_locked, pin_not_set
        self.tries = 0
        self.locked_until = 0.0
        self._touched = 0.0

    @property
    def configured(self) -> bool:
        return bool(self.pin_hash)

    def open(self) -> None:
        self.is_open, self.digits, self._touched = True, "", self.clock()
        self.message = None if self.configured else "pin_not_set"
        if not self.configured:
            log.warning("service screen asked for, but no service PIN is configured (service.pin_hash)")
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

    def _check(self) -> bool:
        pin, self.digits = self.digits, ""
        try:
            ok = bool(pin) and verify_pin(pin, self.pin_hash)
        except ValueError as e:  # a malformed hash: the schema should have refused it
            log.error("service PIN: stored hash is unusable (%s)", e)
            ok = False
        if ok:
            log.info("service screen unlocked with the PIN")
            self.tries, self.message = 0, None
            self.close()
            return True
        self.tries += 1
        if self.tries >= MAX_TRIES:
            self.locked_until = self.clock() + LOCKOUT_S
            self.tries = 0
            self.message = "pin_locked"
            log.warning("service PIN: %d wrong PINs in a row; pad locked for %.0f s", MAX_TRIES, LOCKOUT_S)
        else:
            self.message = "pin_wrong"
            log.warning("service PIN: wrong PIN entered (try %d of %d)", self.tries, MAX_TRIES)
        return False
