"""What people ask the kiosk to do: one vocabulary for the touchscreen, the worker and the CLI.

The UI returns these from a touch, the worker's queue carries them unchanged,
and the service actions are an enum the hardware layer and ``kiosk`` sub-commands
share, so an action the screen offers is one the worker knows, and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional, Union


class ServiceAction(str, Enum):
    """Technician actions on the service screen (on the selected bin)."""

    TARE = "tare"  # zero the bin's scale (empty bin)
    FLAP_TEST = "flap_test"  # open and close the bin's flap, check its switch
    RESET = "reset"  # clear the bin's "full until emptied" flag and its flap lockout, after a technician looked


@dataclass(frozen=True)
class ChooseBin:
    """The person picked a bin on the unsure or bin-full screen (a correction)."""

    bin_id: str


@dataclass(frozen=True)
class TryAgain:
    """The person on the unsure screen wants the kiosk to look again (nothing is recorded for this try)."""


@dataclass(frozen=True)
class SetLanguage:
    lang: str


@dataclass(frozen=True)
class ServiceMode:
    """``on``: the right PIN was entered, show the service screen; off: the technician closed it."""

    on: bool


@dataclass(frozen=True)
class Service:
    action: ServiceAction
    bin_id: Optional[str] = None


@dataclass(frozen=True)
class PinChecked:
    """A PIN was checked on the pad: the worker logs it (``pin_right``/``pin_wrong``). Never the digits."""

    ok: bool
    detail: str


Command = Union[ChooseBin, TryAgain, SetLanguage, ServiceMode, Service, PinChecked]
