"""The presence gate: is an item in front of the camera, and where?

Cheap enough for every frame (a MOG2 background model on a ~160 px wide
image), so the expensive classifier runs only while something is there.
The background learns only while the view is empty, so an item held still
is not absorbed into it. Shadows (darker, same colour) are labelled by MOG2
and ignored; a change over most of the view (lights switched, lens covered)
is not an item and makes the model re-learn quickly.

Ghosts: something in view while the background was learnt (at start-up, or
an item left on the ledge) leaves, when it goes, a foreground blob over an
empty patch. A real item has edges along the blob's border in the *current*
frame; a ghost's edges are in the background model instead. Blobs whose
border is weaker now than in the background are ghosts and are re-learnt at
once. Anything present without a break for ``absorb_frames`` is learnt too,
so a forgotten object cannot block the kiosk.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from kiosk.config import PresenceConfig
from kiosk.datatypes import Presence, Roi

SHADOW = 127  # MOG2's label for shadow pixels


class PresenceGate:
    def __init__(self, cfg: PresenceConfig, frame_size: tuple[int, int]):
        self.cfg = cfg
        self.frame_w, self.frame_h = frame_size
        self.small_w = min(cfg.analysis_width, self.frame_w)
        self.small_h = max(16, round(self.frame_h * self.small_w / self.frame_w))
        self.scale = self.frame_w / self.small_w
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._band_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        self.reset()

    def reset(self) -> None:
        self.bg = cv2.createBackgroundSubtractorMOG2(history=300, varThreshold=self.cfg.var_threshold, detectShadows=True)
        self.frames = 0
        self.present = False
        self._run = 0  # consecutive frames disagreeing with ``present``
        self._global = 0  # consecutive frames where most of the view changed
        self._present_for = 0  # consecutive frames counted as present
        self.mask = None
        self.ghosts = 0  # ghost blobs re-learnt (for tests and the log)

    def small(self, rgb: np.ndarray) -> np.ndarray:
        img = cv2.resize(rgb, (self.small_w, self.small_h), interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(img, (3, 3), 0)

    def update(self, rgb: np.ndarray) -> Presence:
        """Feed one frame; returns whether an item is present and its region."""
        small = self.small(rgb)
        self.frames += 1
        warming = self.frames <= self.cfg.warmup_frames
        if warming:
            rate = 1.0 / self.frames  # average the first frames quickly
        elif self._global >= 3:
            rate = 0.2  # the whole scene changed: adopt it fast
        else:
            rate = 0.0 if self.present else self.cfg.learning_rate
        raw = self.bg.apply(small, learningRate=rate)
        if warming:
            return Presence(False)
        fg = np.where(raw == 255, 255, 0).astype(np.uint8)  # shadows count as background
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._kernel)
        self.mask = fg
        area = float(np.count_nonzero(fg)) / fg.size
        self._global = self._global + 1 if area > self.cfg.max_area else 0
        candidate = self.cfg.min_area <= area <= self.cfg.max_area
        if candidate and self._is_ghost(small, fg):
            self._relearn(small)
            self.ghosts += 1
            candidate = False
        roi = self._roi(fg) if candidate else None
        if roi is None:
            candidate = False

        if candidate != self.present:
            self._run += 1
            needed = self.cfg.enter_frames if candidate else self.cfg.leave_frames
            if self._run >= needed:
                self.present, self._run = candidate, 0
        else:
            self._run = 0
        self._present_for = self._present_for + 1 if self.present else 0
        if self._present_for > self.cfg.absorb_frames:  # left there: becomes background
            self._relearn(small)
            self.present, self._present_for, self._run = False, 0, 0
        return Presence(self.present, roi if self.present else None, area)

    def _relearn(self, small: np.ndarray) -> None:
        """Make the current view the background, at once."""
        self.bg.apply(small, learningRate=1.0)

    def _is_ghost(self, small: np.ndarray, fg: np.ndarray) -> bool:
        """True when the blob's border has stronger edges in the background than now."""
        band = cv2.morphologyEx(fg, cv2.MORPH_GRADIENT, self._band_kernel) > 0
        if not band.any():
            return False
        background = self.bg.getBackgroundImage()
        if background is None:
            return False
        now_edges = _edge_strength(small)[band].mean()
        bg_edges = _edge_strength(background)[band].mean()
        return now_edges < 0.6 * bg_edges

    def _roi(self, fg: np.ndarray):
        """Bounding square around the big blobs, with a margin, in frame pixels."""
        n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        if n <= 1:
            return None
        areas = stats[1:, cv2.CC_STAT_AREA]
        keep = np.nonzero(areas >= max(4, 0.1 * areas.max()))[0] + 1
        if areas.max() < self.cfg.min_area * fg.size * 0.5:
            return None  # scattered specks, not one object
        box = item_box(np.isin(labels, keep))
        if box is None:
            return None
        x0, y0, x1, y1 = box
        return square_roi(x0 * self.scale, y0 * self.scale, x1 * self.scale, y1 * self.scale,
                          self.cfg.roi_margin, self.frame_w, self.frame_h)


