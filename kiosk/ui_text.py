"""Fonts and text for the touchscreen: a font per language, text fitted to its box.

Bin names, guidance and tips come from the config in any language and any
length, so no string is drawn at a fixed size: it is wrapped (at spaces, or
between CJK characters), then shrunk, and cut with an ellipsis only when
even the smallest size cannot hold it. Fonts are looked up on the system
(fontconfig) by family, and a font is only used for a language if it has a
glyph for every character that language will show; a missing font is
logged by name and never crashes the kiosk.
"""

from __future__ import annotations

import logging
import subprocess
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import pygame
import pygame.freetype as ft

log = logging.getLogger(__name__)

LATIN_FAMILIES = ("DejaVu Sans", "Noto Sans", "Liberation Sans", "FreeSans")
LANG_FAMILIES = {
    "zh": ("Noto Sans CJK SC", "Source Han Sans SC", "Source Han Sans CN", "Noto Sans SC",
           "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback"),
    "ja": ("Noto Sans CJK JP", "Source Han Sans JP", "IPAexGothic", "TakaoGothic"),
    "ko": ("Noto Sans CJK KR", "Source Han Sans KR", "NanumGothic"),
}
# Debian package that ships a family, named in the log when it is missing.
PACKAGES = {"Noto Sans CJK": "fonts-noto-cjk", "DejaVu Sans": "fonts-dejavu-core", "WenQuanYi": "fonts-wqy-zenhei"}
# Where Debian puts the preferred fonts, for systems without fc-list.
KNOWN_FILES = {
    ("DejaVu Sans", False): ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 0),
    ("DejaVu Sans", True): ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 0),
    ("Noto Sans CJK SC", False): ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("Noto Sans CJK SC", True): ("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 2),
}
REGULAR_STYLES = ("regular", "book", "normal", "roman")
ELLIPSIS = "…"


@dataclass(frozen=True)
class FontFile:
    path: str
    index: int
    family: str


