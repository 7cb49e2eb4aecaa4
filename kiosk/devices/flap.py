"""One bin flap on gpiozero: a servo or a solenoid/motor output, with an optional closed switch.

Built with its backend (``pin_factory=``) and in its safe state (closed) from
the first pulse; ``kiosk.actuators.FlapBank`` owns every flap and decides
when one may open.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

from kiosk.config import FlapConfig
from kiosk.errors import HardwareError

log = logging.getLogger(__name__)

class Flap:
    """One bin's flap: a hobby servo (PWM pulse widths) or a plain output.

    Starts closed. Low level: no deadlines, no locking; ``FlapBank`` owns it.
    """

    def __init__(self, bin_id: str, cfg: FlapConfig, *, pin_factory):
        from gpiozero import Button, DigitalOutputDevice, Servo

        self.bin_id, self.cfg = bin_id, cfg
        self._dev = self._switch = None
        self.commanded_open = False
        try:
            if cfg.type == "servo":
                lo, hi = sorted((cfg.open_pulse_ms, cfg.closed_pulse_ms))
                if lo == hi:
                    raise HardwareError(f"bin {bin_id}: open_pulse_ms equals closed_pulse_ms, the flap would never move")
                self._open_value = 1.0 if cfg.open_pulse_ms > cfg.closed_pulse_ms else -1.0
                self._closed_value = -self._open_value
                self._dev = Servo(cfg.pin, initial_value=self._closed_value, min_pulse_width=lo / 1000.0,
                                  max_pulse_width=hi / 1000.0, pin_factory=pin_factory)
            else:
                # initial_value=False is "inactive", i.e. closed whatever active_high says
                self._dev = DigitalOutputDevice(cfg.pin, active_high=cfg.active_high, initial_value=False,
                                                pin_factory=pin_factory)
            if cfg.closed_switch_pin is not None:
                # switch to ground, internal pull-up: pressed (low) = closed; a broken wire reads "open"
                self._switch = Button(cfg.closed_switch_pin, pull_up=True, pin_factory=pin_factory)
        except HardwareError:
            self.release()
            raise
        except Exception as e:
            self.release()
            raise HardwareError(f"bin {bin_id}: cannot set up the flap on GPIO{cfg.pin}: {type(e).__name__}: {e}") from e
        self.moved_t = time.monotonic()  # real time: how long the servo has had to get there

    @property
    def has_switch(self) -> bool:
        return self._switch is not None

    @property
    def released(self) -> bool:
        return self._dev is None

    def drive_open(self) -> None:
        self._set(True)

    def drive_closed(self) -> None:
        self._set(False)

    def _set(self, open_: bool) -> None:
        dev = self._dev
        if dev is None:
            raise HardwareError(f"bin {self.bin_id}: flap already released")
        if self.cfg.type == "servo":
            dev.value = self._open_value if open_ else self._closed_value
        else:
            dev.value = bool(open_)
        if open_ != self.commanded_open:
            self.moved_t = time.monotonic()
        self.commanded_open = open_

    def switch_closed(self) -> Optional[bool]:
        """What the closed-position switch says (None: no switch fitted)."""
        return None if self._switch is None else bool(self._switch.is_pressed)

    def release(self) -> None:
        """Free the pins (they become inputs). Call ``drive_closed`` first. Idempotent."""
        for attr in ("_dev", "_switch"):
            dev = getattr(self, attr)
            setattr(self, attr, None)
            if dev is not None:
                try:
                    dev.close()
                except Exception:
                    log.exception("bin %s: releasing %s failed", self.bin_id, attr)


# --------------------------------------------------------------------------
# All flaps, one owner
# --------------------------------------------------------------------------
