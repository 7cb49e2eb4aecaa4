"""gpiozero pin factories by name: the real GPIO libraries (imported only here) or MockFactory.

``gpio.pin_factory: auto`` tries lgpio; off a Raspberry Pi it falls back to
MockFactory with a warning, on a Pi it fails rather than drive flaps on
pretend pins. Devices take the factory as an argument (``pin_factory=``).
"""

from __future__ import annotations

import logging
from typing import Optional

from kiosk.errors import HardwareError

log = logging.getLogger(__name__)



class NoGpio(HardwareError):
    """Asked for real pins on a machine that has none (a desktop without --simulate)."""

    code = "E402"

def _mock_factory():
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    return MockFactory(pin_class=MockPWMPin)


def on_raspberry_pi() -> bool:
    for p in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        try:
            with open(p, "rb") as f:
                if b"Raspberry Pi" in f.read():
                    return True
        except OSError:
            continue
    return False


def make_pin_factory(name: str, *, on_pi: Optional[bool] = None, fallback_to_mock: bool = True):
    """A gpiozero pin factory for ``gpio.pin_factory``; hardware libraries are imported only here.

    ``auto`` tries lgpio; off a Raspberry Pi it falls back to MockFactory
    (MockPWMPin, so servos work) with a warning. On a Pi it tries RPi.GPIO
    next and then fails: a real kiosk must not run its flaps on pretend pins.
    ``fallback_to_mock=False`` (the technician's flap and scale commands,
    ``kiosk doctor``) fails off a Pi too: pretend pins must never report that
    a real flap closed.
    """
    if name == "mock":
        return _mock_factory()

    def lgpio():
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()

    def rpigpio():
        from gpiozero.pins.rpigpio import RPiGPIOFactory

        return RPiGPIOFactory()

    def native():
        from gpiozero.pins.native import NativeFactory

        return NativeFactory()

    makers = {"lgpio": lgpio, "rpigpio": rpigpio, "native": native}
    if name in makers:
        try:
            return makers[name]()
        except Exception as e:
            raise HardwareError(f"gpio.pin_factory {name}: cannot start it ({type(e).__name__}: {e})") from e
    if name != "auto":
        raise HardwareError(f"gpio.pin_factory: unknown pin factory {name!r} (auto, mock, lgpio, rpigpio, native)")
    errors = []
    pi = on_raspberry_pi() if on_pi is None else on_pi
    for n in ("lgpio", "rpigpio") if pi else ("lgpio",):
        try:
            return makers[n]()
        except Exception as e:
            errors.append(f"{n}: {type(e).__name__}: {e}")
    if pi:
        raise HardwareError("gpio.pin_factory auto: no GPIO library works on this Raspberry Pi ("
                            + "; ".join(errors) + "): install python3-lgpio")
    if not fallback_to_mock:
        raise NoGpio("this machine has no GPIO (gpio.pin_factory auto: " + "; ".join(errors) + "): "
                     "flaps and scales cannot be reached here; on a desktop add --simulate")
    log.warning("gpio.pin_factory auto: no GPIO hardware (%s); using simulated pins (MockFactory)", "; ".join(errors))
    return _mock_factory()


def is_mock(pin_factory) -> bool:
    from gpiozero.pins.mock import MockFactory

    return isinstance(pin_factory, MockFactory)
