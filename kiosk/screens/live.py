"""The live camera view: one conversion per camera frame, not per screen frame.

The display refreshes at its own rate and the camera at another, so the
scaled picture is kept and reused until ``frame_seq`` changes. Scaling is
done on the numpy array (OpenCV's resize, much cheaper than pygame's
smoothscale) and wrapped into a surface without a copy.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pygame

from kiosk.datatypes import Roi

try:  # a kiosk dependency, but the UI still works (slower) without it
    import cv2
except ImportError:  # pragma: no cover - exercised only where OpenCV is absent
    cv2 = None


def fit_rect(frame_w: int, frame_h: int, box: pygame.Rect) -> pygame.Rect:
    """The largest rect of the frame's aspect inside ``box``, centred (nothing is cropped away)."""
    scale = min(box.w / frame_w, box.h / frame_h)
    w, h = max(1, round(frame_w * scale)), max(1, round(frame_h * scale))
    return pygame.Rect(box.x + (box.w - w) // 2, box.y + (box.h - h) // 2, w, h)


def map_roi(roi: Roi, frame_w: int, frame_h: int, dest: pygame.Rect) -> pygame.Rect:
    """A region in frame pixels as screen pixels inside ``dest``, clipped to it."""
    sx, sy = dest.w / frame_w, dest.h / frame_h
    r = pygame.Rect(dest.x + round(roi.x * sx), dest.y + round(roi.y * sy), round(roi.w * sx), round(roi.h * sy))
    return r.clip(dest)


class LiveView:
    """Caches the scaled camera picture for one box."""

    def __init__(self):
        self._key = None
        self._surface: Optional[pygame.Surface] = None
        self._pixels: Optional[np.ndarray] = None  # keeps frombuffer's memory alive
        self.dest = pygame.Rect(0, 0, 0, 0)
        self.conversions = 0  # for tests and the benchmark

    def surface(self, frame: Optional[np.ndarray], seq: int, box: pygame.Rect) -> Optional[pygame.Surface]:
        """The frame scaled into ``box`` (placed at ``self.dest``), or None without a usable frame."""
        if frame is None or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or 0 in frame.shape[:2]:
            return None
        key = (seq, id(frame), frame.shape, tuple(box))
        if key == self._key:
            return self._surface
        h, w = frame.shape[:2]
        self.dest = fit_rect(w, h, box)
        size = self.dest.size
        if cv2 is not None:
            # area averaging only where linear would alias (it is ~7x slower at 0.77x)
            interp = cv2.INTER_AREA if size[0] * 2 <= w else cv2.INTER_LINEAR
            pixels = np.ascontiguousarray(cv2.resize(frame, size, interpolation=interp))
            surf = pygame.image.frombuffer(pixels, size, "RGB")
        else:
            pixels = np.ascontiguousarray(frame)
            surf = pygame.transform.smoothscale(pygame.image.frombuffer(pixels, (w, h), "RGB"), size)
        self._pixels, self._surface, self._key = pixels, surf, key
        self.conversions += 1
        return surf
