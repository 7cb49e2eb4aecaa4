"""Text for the touchscreen: every string fitted to its box, rendered once.

Bin names, guidance and tips come from the config in any language and any
length, so no string is drawn at a fixed size: it is wrapped (at spaces, or
between CJK characters, keeping punctuation with its neighbour), then
shrunk, and cut with an ellipsis only when even the smallest size cannot
hold it. Fitting and rendered lines are cached, so a frame costs blits.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import pygame

from kiosk.screens.fonts import Face, FontBook

log = logging.getLogger(__name__)

ELLIPSIS = "…"


class Lru(OrderedDict):
    """A bounded cache: rotating tips and changing weights must not grow memory for ever."""

    def __init__(self, maxsize: int):
        super().__init__()
        self.maxsize = maxsize

    def get(self, key, default=None):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def put(self, key, value):
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.maxsize:
            self.popitem(last=False)


def _is_cjk(c: str) -> bool:
    o = ord(c)
    return (0x2E80 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF
            or 0xFF00 <= o <= 0xFFEF or 0x20000 <= o <= 0x2FFFF)


# No line may start with these (closing punctuation in CJK and Latin text) ...
_NO_START = set("，。、；：？！）」』】》〉…％,.;:?!)]}%")
# ... nor end with these (opening brackets).
_NO_END = set("（「『【《〈([{")


def tokens(text: str) -> list[str]:
    """Break units: a Latin word with its trailing space, or one CJK character
    with any closing punctuation after it; '\\n' is a token of its own."""
    out: list[str] = []
    word = ""
    for c in text:
        if c == "\n":
            if word:
                out.append(word)
                word = ""
            out.append("\n")
        elif c in _NO_START and (word or (out and out[-1] != "\n")):
            if word:
                word += c
            else:
                out[-1] += c
        elif c in _NO_END:
            if word and not all(ch in _NO_END for ch in word):
                out.append(word)
                word = ""
            word += c
        elif _is_cjk(c):
            if word and all(ch in _NO_END for ch in word):
                out.append(word + c)  # an opening bracket goes with what it opens
            else:
                if word:
                    out.append(word)
                out.append(c)
            word = ""
        elif c.isspace():
            out.append(word + " ")
            word = ""
        else:
            word += c
    if word:
        out.append(word)
    return out


def wrap(face: Face, text: str, size: int, bold: bool, width: int, stats: Optional[dict] = None) -> list[str]:
    """Greedy line filling; a word wider than the line is broken between characters
    (and ``stats["broken"]`` is set, so the caller can prefer a smaller size)."""
    lines: list[str] = []
    cur = ""

    def fits(s: str) -> bool:
        return face.extent(s.rstrip(), size, bold) <= width

    for tok in tokens(text):
        if tok == "\n":
            lines.append(cur.rstrip())
            cur = ""
            continue
        if fits(cur + tok):
            cur += tok
            continue
        if cur.strip():
            lines.append(cur.rstrip())
        cur = tok.lstrip()
        while cur.strip() and not fits(cur):  # one token wider than the box
            if stats is not None and len(cur.strip()) > 1:
                stats["broken"] = True
            n = len(cur) - 1
            while n > 1 and not fits(cur[:n]):
                n -= 1
            lines.append(cur[:n])
            cur = cur[n:]
    if cur.strip() or not lines:
        lines.append(cur.rstrip())
    return lines


@dataclass(frozen=True)
class Fitted:
    lines: tuple[str, ...]
    size: int
    line_height: int
    ascender: int
    cut: bool  # True when even the smallest size could not hold it all


def fit(face: Face, text: str, width: int, height: int, max_size: int, min_size: int, bold: bool,
        max_lines: Optional[int] = None) -> Fitted:
    """The largest size at which ``text`` wraps into the box; cut with an ellipsis if none does."""
    min_size = max(1, min(min_size, max_size))

    def attempt(size: int, allow_broken_words: bool = False):
        stats: dict = {}
        lines = wrap(face, text, size, bold, width, stats)
        lh = face.line_height(size, bold)
        ok = len(lines) * lh <= height and (max_lines is None or len(lines) <= max_lines)
        return ok and (allow_broken_words or not stats), lines, lh

    lo, hi, best = min_size, max_size, None
    while lo <= hi:  # the largest size that fits (fitting shrinks monotonically with size)
        mid = (lo + hi) // 2
        ok, lines, lh = attempt(mid)
        if ok:
            best = (mid, lines, lh)
            lo = mid + 1
        else:
            hi = mid - 1
    if best is None:  # no size fits whole words: allow breaking inside a word, at the smallest size
        ok, lines, lh = attempt(min_size, allow_broken_words=True)
        best = (min_size, lines, lh) if ok else None
    if best:
        size, lines, lh = best
        return Fitted(tuple(balance(face, text, size, bold, width, lines)), size, lh, face.ascender(size, bold), False)
    size = min_size
    _, lines, lh = attempt(size, allow_broken_words=True)
    room = max(1, min(height // max(lh, 1), max_lines or len(lines)))
    kept = lines[:room]
    last = kept[-1]
    ell = ELLIPSIS if not face.missing(ELLIPSIS) else "..."
    while last and face.extent(last + ell, size, bold) > width:
        last = last[:-1]
    kept[-1] = last.rstrip() + ell
    return Fitted(tuple(kept), size, lh, face.ascender(size, bold), True)


def balance(face: Face, text: str, size: int, bold: bool, width: int, lines: list[str]) -> list[str]:
    """The same number of lines, made as even as possible (no lone word or character at the end)."""
    if len(lines) < 2:
        return lines
    lo, hi, best = width // 2, width, lines
    while lo <= hi:  # the narrowest width that still needs no extra line
        mid = (lo + hi) // 2
        stats: dict = {}
        trial = wrap(face, text, size, bold, mid, stats)
        if len(trial) <= len(lines) and not stats:
            best, hi = trial, mid - 1
        else:
            lo = mid + 1
    return best


class TextPainter:
    """Draws fitted text; caches fitting and rendered lines.

    ``record``, when a list, receives ``(box, ink_rect, line)`` for every line
    drawn, so a test can check that no text leaves its box.
    """

    def __init__(self, fonts: FontBook):
        self.fonts = fonts
        self._fits = Lru(1024)
        self._glyphs = Lru(512)
        self._warned: set = set()
        self.record: Optional[list] = None

    def fitted(self, lang: str, text: str, box: pygame.Rect, size: int, min_size: Optional[int] = None,
               bold: bool = False, max_lines: Optional[int] = None) -> Fitted:
        face = self.fonts.face(lang)
        min_size = min_size if min_size is not None else max(9, round(size * 0.5))
        key = (id(face), text, box.w, box.h, size, min_size, bold, max_lines)
        f = self._fits.get(key)
        if f is None:
            f = fit(face, text, box.w, box.h, size, min_size, bold, max_lines)
            self._fits.put(key, f)
            if f.cut and (text, box.size) not in self._warned:
                self._warned.add((text, box.size))
                log.warning("UI text too long for its %dx%d box even at %d px, cut: %r", box.w, box.h, f.size, text)
        return f

    def draw(self, surface: pygame.Surface, lang: str, text: str, box: pygame.Rect, size: int, colour,
             min_size: Optional[int] = None, bold: bool = False, align: str = "left", valign: str = "top",
             max_lines: Optional[int] = None) -> pygame.Rect:
        """Draw ``text`` inside ``box``; returns the union of the ink drawn."""
        if not text:
            return pygame.Rect(box.x, box.y, 0, 0)
        face = self.fonts.face(lang)
        f = self.fitted(lang, text, box, size, min_size, bold, max_lines)
        total = len(f.lines) * f.line_height
        top = box.y + {"top": 0, "middle": (box.h - total) // 2, "bottom": box.h - total}[valign]
        ink = None
        for i, line in enumerate(f.lines):
            if not line:
                continue
            surf, r = self._line(face, line, f.size, bold, colour)
            if align == "left":
                x = box.x + max(r.x, 0)
            elif align == "right":
                x = box.right - r.w
            else:
                x = box.x + (box.w - r.w) // 2
            line_top = top + i * f.line_height
            y = line_top + f.ascender - r.y
            # a glyph that overhangs the font's line box is nudged back into its own line
            x = max(box.x, min(x, box.right - r.w))
            y = max(line_top, min(y, line_top + f.line_height - r.h))
            dest = pygame.Rect(x, y, r.w, r.h)
            surface.blit(surf, dest)
            ink = dest if ink is None else ink.union(dest)
            if self.record is not None:
                self.record.append((pygame.Rect(box), dest, line))
        return ink or pygame.Rect(box.x, box.y, 0, 0)

    def _line(self, face: Face, line: str, size: int, bold: bool, colour):
        key = (id(face), line, size, bold, tuple(colour))
        hit = self._glyphs.get(key)
        if hit is None:
            hit = face.render(line, size, bold, colour)
            self._glyphs.put(key, hit)
        return hit
