"""What training feeds the model for one photo, without PyTorch.

Kept apart from ``train.py`` so the test that compares it with the running
kiosk's input needs no PyTorch and runs in CI.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from kiosk.model import degrade as degrade
from kiosk.preprocess import InputSpec, model_input
from kiosk.presence import item_box, square_roi

# The kiosk's view (``kiosk eval --as-kiosk`` plays the same): a camera stream of this size, the item
# held up this tall in it, the gate's square grown by the config's default margin.
KIOSK_VIEW = (640, 480)
KIOSK_ITEM_HEIGHT = (0.35, 0.7)  # of the view's height: from arm's length to close up
KIOSK_ROI_MARGIN = 0.15


def training_input(
    rgb: np.ndarray, spec: InputSpec, rng: Optional[np.random.Generator] = None, clean: float = 0.0,
    composite: float = 0.0, held: float = 0.0,
) -> np.ndarray:
    """Augmented when ``rng`` is given (training), plain for validation; then the shared path.

    ``held``: share of views that are the kiosk's own square around the item held
    up by a hand (``kiosk_view``); ``composite``: share of the others whose item is
    cut from TrashNet's board and set on a generated background
    (``kiosk.model.degrade.composite``). Camera conditions and framing follow for all.
    """
    if rng is not None:
        if held > 0.0 and rng.random() < held:
            rgb = kiosk_view(rgb, rng)
        elif composite > 0.0 and rng.random() < composite:
            rgb = degrade.composite(rgb, rng)
        rgb = degrade.augment(rgb, rng, spec.size[0], clean)
    return model_input(rgb, spec)


def kiosk_view(rgb: np.ndarray, rng: np.random.Generator, view: tuple[int, int] = KIOSK_VIEW) -> np.ndarray:
    """What the model sees on a kiosk when this photo's item is held up: the square the presence gate
    cuts around the item and the hand (forearm trimmed, ``kiosk.presence.item_box``) from a view of a
    generated kiosk surface. The sprite is ``degrade.held_item``, the one the as-kiosk clips and the
    demo show; the item's true outline stands in for the gate's foreground (its best case).

    Why: a photo classified whole is not what the kiosk classifies. A held item arrives smaller, with a
    hand, a sleeve and background around it, or, where the item cannot be cut from its board, as a
    whole photo held up like a card; a model trained on the photos alone reads much of that as paper.
    """
    w, h = view
    item, cut = degrade.held_cut(rgb)
    ih = degrade.held_height(item, w, h, rng.uniform(*KIOSK_ITEM_HEIGHT))
    sprite, alpha = degrade.held_item(item, cut, ih, h, rng)
    top = int(rng.uniform(0.05, 0.95) * (h - ih))
    left = int(rng.uniform(0.1, 0.9) * (w - sprite.shape[1]))
    frame = degrade.background(rng, h, w).astype(np.float32)
    degrade.place(frame, sprite, alpha, left, top)  # the forearm runs out of the view at the bottom
    mask = np.zeros((h, w), bool)
    mask[top:, left:left + sprite.shape[1]] = alpha[:h - top] > 0.5
    box = item_box(mask)
    if box is None:  # nothing of the item in view: keep the photo
        return rgb
    roi = square_roi(*box, KIOSK_ROI_MARGIN, w, h)
    return np.clip(frame[roi.y:roi.y + roi.h, roi.x:roi.x + roi.w], 0, 255).astype(np.uint8)


CROSS_SEED = 20  # fixed: the composited copy of val is the same set in every run


def cross_background(rgb: np.ndarray, index: int) -> np.ndarray:
    """Photo ``index`` of ``val`` set on a generated background, the same one every run.

    The own cross-background check (issue 20): val's items off TrashNet's board,
    no other augmentation; photos whose cut-out is implausible stay as they are.
    """
    return degrade.composite(rgb, np.random.default_rng((CROSS_SEED, index)))


def cross_background_input(rgb: np.ndarray, spec: InputSpec, index: int) -> np.ndarray:
    """``cross_background`` as training's loader feeds it to the model."""
    return model_input(cross_background(rgb, index), spec)
