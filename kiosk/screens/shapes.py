"""Icons drawn as shapes (arrows, tick, cross, warning sign, progress ring).

Shapes, not glyphs: they look the same in every language and font, and
they need no font that might be missing.
"""

from __future__ import annotations

import math

import pygame

_ARROW_RIGHT = [(0, 0.34), (0.52, 0.34), (0.52, 0.08), (1, 0.5), (0.52, 0.92), (0.52, 0.66), (0, 0.66)]


def _square(rect: pygame.Rect) -> pygame.Rect:
    side = min(rect.w, rect.h)
    sq = pygame.Rect(0, 0, side, side)
    sq.center = rect.center
    return sq


def _map(points, sq: pygame.Rect):
    return [(sq.x + x * sq.w, sq.y + y * sq.h) for x, y in points]


def arrow(surface: pygame.Surface, colour, rect: pygame.Rect, direction: str) -> None:
    """A block arrow pointing left, right or down, as big as fits in ``rect``."""
    pts = _ARROW_RIGHT
    if direction == "left":
        pts = [(1 - x, y) for x, y in pts]
    elif direction == "down":
        pts = [(y, x) for x, y in pts]
    pygame.draw.polygon(surface, colour, _map(pts, _square(rect)))


def tick(surface: pygame.Surface, colour, rect: pygame.Rect) -> None:
    sq = _square(rect)
    pts = _map([(0.08, 0.52), (0.38, 0.82), (0.92, 0.2)], sq)
    width = max(3, sq.w // 8)
    pygame.draw.lines(surface, colour, False, pts, width)
    for p in pts:
        pygame.draw.circle(surface, colour, p, width // 2)


def cross(surface: pygame.Surface, colour, rect: pygame.Rect) -> None:
    sq = _square(rect).inflate(-rect.w // 6, -rect.w // 6)
    width = max(3, sq.w // 7)
    pygame.draw.line(surface, colour, sq.topleft, sq.bottomright, width)
    pygame.draw.line(surface, colour, sq.bottomleft, sq.topright, width)


def warning(surface: pygame.Surface, colour, ink, rect: pygame.Rect) -> None:
    """A warning triangle with an exclamation mark."""
    sq = _square(rect)
    pygame.draw.polygon(surface, colour, _map([(0.5, 0.04), (0.98, 0.92), (0.02, 0.92)], sq))
    bar = pygame.Rect(0, 0, max(2, sq.w // 10), sq.h * 0.34)
    bar.midtop = (sq.centerx, sq.y + sq.h * 0.32)
    pygame.draw.rect(surface, ink, bar, border_radius=bar.w // 3)
    pygame.draw.circle(surface, ink, (sq.centerx, sq.y + sq.h * 0.78), max(2, sq.w // 14))


def ring(surface: pygame.Surface, colour, centre, radius: float, width: float, fraction: float) -> None:
    """A progress ring from 12 o'clock, clockwise, ``fraction`` (0..1) of the way round."""
    fraction = max(0.0, min(1.0, fraction))
    if fraction <= 0 or radius <= 1:
        return
    n = max(3, int(64 * fraction) + 1)
    cx, cy = centre
    a0 = -math.pi / 2
    angles = [a0 + 2 * math.pi * fraction * i / (n - 1) for i in range(n)]
    inner_r = max(0.0, radius - width)
    outer = [(cx + radius * math.cos(a), cy + radius * math.sin(a)) for a in angles]
    inner = [(cx + inner_r * math.cos(a), cy + inner_r * math.sin(a)) for a in reversed(angles)]
    pygame.draw.polygon(surface, colour, outer + inner)
