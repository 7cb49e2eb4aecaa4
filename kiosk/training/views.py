"""What training feeds the model for one photo, without PyTorch.

Kept apart from ``train.py`` so the test that compares it with the running
kiosk's input needs no PyTorch and runs in CI.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from kiosk.model import degrade as degrade
from kiosk.preprocess import InputSpec, model_input


def training_input(
    rgb: np.ndarray, spec: InputSpec, rng: Optional[np.random.Generator] = None, clean: float = 0.0,
    composite: float = 0.0,
) -> np.ndarray:
    """Augmented when ``rng`` is given (training), plain for validation; then the shared path.

    ``composite``: share of views whose item is cut from TrashNet's board and set
    on a generated background (``kiosk.model.degrade.composite``) before the rest.
    """
    if rng is not None:
        if composite > 0.0 and rng.random() < composite:
            rgb = degrade.composite(rgb, rng)
        rgb = degrade.augment(rgb, rng, spec.size[0], clean)
    return model_input(rgb, spec)


CROSS_SEED = 20  # fixed: the composited copy of val is the same set in every run


def cross_background_input(rgb: np.ndarray, spec: InputSpec, index: int) -> np.ndarray:
    """Photo ``index`` of ``val`` set on a generated background, the same one every run.

    The own cross-background check (issue 20): val's items off TrashNet's board,
    no other augmentation; photos whose cut-out is implausible stay as they are.
    """
    return model_input(degrade.composite(rgb, np.random.default_rng((CROSS_SEED, index))), spec)
