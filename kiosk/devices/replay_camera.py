"""The replay camera: a folder of images or a video file played as the camera (``camera.backend: replay``).

A backend of ``kiosk.camera`` for bring-up, evaluation clips and tests;
decoded frames are turned to RGB here, as every backend does.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from kiosk.camera import IMAGE_SUFFIXES, VIDEO_SUFFIXES, EndOfStream, PacedSource, bgr_to_rgb
from kiosk.config import CameraConfig
from kiosk.errors import CameraError

class ReplayCamera(PacedSource):
    """A folder of images (sorted by name) or a video file, optionally looped."""

    name = "replay"

    def __init__(self, cfg: CameraConfig, realtime: bool = True):
        super().__init__(cfg.fps, realtime)
        self.cfg = cfg
        self.path = Path(cfg.path or "")
        self.files: list[Path] = []
        self.cap = None
        self._video_pos = 0

    def _open(self) -> None:
        p = self.path
        if not p.exists():
            raise CameraError(f"replay source not found: {p} (camera.path)")
        if p.is_dir():
            self.files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not self.files:
                raise CameraError(f"replay folder has no images: {p}")
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            self.cap = cv2.VideoCapture(str(p))
            if not self.cap.isOpened():
                raise CameraError(f"cannot open replay video: {p}")
        else:
            raise CameraError(f"replay source is neither a folder nor a video file: {p}")

    def _make(self, index: int) -> np.ndarray:
        if self.files:
            n = len(self.files)
            if index >= n and not self.cfg.loop:
                raise EndOfStream(f"replay reached the end of {self.path}")
            f = self.files[index % n]
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                raise CameraError(f"replay image cannot be decoded: {f}")
        else:
            bgr = self._video_frame(index)
        return self._fit(bgr_to_rgb(bgr))

    def _video_frame(self, index: int) -> np.ndarray:
        while True:
            while self._video_pos < index:  # skip frames that are already late
                if not self.cap.grab():
                    break
                self._video_pos += 1
            ok, bgr = self.cap.read()
            if ok:
                self._video_pos += 1
                return bgr
            if not self.cfg.loop or self._video_pos == 0:
                raise EndOfStream(f"replay reached the end of {self.path}")
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            index -= self._video_pos
            self._video_pos = 0

    def _fit(self, rgb: np.ndarray) -> np.ndarray:
        w, h = self.cfg.size
        if rgb.shape[:2] == (h, w):
            return rgb
        return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)

    def _close(self) -> None:
        if self.cap is not None:
            self.cap.release()
