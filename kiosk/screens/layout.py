"""Screen geometry: one design in 800x480 units, scaled to the real display.

Every rectangle of every screen is written once, in the units of the
official 7" display, and scaled to the configured size (1280x800 on the
10.1" panel), so the two sizes can never drift apart. Geometry lives here,
apart from drawing, because the event handler needs the same touch targets
as the painter.
"""

from __future__ import annotations

import math

import pygame

DESIGN_W, DESIGN_H = 800, 480
# 15 mm on the official 7" display (800 px over ~154 mm = 5.2 px/mm) is 78 px;
# touch targets are at least this many design units on both axes.
MIN_TOUCH = 80
GAP = 8

POSITIONS = ("far_left", "left", "centre", "right", "far_right")


def bin_order(bins):
    """Bins as they stand, left to right (config order breaks ties)."""
    return sorted(bins, key=lambda b: POSITIONS.index(b.position))


def direction(position: str) -> str:
    """Which way to point from the screen to a bin: left, down or right."""
    return {"far_left": "left", "left": "left", "centre": "down", "right": "right", "far_right": "right"}[position]


class Layout:
    """Maps design units to pixels for one screen size."""

    def __init__(self, size: tuple[int, int]):
        self.size = (int(size[0]), int(size[1]))
        self.sx = self.size[0] / DESIGN_W
        self.sy = self.size[1] / DESIGN_H
        self.s = min(self.sx, self.sy)  # for lengths that must stay round: fonts, radii, lines
        self.screen = pygame.Rect(0, 0, *self.size)

    # ---- units ------------------------------------------------------------
    def r(self, x: float, y: float, w: float, h: float) -> pygame.Rect:
        """A design-unit rectangle in pixels (edges rounded, so neighbours never overlap)."""
        x0, y0 = round(x * self.sx), round(y * self.sy)
        x1, y1 = round((x + w) * self.sx), round((y + h) * self.sy)
        return pygame.Rect(x0, y0, x1 - x0, y1 - y0)

    def px(self, v: float) -> int:
        return max(1, round(v * self.s))

    # ---- shared regions ---------------------------------------------------
    @property
    def lang_button(self) -> pygame.Rect:
        return self.r(704, 8, 88, 80)

    @property
    def service_corner(self) -> pygame.Rect:
        """Hidden gesture: repeated taps here ask for the service PIN."""
        return self.r(0, 0, 96, 96)

    @property
    def live_full(self) -> pygame.Rect:
        return self.r(8, 8, 490, 368)

    @property
    def live_small(self) -> pygame.Rect:
        return self.r(8, 216, 224, 160)

    @property
    def side_title(self) -> pygame.Rect:
        return self.r(510, 96, 282, 112)

    @property
    def side_card(self) -> pygame.Rect:
        return self.r(510, 216, 282, 160)

    @property
    def strip(self) -> pygame.Rect:
        return self.r(0, 384, 800, 96)

    def strip_cells(self, n: int) -> list[pygame.Rect]:
        return self.row(8, 392, 784, 80, n)

    # ---- result card (decided, await_drop, thanks, bin_full) -------------
    @property
    def card(self) -> pygame.Rect:
        return self.r(8, 8, 688, 200)

    @property
    def card_icon(self) -> pygame.Rect:
        return self.r(20, 24, 140, 168)

    @property
    def card_line1(self) -> pygame.Rect:
        return self.r(172, 18, 420, 44)

    @property
    def card_line2(self) -> pygame.Rect:
        return self.r(172, 64, 420, 100)

    @property
    def card_line3(self) -> pygame.Rect:
        return self.r(172, 166, 420, 34)

    @property
    def card_pictogram(self) -> pygame.Rect:
        """The bin's pictogram at the card's right end."""
        return self.r(600, 52, 88, 96)

    @property
    def steps(self) -> pygame.Rect:
        return self.r(244, 216, 548, 132)

    @property
    def change_hint(self) -> pygame.Rect:
        """Under the steps, over the strip: the other bins can be tapped."""
        return self.r(244, 350, 548, 30)

    # ---- unsure / bin full -------------------------------------------------
    @property
    def choice_title(self) -> pygame.Rect:
        return self.r(16, 12, 680, 48)

    @property
    def choice_hint(self) -> pygame.Rect:
        return self.r(16, 60, 680, 36)

    def choice_grid(self, n: int) -> list[pygame.Rect]:
        return self.grid(8, 104, 784, 368, n)

    @property
    def unsure_crop(self) -> pygame.Rect:
        return self.r(8, 96, 200, 200)

    def unsure_guesses(self, n: int) -> list[pygame.Rect]:
        """The largest targets: the model's one or two best guesses, beside the crop."""
        return self.row(216, 96, 576, 200, max(n, 1))[:n]

    def unsure_rest(self, n: int) -> list[pygame.Rect]:
        """The other bins, then "try again" last: a row under the guesses."""
        return self.row(8, 304, 784, 168, n)

    @property
    def full_card(self) -> pygame.Rect:
        return self.r(8, 8, 688, 136)

    @property
    def full_hint(self) -> pygame.Rect:
        return self.r(16, 152, 776, 56)

    def full_grid(self, n: int) -> list[pygame.Rect]:
        return self.grid(8, 216, 784, 256, n)

    # ---- out of service: the public above, the technician's band below ------------
    @property
    def out_icon(self) -> pygame.Rect:
        return self.r(24, 24, 120, 110)

    @property
    def out_title(self) -> pygame.Rect:
        return self.r(160, 20, 436, 64)

    @property
    def out_hint(self) -> pygame.Rect:
        return self.r(160, 88, 436, 92)

    @property
    def out_contact(self) -> pygame.Rect:
        return self.r(160, 184, 436, 44)

    @property
    def out_site(self) -> pygame.Rect:
        return self.r(160, 230, 436, 28)

    @property
    def out_qr(self) -> pygame.Rect:
        """Below the language button: a square the code is centred in."""
        return self.r(620, 94, 150, 150)

    @property
    def out_qr_caption(self) -> pygame.Rect:
        return self.r(600, 240, 190, 24)

    @property
    def out_codes(self) -> pygame.Rect:
        return self.r(8, 266, 784, 206)

    # ---- service -----------------------------------------------------------
    @property
    def service_title(self) -> pygame.Rect:
        return self.r(16, 8, 330, 80)

    @property
    def service_summary(self) -> pygame.Rect:
        return self.r(354, 8, 342, 80)

    def service_cards(self, n: int) -> list[pygame.Rect]:
        return self.grid(8, 96, 784, 176, n)

    @property
    def service_faults(self) -> pygame.Rect:
        return self.r(8, 280, 784, 104)

    def service_buttons(self, n: int) -> list[pygame.Rect]:
        return self.row(8, 392, 784, 80, n)

    # ---- PIN pad overlay ---------------------------------------------------
    @property
    def pin_panel(self) -> pygame.Rect:
        return self.r(32, 16, 736, 448)

    @property
    def pin_title(self) -> pygame.Rect:
        return self.r(56, 40, 320, 56)

    @property
    def pin_dots(self) -> pygame.Rect:
        return self.r(56, 104, 320, 56)

    @property
    def pin_message(self) -> pygame.Rect:
        return self.r(56, 168, 320, 176)

    @property
    def pin_message_wide(self) -> pygame.Rect:
        """The message when there is no keypad (no PIN configured)."""
        return self.r(56, 112, 688, 232)

    @property
    def pin_cancel(self) -> pygame.Rect:
        return self.r(56, 360, 320, 80)

    def pin_keys(self) -> list[pygame.Rect]:
        """Twelve keys, row by row: 1 2 3 / 4 5 6 / 7 8 9 / delete 0 ok."""
        return [self.r(400 + c * 120, 40 + r * 100, 112, 92) for r in range(4) for c in range(3)]

    # ---- helpers -----------------------------------------------------------
    def row(self, x: float, y: float, w: float, h: float, n: int) -> list[pygame.Rect]:
        cw = (w - GAP * (n - 1)) / max(n, 1)
        return [self.r(x + i * (cw + GAP), y, cw, h) for i in range(n)]

    def grid(self, x: float, y: float, w: float, h: float, n: int) -> list[pygame.Rect]:
        """Up to four across; more bins take a second row."""
        rows = 1 if n <= 4 else 2
        cols = math.ceil(n / rows)
        ch = (h - GAP * (rows - 1)) / rows
        out = []
        for i in range(n):
            rr, cc = divmod(i, cols)
            out.extend(self.row(x, y + rr * (ch + GAP), w, ch, cols)[cc : cc + 1])
        return out
