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
MUTED = (180, 186, 198)
ACCENT = (70, 190, 255)
WARN = (255, 196, 0)
ERROR = (245, 100, 88)
DISABLED = (56, 60, 68)
LETTERBOX = (0, 0, 0)

Colour = tuple[int, int, int]

DIM_OTHER = 0.7  # the bins that are not the answer, on the result screens' strip
DIM_TAPPABLE = 0.45  # the same while they can be tapped to correct the kiosk

# WCAG 2.1 contrast: 4.5:1 for text, 3:1 for large text (24 px, or 18.7 px bold). Every pair the
# screens draw text or a badge with, by name: tests/test_ui.py checks each, so a colour change
# cannot slip below. Bin colours come from the config; its schema checks them (config.cross_check).
MIN_CONTRAST, MIN_CONTRAST_LARGE = 4.5, 3.0
TEXT_PAIRS = {  # name: (text, background, large)
    "text on background": ("TEXT", "BG", False),
    "text on panel": ("TEXT", "PANEL", False),
    "text on raised panel (buttons)": ("TEXT", "PANEL_HI", False),
    "muted hints on background": ("MUTED", "BG", False),
    "muted hints on panel": ("MUTED", "PANEL", False),
    "muted labels on raised panel": ("MUTED", "PANEL_HI", False),
    "a disabled bin's name": ("MUTED", "DISABLED", True),
    "the Full / out-of-order badge": ("INK", "ERROR", False),
    "the Use-this badge": ("INK", "TEXT", False),
    "warnings and fault codes on background": ("WARN", "BG", False),
    "warnings on panel": ("WARN", "PANEL", False),
    "PIN errors on panel": ("ERROR", "PANEL", False),
    "ink on the accent button": ("INK", "ACCENT", False),
    "ink on the warning sign": ("INK", "WARN", True),
}


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


def bin_text_contrast(colour: Colour) -> float:
    """The worst contrast text gets on a bin's colour: plain, and dimmed on the strip."""
    return min(contrast(text_on(c), c) for c in (colour, mix(colour, BG, DIM_OTHER), mix(colour, BG, DIM_TAPPABLE)))


def text_on(bg: Colour) -> Colour:
    """The text colour (light or dark) that reads best on ``bg``."""
    return TEXT if contrast(TEXT, bg) >= contrast(INK, bg) else INK


def mix(a: Colour, b: Colour, t: float) -> Colour:
    """``a`` moved a fraction ``t`` towards ``b``."""
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))