@lru_cache(maxsize=1)
def system_fonts() -> tuple[tuple[str, int, tuple[str, ...], str], ...]:
    """(file, face index, families, style) for every font fontconfig knows; () without fc-list."""
    try:
        out = subprocess.run(["fc-list", "--format", r"%{file}\t%{index}\t%{family}\t%{style}\n"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        log.info("fc-list is not usable (%s); looking for fonts at known paths only", e.__class__.__name__)
        return ()
    fonts = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 4:
            continue
        path, index, families, style = parts
        fonts.append((path, int(index or 0), tuple(f.strip() for f in families.split(",")), style.split(",")[0].strip()))
    return tuple(fonts)


def find_font(family: str, bold: bool = False) -> Optional[FontFile]:
    """The file holding ``family`` in the regular (or bold) style, or None."""
    want = family.lower()
    best = None
    for path, index, families, style in system_fonts():
        if want not in (f.lower() for f in families):
            continue
        st = style.lower()
        rank = (0 if st == "bold" else 1 if "bold" in st and "semi" not in st else None) if bold else \
               (0 if st in REGULAR_STYLES else 1 if st == "medium" else None)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, FontFile(path, index, family))
    if best:
        return best[1]
    known = KNOWN_FILES.get((family, bold))
    if known and Path(known[0]).is_file():
        return FontFile(known[0], known[1], family)
    return None


def package_hint(family: str) -> str:
    for prefix, pkg in PACKAGES.items():
        if family.startswith(prefix):
            return f" (Debian package {pkg})"
    return ""


class Face:
    """One family in regular and bold; bold is emboldened regular when the family has none."""

    def __init__(self, name: str, regular: Optional[FontFile], bold: Optional[FontFile] = None):
        self.name = name
        self.regular = _load(regular)
        self.bold = _load(bold) if bold else None

    def _font(self, bold: bool):
        if bold and self.bold is not None:
            return self.bold, ft.STYLE_DEFAULT
        return self.regular, (ft.STYLE_STRONG if bold else ft.STYLE_DEFAULT)

    def missing(self, text: str) -> set[str]:
        """Characters of ``text`` with no glyph in this face."""
        chars = sorted({c for c in text if not c.isspace() and c.isprintable()})
        if not chars:
            return set()
        metrics = self.regular.get_metrics("".join(chars), size=16)
        return {c for c, m in zip(chars, metrics) if m is None}

    def extent(self, text: str, size: int, bold: bool) -> int:
        """Pixels from the pen position to the right edge of the ink."""
        if not text:
            return 0
        font, style = self._font(bold)
        r = font.get_rect(text, style=style, size=size)
        return max(r.x, 0) + r.width

    def line_height(self, size: int, bold: bool) -> int:
        font, _ = self._font(bold)
        return font.get_sized_height(size)

    def ascender(self, size: int, bold: bool) -> int:
        font, _ = self._font(bold)
        return font.get_sized_ascender(size)

    def render(self, text: str, size: int, bold: bool, colour) -> tuple[pygame.Surface, pygame.Rect]:
        """Ink-tight surface and its rect relative to the pen (x: bearing, y: height above baseline)."""
        font, style = self._font(bold)
        return font.render(text, colour, style=style, size=size)


def _load(ff: Optional[FontFile]) -> ft.Font:
    if ff is None:
        return ft.Font(None, 16)  # pygame's own font: always there
    return ft.Font(ff.path, 16, font_index=ff.index)


class FontBook:
    """A face for each language, chosen so that every string of that language has its glyphs.

    ``needs`` maps a language to all the text it will show. A language with no
    covering font is left out of ``faces`` (the UI then shows another
    language), and the log says which font to install.
    """

    def __init__(self, needs: dict[str, str]):
        self._by_file: dict[tuple, Face] = {}
        self.faces: dict[str, Face] = {}
        self.problems: dict[str, str] = {}
        latin = self._first_face(LATIN_FAMILIES)
        if latin is None:
            log.warning("UI font: none of %s found; using pygame's built-in font (Latin only)",
                        ", ".join(f"'{f}'{package_hint(f)}" for f in LATIN_FAMILIES))
            latin = self._face(None, None, "pygame default")
        self.default = latin
        for lang, text in needs.items():
            face = self._choose(lang, text)
            if face is not None:
                self.faces[lang] = face

    def face(self, lang: str) -> Face:
        return self.faces.get(lang, self.default)

    def renders(self, lang: str) -> bool:
        return lang in self.faces

    # ---- internals ---------------------------------------------------------
    def _face(self, regular: Optional[FontFile], bold: Optional[FontFile], name: str) -> Face:
        key = (regular, bold)
        if key not in self._by_file:
            self._by_file[key] = Face(name, regular, bold)
        return self._by_file[key]

    def _first_face(self, families) -> Optional[Face]:
        for fam in families:
            reg = find_font(fam)
            if reg is not None:
                return self._face(reg, find_font(fam, bold=True), fam)
        return None

    def _choose(self, lang: str, text: str) -> Optional[Face]:
        wanted = LANG_FAMILIES.get(lang.split("-")[0].lower(), ())
        tried = []
        for fam in wanted + LATIN_FAMILIES:
            reg = find_font(fam)
            if reg is None:
                continue
            face = self._face(reg, find_font(fam, bold=True), fam)
            gaps = face.missing(text)
            if not gaps:
                log.info("UI font for '%s': %s (%s)", lang, fam, reg.path)
                return face
            tried.append(f"{fam} lacks {len(gaps)} characters")
        if not self.default.missing(text) and self.default.name == "pygame default":
            return self.default
        first = wanted[0] if wanted else LATIN_FAMILIES[0]
        gaps = self.default.missing(text)
        sample = "".join(sorted(gaps)[:8])
        msg = (f"no installed font can show language '{lang}': font '{first}'{package_hint(first)} is missing"
               + (f"; {'; '.join(tried)}" if tried else "")
               + (f" (e.g. {sample!r})" if sample else ""))
        self.problems[lang] = msg
        log.warning("UI font: %s", msg)
        return None


class _Lru(OrderedDict):
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


# No line may start with these (closing punctuation in CJK and Latin text).
_NO_START = set("，。、；：？！）」』】》〉…％,.;:?!)]}%")


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
        elif _is_cjk(c):
            if word:
                out.append(word)
                word = ""
            out.append(c)
        elif c.isspace():
            out.append(word + " ")
            word = ""
        else:
            word += c
    if word:
        out.append(word)
    return out


def wrap(face: Face, text: str, size: int, bold: bool, width: int) -> list[str]:
    """Greedy line filling; a word wider than the line is broken between characters."""
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

    def attempt(size: int):
        lines = wrap(face, text, size, bold, width)
        lh = face.line_height(size, bold)
        ok = len(lines) * lh <= height and (max_lines is None or len(lines) <= max_lines)
        return ok, lines, lh

    lo, hi, best = min_size, max_size, None
    while lo <= hi:  # the largest size that fits (fitting shrinks monotonically with size)
        mid = (lo + hi) // 2
        ok, lines, lh = attempt(mid)
        if ok:
            best = (mid, lines, lh)
            lo = mid + 1
        else:
            hi = mid - 1
    if best:
        size, lines, lh = best
        return Fitted(tuple(lines), size, lh, face.ascender(size, bold), False)
    size = min_size
    _, lines, lh = attempt(size)
    room = max(1, min(height // max(lh, 1), max_lines or len(lines)))
    kept = lines[:room]
    last = kept[-1]
    ell = ELLIPSIS if not face.missing(ELLIPSIS) else "..."
    while last and face.extent(last + ell, size, bold) > width:
        last = last[:-1]
    kept[-1] = last.rstrip() + ell
    return Fitted(tuple(kept), size, lh, face.ascender(size, bold), True)


class TextPainter:
    """Draws fitted text; caches fitting and rendered lines.

    ``record``, when a list, receives ``(box, ink_rect, line)`` for every line
    drawn, so a test can check that no text leaves its box.
    """

    def __init__(self, fonts: FontBook):
        self.fonts = fonts
        self._fits = _Lru(1024)
        self._glyphs = _Lru(2048)
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
            y = top + i * f.line_height + f.ascender - r.y
            # ink stays in the box even for glyphs that overhang the font's line box
            x = max(box.x, min(x, box.right - r.w))
            y = max(box.y, min(y, box.bottom - r.h))
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
