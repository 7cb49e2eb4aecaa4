"""Small frozen records passed between the kiosk's stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass(frozen=True, eq=False)
class Frame:
    """One camera frame. ``image`` is RGB uint8 (HxWx3), always RGB.

    ``preview`` is an optional bigger RGB image for the screen (picamera2's
    main stream); the model and the gate look at ``image``.
    """

    image: np.ndarray
    t: float  # time.monotonic() at capture
    seq: int
    preview: Optional[np.ndarray] = None

    @property
    def screen(self) -> np.ndarray:
        return self.image if self.preview is None else self.preview


@dataclass(frozen=True)
class Roi:
    """Region of interest in ``Frame.image`` pixels."""

    x: int
    y: int
    w: int
    h: int

    def crop(self, image: np.ndarray) -> np.ndarray:
        return image[self.y : self.y + self.h, self.x : self.x + self.w]


@dataclass(frozen=True)
class Presence:
    present: bool
    roi: Optional[Roi] = None
    area: float = 0.0  # foreground fraction of the view


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """What the kiosk decided for one item, and what happened next."""

    t: float
    bin_id: Optional[str]
    label: Optional[str]  # the likeliest class in the decided bin (its guidance is shown); unsure: the likeliest class
    score: float = 0.0  # the decided bin's mean score, its classes' scores summed (not ``label``'s); unsure: label's
    scores: dict[str, float] = field(default_factory=dict)  # mean score per class over the votes
    corrected: bool = False  # the person chose the bin on the unsure/full screen
    unsure: bool = False
    weight_g: Optional[float] = None
    drop_confirmed: Optional[bool] = None  # None: no scale to tell


@dataclass(frozen=True)
class Reading:
    """A load-cell reading."""

    grams: float
    stable: bool
    t: float
    fault: Optional[str] = None
