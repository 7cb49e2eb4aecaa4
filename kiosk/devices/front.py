"""The interface the worker drives: flaps to open and close, drops and fill levels to read.

``devices.hardware.Hardware`` is the real one (and, built with a simulation
backend, the demo's); ``NullHardware`` is a kiosk with no flaps or scales,
which only advises. Tests subclass ``NullHardware`` for their fakes. Imports
only records.
"""

from __future__ import annotations

from typing import Optional, Protocol

from kiosk.commands import ServiceAction
from kiosk.faults import Fault


class HardwareFront(Protocol):
    def open_flap(self, bin_id: str) -> bool: ...  # False: the flap refused (never pretend)
    def close_flap(self, bin_id: str) -> None: ...
    def close_all(self) -> None: ...
    def poll(self, now: float) -> object: ...  # once per frame: deadlines, jams, weighing
    def drops(self) -> list[tuple[str, float]]: ...  # confirmed (bin id, grams) since the last call
    def fill_levels(self) -> dict[str, float]: ...
    def refused_bins(self) -> set[str]: ...  # full or locked out
    def faults(self) -> list[Fault]: ...  # current, as the devices made them
    def service(self, action: ServiceAction, bin_id: Optional[str]) -> str: ...
    def close(self) -> None: ...


class NullHardware:
    """No flaps, no scales: a kiosk that only advises."""

    def open_flap(self, bin_id: str) -> bool:
        return True

    def close_flap(self, bin_id: str) -> None:
        pass

    def close_all(self) -> None:
        pass

    def poll(self, now: float) -> None:
        pass

    def drops(self) -> list[tuple[str, float]]:
        return []

    def fill_levels(self) -> dict[str, float]:
        return {}

    def refused_bins(self) -> set[str]:
        return set()

    def faults(self) -> list[Fault]:
        return []

    def service(self, action: ServiceAction, bin_id: Optional[str]) -> str:
        return f"{action.value}: no hardware"

    def close(self) -> None:
        pass
