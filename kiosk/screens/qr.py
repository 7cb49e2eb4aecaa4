"""QR codes for the fault screens, from ``segno`` (a well-kept pure-Python encoder), drawn once and cached.

Dark modules on white with the standard quiet zone, scaled by whole pixels so
every module is the same size and a phone camera reads it off the panel.
"""

from __future__ import annotations

from functools import lru_cache

import pygame

BORDER = 2  # modules of white around the code (segno's default is 4; 2 reads fine on a lit screen)


@lru_cache(maxsize=8)
def qr_surface(text: str, side_px: int) -> pygame.Surface:
    """A square surface at most ``side_px`` wide holding ``text`` as a QR code (error correction M)."""
    import segno

    code = segno.make(text, error="m", micro=False)
    matrix = code.matrix
    n = len(matrix) + 2 * BORDER
    module = max(1, side_px // n)
    surface = pygame.Surface((n * module, n * module))
    surface.fill((255, 255, 255))
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                surface.fill((0, 0, 0), ((x + BORDER) * module, (y + BORDER) * module, module, module))
    return surface

