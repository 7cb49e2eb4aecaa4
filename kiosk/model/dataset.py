"""Reading an image-folder data set (``<root>/<class>/*.jpg``).

No PyTorch here: ``kiosk eval`` and the quantiser's calibration use it too.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from kiosk.errors import ImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def list_images(root: str | Path, classes: list[str] | None = None,
                allow_missing: bool = False) -> tuple[list[tuple[Path, int]], list[str]]:
    """All (path, class index) pairs, sorted; classes from sub-folders unless given.

    ``allow_missing``: a test set may lack a class (photos from another source
    with no ``trash/``): an absent folder then counts as a class with no photos.
    A folder that is none of ``classes`` is refused either way: a misspelt
    ``plastics/`` would otherwise drop its photos without a word.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        classes = found
    unknown = [f for f in found if f not in classes]
    if unknown:
        raise FileNotFoundError(f"{root} has folder(s) that are no class of the model: {', '.join(unknown)}")
    missing = [c for c in classes if c not in found]
    if missing and not allow_missing:
        raise FileNotFoundError(f"{root} has no folder for class(es): {', '.join(missing)}")
    items = []
    for idx, name in enumerate(classes):
        if name in missing:
            continue
        for p in sorted((root / name).iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                items.append((p, idx))
    if not items:
        raise FileNotFoundError(f"no images under {root}")
    return items, list(classes)


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8 (OpenCV decodes BGR: swap once, here)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"cannot decode image: {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
