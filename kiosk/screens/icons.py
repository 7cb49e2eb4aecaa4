"""Pictograms for the bins: Google's Material Icons (Apache 2.0), as Debian packages them.

Why an icon font and not pictures: a glyph is drawn by FreeType at the exact
pixel size of each screen, so it stays crisp on the 7" and the 10.1" panel,
and the whole set is one small package (``fonts-material-design-icons-iconfont``,
on Raspberry Pi OS too). A bin names its icon in ``config.yaml`` (``icon:
recycling``; names as on fonts.google.com/icons). Rendered surfaces are
cached, so a frame never re-renders one. Without the package the bins keep
their colours and words; the service screen says what to install.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Optional

import pygame
import pygame.freetype as ft

log = logging.getLogger(__name__)

PACKAGE = "fonts-material-design-icons-iconfont"
FONT_FILES = (Path("/usr/share/fonts/truetype/material-design-icons-iconfont/MaterialIcons-Regular.ttf"),)
CODEPOINT_FILES = (Path("/usr/share/fonts-material-design-icons-iconfont/scss/_variables.scss"),)
_ENTRY = re.compile(r'"([a-z0-9_]+)":\s*([0-9a-f]{4,5})')


@lru_cache(maxsize=1)
def _codepoints() -> dict[str, int]:
    for path in CODEPOINT_FILES:
        try:
            return {name: int(code, 16) for name, code in _ENTRY.findall(path.read_text(encoding="utf-8"))}
        except OSError:
            continue
    return {}


class IconSet:
    """``render(name, px, colour)``: a cached surface, or None (no font, unknown name: said once)."""

    def __init__(self):
        self.problem: Optional[str] = None
        self._font: Optional[ft.Font] = None
        path = next((p for p in FONT_FILES if p.is_file()), None)
        if path is None or not _codepoints():
            self.problem = f"the bin pictograms need the Material Icons font (Debian: {PACKAGE})"
            return
        if not ft.get_init():
            ft.init()
        try:
            self._font = ft.Font(str(path))
        except (OSError, pygame.error) as e:
            self.problem = f"the Material Icons font {path} does not load ({e}): reinstall {PACKAGE}"

    @property
    def available(self) -> bool:
        return self._font is not None

    def knows(self, name: str) -> bool:
        return name in _codepoints()

    def unknown(self, names) -> list[str]:
        """Configured icon names the font does not have (a typo in config.yaml)."""
        return sorted({n for n in names if n and self.available and not self.knows(n)})

    def render(self, name: Optional[str], px: int, colour) -> Optional[pygame.Surface]:
        if not name or self._font is None or name not in _codepoints():
            return None
        return self._render(name, max(8, int(px)), tuple(colour))

    @lru_cache(maxsize=256)
    def _render(self, name: str, px: int, colour) -> pygame.Surface:
        surface, _ = self._font.render(chr(_codepoints()[name]), colour, size=px)
        return surface


def blit_centred(s: pygame.Surface, icon: Optional[pygame.Surface], box: pygame.Rect) -> Optional[pygame.Rect]:
    """Draw ``icon`` in the middle of ``box``; the rectangle it took (None: nothing drawn)."""
    if icon is None:
        return None
    r = icon.get_rect(center=box.center)
    s.blit(icon, r)
    return r


__all__ = ["IconSet", "blit_centred", "PACKAGE"]
