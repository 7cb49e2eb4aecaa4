"""What the screen shows, as plain data: the main loop fills it, the UI draws it.

Keeping this a frozen record means the UI never reaches into the engine,
the camera or the hardware, and any screen can be drawn from sample data
(``kiosk snapshot``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from kiosk.datatypes import Decision, Roi
from kiosk.faults import Fault  # noqa: F401  (the screens' fault record is the one the devices make)

# Screens: the decision engine's states plus two of the app's own.
SCREENS = ("idle", "looking", "decided", "await_drop", "thanks", "unsure", "bin_full", "out_of_service", "service")


@dataclass(frozen=True, eq=False)
class View:
    screen: str = "idle"
    language: str = "en"
    frame: Optional[np.ndarray] = None  # RGB uint8 camera image for the live view
    frame_seq: int = -1  # changes when a new camera frame arrives
    roi: Optional[Roi] = None  # where the item is, in ``frame`` pixels
    progress: float = 0.0  # looking: 0..1
    decision: Optional[Decision] = None
    suggested_bin: Optional[str] = None  # bin_full: where to go instead
    full_bin: Optional[str] = None  # bin_full: the bin that refused
    fill: dict[str, float] = field(default_factory=dict)  # bin id -> 0..1
    refused: frozenset[str] = frozenset()  # bins refusing items now: full, emptied-not-reset, flap locked out
    out_of_order: frozenset[str] = frozenset()  # of those, the ones whose flap is locked out or would not open
    faults: tuple[Fault, ...] = ()
    crop: Optional[np.ndarray] = None  # unsure: the item as the kiosk saw it (RGB)
    guesses: tuple[str, ...] = ()  # unsure: the bins the model leant to, likeliest first
    counts_today: dict[str, int] = field(default_factory=dict)  # bin id -> items
    fps: float = 0.0
