"""The synthetic camera: generated scenes of items held up to the kiosk, no files needed.

A backend of ``kiosk.camera`` like the others (``camera.backend: synthetic``),
kept apart from the real ones: the desktop demo, ``kiosk bench`` and the
tests run on it, a real kiosk never falls back to it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from kiosk.camera import IMAGE_SUFFIXES, PacedSource, bgr_to_rgb
from kiosk.config import CameraConfig
from kiosk.errors import CameraError
from kiosk.model import degrade

class SyntheticScene:
    """A generated kiosk view: a fixed wall, slow light drift, items and shadows.

    The timeline repeats every ``period`` seconds: empty, an item slides in,
    is held still, slides out; a soft shadow passes in the empty part. Item
    pictures can come from a folder (``items``), otherwise coloured shapes are
    drawn. Everything is a pure function of time, so tests are repeatable.
    """

    def __init__(self, size=(640, 480), seed=0, items: Optional[list[np.ndarray]] = None,
                 drift=0.12, drift_period=20.0, empty_s=2.5, enter_s=0.4, hold_s=2.5, leave_s=0.4,
                 shadow=True, noise=2.0):
        self.w, self.h = size
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.items = items or []
        self.drift, self.drift_period, self.noise = drift, drift_period, noise
        self.empty_s, self.enter_s, self.hold_s, self.leave_s = empty_s, enter_s, hold_s, leave_s
        self.period = empty_s + enter_s + hold_s + leave_s
        self.shadow = shadow
        self.background = self._make_background()
        self._shapes = self._make_shapes()
        self._held: dict[int, tuple[np.ndarray, int]] = {}

    def _make_background(self) -> np.ndarray:
        w, h = self.w, self.h
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = 150 + 40 * (xx / w) - 25 * (yy / h)
        tex = cv2.GaussianBlur(self.rng.normal(0, 12, (h, w)).astype(np.float32), (0, 0), 3)
        bg = np.stack([base + tex, base + tex + 5, base + tex - 10], axis=2)
        return np.clip(bg, 0, 255).astype(np.uint8)

    def _make_shapes(self) -> list[np.ndarray]:
        """RGBA item sprites: a bottle, a box and a can in strong colours."""
        s = int(min(self.w, self.h) * 0.55)
        sprites = []
        for kind, colour in (("bottle", (40, 160, 70)), ("box", (170, 120, 60)), ("can", (200, 30, 40))):
            img = np.zeros((s, s, 4), np.uint8)
            c = (*colour, 255)
            if kind == "bottle":
                cv2.ellipse(img, (s // 2, int(s * 0.62)), (int(s * 0.2), int(s * 0.33)), 0, 0, 360, c, -1)
                cv2.rectangle(img, (int(s * 0.44), int(s * 0.08)), (int(s * 0.56), int(s * 0.32)), c, -1)
            elif kind == "box":
                cv2.rectangle(img, (int(s * 0.15), int(s * 0.2)), (int(s * 0.85), int(s * 0.8)), c, -1)
                cv2.line(img, (int(s * 0.15), int(s * 0.5)), (int(s * 0.85), int(s * 0.5)), (120, 80, 40, 255), 4)
            else:
                cv2.rectangle(img, (int(s * 0.3), int(s * 0.15)), (int(s * 0.7), int(s * 0.85)), c, -1)
                cv2.rectangle(img, (int(s * 0.3), int(s * 0.3)), (int(s * 0.7), int(s * 0.4)), (230, 230, 230, 255), -1)
            sprites.append(img)
        return sprites

    def item_index(self, t: float) -> int:
        return int(t // self.period)

    def phase(self, t: float) -> tuple[str, float]:
        """('empty'|'enter'|'hold'|'leave', fraction through it) at time t."""
        x = t % self.period
        for name, dur in (("empty", self.empty_s), ("enter", self.enter_s), ("hold", self.hold_s), ("leave", self.leave_s)):
            if x < dur:
                return name, x / dur
            x -= dur
        return "leave", 1.0

    def item_present(self, t: float) -> bool:
        """Ground truth for tests: is the item (mostly) in view?"""
        name, f = self.phase(t)
        return name == "hold" or (name == "enter" and f > 0.5) or (name == "leave" and f < 0.5)

    def _sprite(self, index: int) -> tuple[np.ndarray, int]:
        """(RGBA sprite, height of the item in it): a photo held by a hand, or a drawn shape."""
        if not self.items:
            shape = self._shapes[index % len(self._shapes)]
            return shape, shape.shape[0]
        k = index % len(self.items)
        if k not in self._held:
            item, cut = degrade.held_cut(self.items[k])
            ih = degrade.held_height(item, self.w, self.h, 0.6 * min(self.h, self.w) / self.h)  # a wide item fits
            rgb, alpha = degrade.held_item(item, cut, ih, self.h, np.random.default_rng((self.seed, k)))
            self._held = {k: (np.dstack([np.clip(rgb, 0, 255), 255 * alpha]).astype(np.uint8), ih)}  # keep one
        return self._held[k]

    def render(self, t: float) -> np.ndarray:
        gain = 1.0 + self.drift * math.sin(2 * math.pi * t / self.drift_period)
        img = self.background.astype(np.float32) * gain
        name, f = self.phase(t)
        if name == "empty" and self.shadow and 0.3 < f < 0.9:
            img *= self._shadow_mask((f - 0.3) / 0.6)[:, :, None]
        if name != "empty":
            sprite, item_h = self._sprite(self.item_index(t))
            sh, sw = sprite.shape[:2]
            cx = {"enter": -sw / 2 + f * (self.w / 2 + sw / 2), "hold": self.w / 2,
                  "leave": self.w / 2 + f * (self.w / 2 + sw / 2)}[name]
            cx += 4 * math.sin(t * 5) if name == "hold" else 0  # a hand is never quite still
            x0, y0 = int(cx - sw / 2), int(self.h / 2 - item_h / 2)  # the item centred; a hand's arm runs below
            self._paste(img, sprite, x0, y0, gain)
        if self.noise:
            rng = np.random.default_rng((self.seed, int(t * 1000)))
            img += rng.normal(0, self.noise, img.shape).astype(np.float32)
        return np.clip(img, 0, 255).astype(np.uint8)

    def _shadow_mask(self, f: float) -> np.ndarray:
        """A soft dark band sweeping across (someone walking past a lamp)."""
        xx = np.arange(self.w, dtype=np.float32)
        cx = -0.3 * self.w + f * 1.6 * self.w
        band = np.exp(-((xx - cx) ** 2) / (2 * (0.12 * self.w) ** 2))
        return np.tile(1.0 - 0.35 * band, (self.h, 1))

    def _paste(self, img, sprite, x0, y0, gain) -> None:
        h, w = img.shape[:2]
        sh, sw = sprite.shape[:2]
        xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + sw), min(h, y0 + sh)
        if xa >= xb or ya >= yb:
            return
        s = sprite[ya - y0 : yb - y0, xa - x0 : xb - x0]
        a = s[:, :, 3:4].astype(np.float32) / 255.0
        img[ya:yb, xa:xb] = img[ya:yb, xa:xb] * (1 - a) + s[:, :, :3].astype(np.float32) * gain * a


class SyntheticCamera(PacedSource):
    """Generated frames of :class:`SyntheticScene`; needs no files or hardware.

    ``realtime=False`` makes frames as fast as they are asked for, with
    timestamps on a virtual clock (``seq / fps``): tests and benchmarks.
    ``fail_after`` raises CameraError after that many frames (fault injection).
    """

    name = "synthetic"

    def __init__(self, cfg: CameraConfig, realtime: bool = True, scene: Optional[SyntheticScene] = None,
                 fail_after: Optional[int] = None):
        super().__init__(cfg.fps, realtime)
        self.cfg = cfg
        self.scene = scene
        self.fail_after = fail_after

    def _open(self) -> None:
        if self.scene is None:
            items = _load_item_folder(Path(self.cfg.path)) if self.cfg.path else None
            self.scene = SyntheticScene(tuple(self.cfg.size), seed=self.cfg.seed, items=items)

    def _make(self, index: int) -> np.ndarray:
        if self.fail_after is not None and index >= self.fail_after:
            raise CameraError("synthetic camera: injected failure")
        return self.scene.render(index / self.fps)


def _load_item_folder(folder: Path, limit: int = 60) -> list[np.ndarray]:
    """Item photos for the synthetic scene (e.g. a data set's val/<class>/ files), the classes taken
    in turn (a sorted folder would show 60 boxes first), in a fixed shuffled order."""
    files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CameraError(f"synthetic: camera.path has no item images: {folder}")
    groups: dict[Path, list[Path]] = {}
    for f in files:
        groups.setdefault(f.parent, []).append(f)
    rng = np.random.default_rng(0)
    for g in groups.values():
        rng.shuffle(g)
    turns = [g[i] for i in range(max(len(g) for g in groups.values())) for g in groups.values() if i < len(g)]
    out = []
    for f in turns[:limit]:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise CameraError(f"synthetic: {f} is not a readable image")
        out.append(bgr_to_rgb(img))
    return out
