"""The one image path shared by the kiosk, training and evaluation.

Training, ``kiosk eval`` and the running kiosk all call :func:`model_input`,
so the tensor the model sees never depends on who is asking. CLAHE runs on
the small model crop, not the full camera frame: it is cheap there and the
screen shows the camera image untouched.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Annotated

import cv2
import numpy as np
from pydantic import ConfigDict, Field

from kiosk.errors import ImageError


@dataclass(frozen=True)
class ClaheSettings:
    """Contrast-limited adaptive histogram equalisation on the L channel.

    The one CLAHE type: the config schema validates it in place
    (``enhance.clahe``: pydantic reads the bounds below), the model card and
    training build it directly.
    """

    __pydantic_config__ = ConfigDict(extra="forbid")

    enabled: Annotated[bool, Field(description="Contrast-limited equalisation of the L channel before the model.")] = True
    clip_limit: Annotated[float, Field(ge=0.5, le=10.0)] = 2.0
    tile_grid: Annotated[int, Field(ge=2, le=16, description="Tiles per side.")] = 8

    def off(self) -> "ClaheSettings":
        return replace(self, enabled=False)


@dataclass(frozen=True)
class InputSpec:
    """What the model expects: size, layout, normalisation and enhancement."""

    size: tuple[int, int] = (224, 224)  # (height, width)
    layout: str = "NCHW"
    mean: tuple[float, float, float] = (127.0, 127.0, 127.0)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    clahe: ClaheSettings = field(default_factory=ClaheSettings)


_local = threading.local()


def _clahe(clip_limit: float, tile_grid: int):
    # cv2.CLAHE objects keep state between calls, so each thread gets its own.
    cache = getattr(_local, "clahe", None)
    if cache is None:
        cache = _local.clahe = {}
    key = (float(clip_limit), int(tile_grid))
    if key not in cache and not (key[1] >= 1 and key[0] > 0):  # OpenCV divides by the grid: SIGFPE, no exception
        raise ValueError(f"CLAHE needs tile_grid >= 1 and clip_limit > 0, not {key[1]} and {key[0]}")
    if key not in cache:
        cache[key] = cv2.createCLAHE(clipLimit=key[0], tileGridSize=(key[1], key[1]))
    return cache[key]


def check_rgb(image) -> np.ndarray:
    """Return ``image`` if it is an HxWx3 uint8 array, else raise ImageError."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"image must be HxWx3 RGB, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ImageError(f"image must be uint8, got {image.dtype}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise ImageError(f"image is too small to classify: {image.shape[1]}x{image.shape[0]}")
    return image


def apply_clahe(rgb: np.ndarray, settings: ClaheSettings) -> np.ndarray:
    """CLAHE on the L channel in LAB; colours keep their hue. Off means identity."""
    if not settings.enabled:
        return rgb
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = _clahe(settings.clip_limit, settings.tile_grid).apply(
        np.ascontiguousarray(lab[:, :, 0])
    )
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def center_square(rgb: np.ndarray) -> np.ndarray:
    """The largest centred square: items are held up in the middle of the view."""
    h, w = rgb.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return rgb[y : y + s, x : x + s]


def resize_to(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    if rgb.shape[:2] == (h, w):
        return rgb
    shrinking = rgb.shape[0] > h or rgb.shape[1] > w
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(rgb, (w, h), interpolation=interp)


def crop_for_model(rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Centre square, resized to the model size, enhanced: still RGB uint8."""
    check_rgb(rgb)
    return apply_clahe(resize_to(center_square(rgb), spec.size), spec.clahe)


def normalise(rgb_small: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 HxWx3 -> float32 CHW or HWC (per ``spec.layout``), without batch axis."""
    mean = np.asarray(spec.mean, dtype=np.float32)
    inv_std = 1.0 / np.asarray(spec.std, dtype=np.float32)
    x = (rgb_small.astype(np.float32) - mean) * inv_std
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x)


def model_input(rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The whole shared path: crop, resize, CLAHE, normalise (no batch axis)."""
    return normalise(crop_for_model(rgb, spec), spec)