def _edge_strength(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


ARM_WIDTH = 0.5  # lines of the blob narrower than this (of its widest) at a view edge are an arm
ARM_CONTACT = 0.5  # an arm meets the view's edge over at most this fraction of the blob's extent along it
ARM_ELONGATION = 1.5  # the trimmed part must be at least this many times longer than wide
ARM_MAX = 0.8  # never trim more than this fraction of the blob: what is left must be the item


def item_box(mask: np.ndarray) -> Optional[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of the item in a foreground mask, without the arm that holds it; None if empty.

    A passer-by's forearm runs from the item out of the view (below it or to
    a side); in the box it would make the model's square mostly arm and
    background. At each such edge the blob touches narrowly, the run of lines
    next to it that are much narrower than the blob's widest is a candidate;
    the most elongated one (an arm is longer than wide) is trimmed off. Not
    trimmed: an axis the blob spans from edge to edge, a wide contact (the
    item itself at the edge), a run that would leave too little (a narrow
    item held at its end keeps its whole box).
    """
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    h, w = mask.shape
    sub = mask[y0:y1, x0:x1]
    bw, bh = x1 - x0, y1 - y0
    edges = []  # (contact fraction, edge); from above is not how people hold things up
    if y1 == h and y0 > 0:
        edges.append((np.count_nonzero(sub[-1]) / bw, "bottom"))
    if x0 == 0 and x1 < w:
        edges.append((np.count_nonzero(sub[:, 0]) / bh, "left"))
    if x1 == w and x0 > 0:
        edges.append((np.count_nonzero(sub[:, -1]) / bh, "right"))
    best = None  # (elongation, edge, run): an arm is longer than it is wide
    for contact, edge in edges:
        if contact > ARM_CONTACT:
            continue  # the item itself at the edge, not an arm
        if edge == "bottom":
            widths, extent = np.count_nonzero(sub, axis=1)[::-1], bh
        else:
            widths, extent = np.count_nonzero(sub, axis=0), bw
            widths = widths if edge == "left" else widths[::-1]
        narrow = widths < ARM_WIDTH * widths.max()
        run = int(np.argmin(narrow)) if not narrow.all() else len(narrow)
        if run == 0 or run > ARM_MAX * extent:
            continue
        elongation = run / max(1.0, float(widths[:run].mean()))
        if elongation >= ARM_ELONGATION and (best is None or elongation > best[0]):
            best = (elongation, edge, run)
    if best is None:
        return x0, y0, x1, y1
    _, edge, run = best
    keep = {"bottom": sub[:bh - run], "left": sub[:, run:], "right": sub[:, :bw - run]}[edge]
    ky, kx = np.nonzero(keep)
    dx, dy = (run if edge == "left" else 0), 0
    return x0 + dx + int(kx.min()), y0 + dy + int(ky.min()), x0 + dx + int(kx.max()) + 1, y0 + int(ky.max()) + 1


def square_roi(x0, y0, x1, y1, margin, frame_w, frame_h) -> Roi:
    """Grow a box by ``margin`` and to a square (the model sees a square), inside the frame."""
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(x1 - x0, y1 - y0) * (1 + margin)
    side = int(min(max(side, 32), frame_w, frame_h))
    x = int(round(min(max(cx - side / 2, 0), frame_w - side)))
    y = int(round(min(max(cy - side / 2, 0), frame_h - side)))
    return Roi(x, y, side, side)
