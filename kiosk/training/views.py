"""What training feeds the model for one photo, without PyTorch.

Kept apart from ``train.py`` so the test that compares it with the running
kiosk's input needs no PyTorch and runs in CI.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import degrade
from ..preprocess import InputSpec, model_input


def training_input(
    rgb: np.ndarray, spec: InputSpec, rng: Optional[np.random.Generator] = None, clean: float = 0.0
) -> np.ndarray:
    """Augmented when ``rng`` is given (training), plain for validation; then the shared path."""
    if rng is not None:
        rgb = degrade.augment(rgb, rng, spec.size[0], clean)
    return model_input(rgb, spec)
