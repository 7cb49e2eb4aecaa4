"""Fonts for the touchscreen: a face per language, found on the system by family.

A font is only used for a language if it has a glyph for every character
that language will show (its lang file, bin names, guidance and tips), so a
Chinese screen never shows empty boxes. Fonts are looked up with fontconfig
(``fc-list``), with Debian's paths as a fallback; a missing font is logged
by family and Debian package, and pygame's built-in font keeps the kiosk
running.
"""

from __future__ import annotations

import logging
import subprocess
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


def _canonical(lang: str) -> str:
    from kiosk.config import canonical_lang

    return canonical_lang(lang)


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
        self.bold = None
        if bold is not None:
            try:
                self.bold = _load(bold)
            except (OSError, pygame.error) as e:
                log.warning("UI font: cannot load bold '%s' from %s (%s); emboldening the regular face",
                            name, bold.path, e)

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
        if not ft.get_init():  # idempotent; a FontBook may be made before any display (tests, snapshots)
            ft.init()
        self._by_file: dict[tuple, Face] = {}
        self.faces: dict[str, Face] = {}
        self.problems: dict[str, str] = {}
        latin = self._first_face(LATIN_FAMILIES)
        if latin is None:
            log.warning("UI font: none of %s found; using pygame's built-in font (Latin only)",
                        ", ".join(f"'{f}'{package_hint(f)}" for f in LATIN_FAMILIES))
            latin = Face("pygame default", None)
        self.default: Face = latin
        for lang, text in needs.items():
            lang = _canonical(lang)
            face = self._choose(lang, text)
            if face is not None:
                self.faces[lang] = face

    def face(self, lang: str) -> Face:
        return self.faces.get(_canonical(lang), self.default)

    @classmethod
    def can_show(cls, lang: str, text: str) -> bool:
        """The one definition of "an installed font can show this language's words".

        The UI chooses with it; tests skip with it (a font that is installed
        but lacks the glyphs, such as Droid Sans Fallback for some words, is
        not one).
        """
        return cls({lang: text}).renders(lang)

    def renders(self, lang: str) -> bool:
        return _canonical(lang) in self.faces

    # ---- internals ---------------------------------------------------------
    def _face(self, regular: Optional[FontFile], bold: Optional[FontFile], name: str) -> Optional[Face]:
        key = (regular, bold)
        if key not in self._by_file:
            try:
                self._by_file[key] = Face(name, regular, bold)
            except (OSError, pygame.error) as e:  # a corrupt or unreadable file: as if it were missing
                log.warning("UI font: cannot load '%s' from %s: %s", name, regular.path if regular else "pygame", e)
                self._by_file[key] = None
        return self._by_file[key]

    def _first_face(self, families) -> Optional[Face]:
        for fam in families:
            reg = find_font(fam)
            face = self._face(reg, find_font(fam, bold=True), fam) if reg else None
            if face is not None:
                return face
        return None

    def _choose(self, lang: str, text: str) -> Optional[Face]:
        wanted = LANG_FAMILIES.get(lang.split("-")[0].lower(), ())
        distinct = len({c for c in text if not c.isspace()})
        absent, best = [], None  # best: (characters lacking, family, face)
        for fam in wanted + LATIN_FAMILIES:
            reg = find_font(fam)
            face = self._face(reg, find_font(fam, bold=True), fam) if reg else None
            if face is None:
                absent.append(fam)
                continue
            gaps = face.missing(text)
            if not gaps:
                log.info("UI font for '%s': %s (%s)", lang, fam, reg.path)
                return face
            if best is None or len(gaps) < len(best[0]):
                best = (gaps, fam, face)
        if best is None and not self.default.missing(text):
            return self.default  # only pygame's built-in font, and it has every character
        gaps = best[0] if best else self.default.missing(text)
        sample = "".join(sorted(gaps)[:8])
        if best and len(gaps) <= max(2, distinct // 50):  # a stray character: show the rest, log it
            log.warning("UI font for '%s': %s has no glyph for %r; those characters will show as boxes",
                        lang, best[1], sample)
            return best[2]
        want = wanted[0] if wanted else LATIN_FAMILIES[0]
        msg = f"no installed font can show language '{lang}'"
        if want in absent:
            msg += f": font '{want}'{package_hint(want)} is missing"
        if best:
            msg += f"; the closest, {best[1]}, lacks {len(gaps)} characters"
        msg += f" (e.g. {sample!r})" if sample else ""
        self.problems[lang] = msg
        log.warning("UI font: %s", msg)
        return None
