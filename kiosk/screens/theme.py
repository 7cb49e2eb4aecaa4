"""Colours of the touchscreen, and the one rule for text on a coloured bin.

A dark background keeps glare down in a bright entrance hall and lets the
bins' own colours carry the message; text on a bin colour is black or white,
whichever contrasts more (WCAG relative luminance), so a yellow bin still
reads.
"""

from __future__ import annotations

BG = (16, 20, 26)
PANEL = (36, 42, 52)
PANEL_HI = (58, 66, 80)
TEXT = (242, 244, 247)
INK = (12, 14, 18)  # dark text on light colours
MUTED = (165, 172, 184)
ACCENT = (70, 190, 255)
WARN = (255, 196, 0)
ERROR = (232, 72, 60)
DISABLED = (72, 76, 84)
LETTERBOX = (0, 0, 0)

Colour = tuple[int, int, int]


def hex_rgb(value: str) -> Colour:
    """``#RRGGBB`` (validated by the config schema) to an RGB tuple."""
    v = value.lstrip("#")
    return (int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16))


def luminance(rgb: Colour) -> float:
    def lin(c: int) -> float:
        c = c / 255.0
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = rgb
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def contrast(a: Colour, b: Colour) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_on(bg: Colour) -> Colour:
    """The text colour (light or dark) that reads best on ``bg``."""
    return TEXT if contrast(TEXT, bg) >= contrast(INK, bg) else INK


def mix(a: Colour, b: Colour, t: float) -> Colour:
    """``a`` moved a fraction ``t`` towards ``b``."""
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))
