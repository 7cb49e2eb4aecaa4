"""Mock pins that simulated chips hang off (HX711, flap closed-switch).

gpiozero's MockFactory hands out one pin object per GPIO number. A simulated
device has to see the driver's output edges as they happen and drive the
driver's input line the way a real chip would, so it asks the factory for
pins of its own class *before* the driver opens them. The classes are made
on the fly as subclasses of the factory's own ``pin_class`` (MockPin or
MockPWMPin), because MockFactory refuses to hand a PWM pin to a non-PWM
request and vice versa.

Pin histories are bounded: a simulated HX711 toggles its clock ~50 times per
reading, and MockPin keeps every state change for ``assert_states``.
"""

from __future__ import annotations

from collections import deque
from time import monotonic
from typing import Callable, Optional

from gpiozero.pins.mock import MockFactory, MockPin, PinState

from kiosk.config import FlapConfig

HISTORY = 4096  # state changes kept per simulated pin


class _BoundedHistory:
    def clear_states(self):
        self._last_change = monotonic()
        self.states = deque([PinState(0.0, self._state)], maxlen=HISTORY)


class _WatchedOutput(_BoundedHistory):
    """An output pin that tells a listener about every level change."""

    def __init__(self, factory, info, listener: Optional[Callable[[float], None]] = None):
        super().__init__(factory, info)
        self.listener = listener

    def _change_state(self, value):
        changed = super()._change_state(value)
        if changed and self.listener is not None:
            self.listener(value)
        return changed


class _DrivenInput(_BoundedHistory):
    """An input line that an external chip drives; the pull only matters while nobody drives it.

    A plain MockPin jumps to its pull level whenever the driver configures
    the pull, which would override what the simulated chip is outputting.
    """

    def __init__(self, factory, info, reader: Optional[Callable[[], None]] = None):
        self.driven: Optional[bool] = None
        self.reader = reader
        super().__init__(factory, info)

    def _set_pull(self, value):
        if self.driven is None:
            return super()._set_pull(value)
        if value not in ("floating", "up", "down"):
            return super()._set_pull(value)  # let MockPin raise its own error
        self._pull = value
        self._apply()

    def _get_state(self):
        if self.reader is not None:
            self.reader()  # let the chip catch up with time (lazy simulation)
        return super()._get_state()

    def drive(self, level: Optional[bool]) -> None:
        """Drive the line high/low, or release it (None) to its pull."""
        self.driven = level
        self._apply()

    def _apply(self):
        level = self.driven
        if level is None:
            level = {"up": True, "down": False}.get(self._pull)
            if level is None:
                return  # floating and undriven: keeps whatever it had
        if self._function != "input":
            return  # the driver turned it into an output: not ours to drive
        if level:
            self.drive_high()
        else:
            self.drive_low()


_classes: dict = {}


def _pin_class(mixin, base):
    key = (mixin, base)
    if key not in _classes:
        _classes[key] = type(f"{mixin.__name__.strip('_')}{base.__name__}", (mixin, base), {})
    return _classes[key]


def _claim(factory: MockFactory, number: int, mixin, **kwargs):
    if not isinstance(factory, MockFactory):
        raise TypeError(f"simulated devices need gpiozero's MockFactory, got {type(factory).__name__}")
    cls = _pin_class(mixin, factory.pin_class)
    pin = factory.pin(number, pin_class=cls, **kwargs)
    if not isinstance(pin, mixin):
        raise RuntimeError(
            f"GPIO{number} already exists as a plain {type(pin).__name__}: "
            "attach the simulated device before opening the driver on that pin"
        )
    return pin


def watched_output(factory: MockFactory, number: int, listener: Callable[[float], None]):
    """A mock pin whose every level change calls ``listener(new_state)``."""
    pin = _claim(factory, number, _WatchedOutput, listener=listener)
    pin.listener = listener
    return pin


def driven_input(factory: MockFactory, number: int, reader: Optional[Callable[[], None]] = None):
    """A mock input line a simulated chip drives (``pin.drive(True/False/None)``)."""
    pin = _claim(factory, number, _DrivenInput, reader=reader)
    pin.reader = reader
    return pin


__all__ = ["HISTORY", "watched_output", "driven_input", "MockPin"]


class SimulatedFlapSwitch:
    """Drives a flap's closed switch from what the flap's own pin is doing.

    ``jammed = True`` makes it never report closed (the jam path).
    """

    def __init__(self, cfg: FlapConfig, *, pin_factory, jammed: bool = False):
        if cfg.closed_switch_pin is None:
            raise ValueError("this flap has no closed_switch_pin")
        self.cfg = cfg
        self.jammed = jammed
        self.switch_pin = driven_input(pin_factory, cfg.closed_switch_pin)
        self.flap_pin = watched_output(pin_factory, cfg.pin, self._on_flap)
        self._on_flap(self.flap_pin._state)

    def _is_closed_level(self, level) -> Optional[bool]:
        c = self.cfg
        if c.type == "servo":
            if not level:
                return None  # no pulses: the servo stays where it is
            closed_duty = c.closed_pulse_ms / 20.0
            return abs(float(level) - closed_duty) < 1e-6
        return bool(level) != c.active_high

    def _on_flap(self, level) -> None:
        closed = self._is_closed_level(level)
        if closed is None:
            return
        self.switch_pin.drive(not (closed and not self.jammed))  # low = pressed = closed

    def close(self) -> None:
        self.flap_pin.listener = None
