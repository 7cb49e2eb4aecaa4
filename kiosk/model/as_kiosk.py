"""``kiosk eval --as-kiosk``: each photo held up to the kiosk, through the kiosk's own frame path.

A plain ``kiosk eval`` classifies the photo; the kiosk never does that. It
sees an empty view, then an item in it; the presence gate finds the item,
the model runs on the gate's square around it, and the decision engine
votes over frames and may stay unsure. This runs exactly that
(``kiosk.pipeline.Pipeline``, as the worker and ``kiosk bench`` do) on a
scene per photo: a plain background the gate learns first, then the photo
in the middle of the view, at the camera's size and frame rate. The label
is the engine's decision; an item it stayed unsure about counts as unsure
(and as its best guess in the confusion matrix).
"""

from __future__ import annotations

import cv2
import numpy as np

from kiosk.datatypes import Frame
from kiosk.model.metrics import classification_report
from kiosk.pipeline import Pipeline

BACKGROUND_RGB = (128, 128, 128)
EMPTY_S = 3.0  # the gate learns the empty view first
HOLD_S = 6.0  # longer than any decision takes; then the item counts as "no decision"
ITEM_HEIGHT = 0.6  # of the view: an item held up close, inside the gate's max_area


def scene(img: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(empty view, view with the photo in the middle), RGB at the camera's size."""
    w, h = size
    empty = np.empty((h, w, 3), np.uint8)
    empty[:] = BACKGROUND_RGB
    ih = int(h * ITEM_HEIGHT)
    iw = min(w - 2, int(img.shape[1] * ih / img.shape[0]))
    item = cv2.resize(img, (iw, ih), interpolation=cv2.INTER_AREA)
    full = empty.copy()
    y, x = (h - ih) // 2, (w - iw) // 2
    full[y:y + ih, x:x + iw] = item
    return empty, full


def kiosk_decision(cfg, clf, img: np.ndarray):
    """The decision the kiosk makes for this photo held up, or None when it made none in HOLD_S."""
    size = tuple(cfg.camera.size)
    pipe = Pipeline(cfg, clf, size)
    empty, full = scene(img, size)
    dt = 1.0 / cfg.camera.fps
    seq = 0
    for _ in range(int(EMPTY_S / dt)):
        pipe.step(Frame(image=empty, t=seq * dt, seq=seq))
        seq += 1
    for _ in range(int(HOLD_S / dt)):
        pipe.step(Frame(image=full, t=seq * dt, seq=seq))
        seq += 1
        if pipe.decider.decision is not None:
            return pipe.decider.decision
    return None


def evaluate_as_kiosk(cfg, clf, images) -> dict:
    """The classification report of the kiosk's decisions, plus how often it was unsure or decided nothing."""
    y_true, y_pred, unsure, undecided, sorted_right = [], [], 0, 0, 0
    for img, label in images:
        d = kiosk_decision(cfg, clf, img)
        if d is None or d.label not in clf.classes:
            undecided += 1
            continue
        unsure += bool(d.unsure)
        y_true.append(label)
        y_pred.append(clf.classes.index(d.label))
        sorted_right += (not d.unsure) and y_pred[-1] == label  # unsure: the person chose, the kiosk did not
    rep = classification_report(y_true, y_pred, clf.classes)
    n = len(images)
    rep.update({"as_kiosk": True, "images": n, "unsure": unsure, "undecided": undecided,
                "sorted_right": sorted_right / n if n else 0.0})
    return rep
