"""One fault record, from the device that detects it to the screen and the event log.

A fault names the kind of part (``camera``, ``scale``...) and, for the parts
each bin has, the bin: nothing parses ``"flap:glass"`` strings. ``part`` is
that spelling, kept for the event log and the journal, which people read.
Whether a fault takes the kiosk out of service is part of the record too:
a jammed flap only locks out its bin, a lost camera stops everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional


class PartKind(str, Enum):
    CONFIG = "config"
    CAMERA = "camera"
    MODEL = "model"
    SCALE = "scale"
    FLAP = "flap"
    HARDWARE = "hardware"
    EVENTLOG = "eventlog"


# Kinds whose faults leave the kiosk sorting (the bin is refused, or only records suffer).
WARNING_KINDS = frozenset({PartKind.FLAP, PartKind.EVENTLOG})


@dataclass(frozen=True)
class Fault:
    code: str  # short code a technician looks up in the README, e.g. "E200"
    kind: PartKind
    message: str
    bin_id: Optional[str] = None  # for the per-bin parts (scale, flap)
    blocking: Optional[bool] = field(default=None, compare=False)  # None: by kind (see WARNING_KINDS)

    def __post_init__(self):
        object.__setattr__(self, "kind", PartKind(self.kind))
        if self.blocking is None:
            object.__setattr__(self, "blocking", self.kind not in WARNING_KINDS)

    @property
    def part(self) -> str:
        """``camera``, ``scale:glass``: the key a part's fault is kept under, and how logs spell it."""
        return f"{self.kind.value}:{self.bin_id}" if self.bin_id else self.kind.value

    @classmethod
    def from_error(cls, err: BaseException, kind: PartKind, bin_id: Optional[str] = None) -> "Fault":
        """A part's raised error as its fault, under the error's own code (``KioskError.code``)."""
        return cls(getattr(err, "code", "E000"), kind, str(err), bin_id)
