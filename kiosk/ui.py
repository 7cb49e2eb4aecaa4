"""The touchscreen: draws a ``View`` and turns touches into ``UiAction``s.

The main loop owns the state; the UI only draws the record it is given and
answers touches with small action records (choose a bin, switch language,
open or close the service screen, run a service command). It never reaches
into the engine or the hardware, so every screen renders from sample data
(``kiosk snapshot``) and every touch is tested with injected events.

Per frame the UI blits one cached layer of everything that only changes
with the state, then draws just the moving parts (camera picture,
progress, pulse) over it; only the rectangles it touched are in
``KioskUI.dirty`` for ``pygame.display.update``.

There is deliberately no path from the touchscreen to a shell or desktop:
the UI ignores the keyboard, and the only way off the customer screens is
the hidden gesture plus the service PIN.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque

from typing import Callable, Optional

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame  # noqa: E402
import pygame.freetype  # noqa: E402

from kiosk.commands import ChooseBin, Command, PinChecked, Service, ServiceAction, ServiceMode, SetLanguage, TryAgain  # noqa: E402,F401
from kiosk.config import KioskConfig, UiConfig, canonical_lang  # noqa: E402
from kiosk.screens.layout import Layout, bin_order  # noqa: E402
from kiosk.screens.wording import Wording, chrome  # noqa: E402
from kiosk.screens.live import LiveView  # noqa: E402
from kiosk.screens.pin import PIN_TRIES_FILE, PinPad, PinTries  # noqa: E402
from kiosk.screens.paint import FULL_AT, PAINTERS, SERVICE_KINDS, Ctx, make_plan, paint_dynamic, paint_static  # noqa: E402
from kiosk.screens.fonts import FontBook  # noqa: E402
from kiosk.screens.text import TextPainter, Lru  # noqa: E402
from kiosk.view import View  # noqa: E402

log = logging.getLogger(__name__)

FONT_MISSING_CODE = "E110"  # a configured language no installed font can show (a warning on the service screen)
ICONS_CODE = "E111"  # the pictograms' font is missing, or a bin names an icon it does not have
SERVICE_TAPS = 5  # taps on the top-left corner ...
SERVICE_TAP_WINDOW_S = 3.0  # ... within this time ask for the service PIN


# ------------------------------------------------------------- actions --

# A touch becomes a kiosk.commands command, handed to the worker as it is.
UiAction = Command


# ------------------------------------------------------------- display --

def open_display(ui_cfg: UiConfig) -> pygame.Surface:
    """The screen: KMSDRM fullscreen on a console, a window on a desktop.

    An ``SDL_VIDEODRIVER`` already set (``dummy`` in tests) is respected.
    Build the UI with the size returned here: ``KioskUI(cfg, surface.get_size())``.
    """
    desktop = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if ui_cfg.fullscreen and not desktop and not os.environ.get("SDL_VIDEODRIVER"):
        os.environ["SDL_VIDEODRIVER"] = "kmsdrm"  # the Pi with no desktop: straight to the display
    # Only what the kiosk uses: pygame.init() would also open the mixer, and on a Pi with no
    # sound card ALSA prints "Unknown PCM default" lines into the journal at every start.
    pygame.display.init()
    pygame.font.init()
    flags = pygame.FULLSCREEN if ui_cfg.fullscreen else 0
    try:
        surface = pygame.display.set_mode(tuple(ui_cfg.size), flags)
    except pygame.error as e:
        log.error("cannot open the display with SDL driver '%s' at %dx%d: %s (on a console, check that the user "
                  "is in the 'video' and 'render' groups and that no desktop holds the display)",
                  os.environ.get("SDL_VIDEODRIVER") or "auto", *ui_cfg.size, e)
        raise
    pygame.display.set_caption(chrome(ui_cfg.default_language).get("window_title", ""))
    pygame.mouse.set_visible(not ui_cfg.fullscreen)
    got = surface.get_size()
    log.info("display: SDL driver %s, %dx%d%s", pygame.display.get_driver(), *got,
             " fullscreen" if ui_cfg.fullscreen else "")
    if got != tuple(ui_cfg.size):
        log.warning("display is %dx%d, not the configured %dx%d; the layout follows the real size",
                    *got, *ui_cfg.size)
    return surface


# ------------------------------------------------------------------ UI --

class KioskUI:
    """Draws views and handles touches for one screen size."""

    def __init__(self, cfg: KioskConfig, size: tuple[int, int], clock: Callable[[], float] = time.monotonic):
        pygame.freetype.init()
        self.cfg = cfg
        self.size = (int(size[0]), int(size[1]))
        self.clock = clock
        self.layout = Layout(self.size)
        self.words = Wording(cfg)
        self.fonts = FontBook({lang: self.words.all_text(lang) for lang in self.words.langs})
        self.text = TextPainter(self.fonts)
        self.live = LiveView()
        self.pin = PinPad(cfg.service.pin_hash, clock, pin_hash_file=cfg.pin_hash_path,
                          tries=PinTries(cfg.data_dir / PIN_TRIES_FILE))
        self.bins = bin_order(cfg.bins)
        self.service_bin: Optional[str] = self.bins[0].id if self.bins else None
        self.languages = [lang for lang in cfg.ui.languages if self.fonts.renders(lang)]
        from kiosk.screens.icons import IconSet

        self.icons = IconSet()
        from kiosk.faults import Fault, PartKind

        # A language the config asks for and no font can show: said at start, and on the service screen
        # for as long as it lasts (the passers-by see the others; the technician installs the font).
        self.font_faults = tuple(Fault(FONT_MISSING_CODE, PartKind.CONFIG, self.fonts.problems.get(lang, lang),
                                       blocking=False)
                                 for lang in cfg.ui.languages if not self.fonts.renders(lang))
        if any(b.icon for b in cfg.bins):
            if self.icons.problem:
                self.font_faults += (Fault(ICONS_CODE, PartKind.CONFIG, self.icons.problem, blocking=False),)
            for name in self.icons.unknown(b.icon for b in cfg.bins):
                bins = ", ".join(b.id for b in cfg.bins if b.icon == name)
                self.font_faults += (Fault(ICONS_CODE, PartKind.CONFIG, f"bins ({bins}).icon: Material Icons has no "
                                                                        f"'{name}' (names: fonts.google.com/icons)",
                                           blocking=False),)
        for f in self.font_faults:
            log.warning("[%s] %s (README: fonts)", f.code, f.message)
        self.dirty: list[pygame.Rect] = []  # rects changed by the last draw()
        self._layers = Lru(3)
        self._last = None  # (surface, layer key, rects drawn over the layer)
        self._taps: deque[float] = deque(maxlen=SERVICE_TAPS)
        self._warned: set = set()
        log.info("UI %dx%d; languages shown: %s", *self.size, ", ".join(self.languages) or "(fallback font only)")

    # ---- drawing -------------------------------------------------------------
    def draw(self, surface: pygame.Surface, view: View) -> None:
        """Draw ``view`` on ``surface``; ``self.dirty`` lists what changed."""
        if surface.get_size() != self.size:
            raise ValueError(f"surface is {surface.get_size()}, the UI was built for {self.size}")
        ctx = self._ctx(view)
        plan = make_plan(ctx)
        key = self._layer_key(ctx)
        layer = self._layers.get(key)
        if layer is None:
            layer = pygame.Surface(self.size, 0, surface)
            paint_static(ctx, layer, plan)
            self._layers.put(key, layer)
        if self._last and self._last[0] is surface and self._last[1] == key:
            restored = self._last[2]
            for r in restored:  # put back the layer under last frame's moving parts
                surface.blit(layer, r, r)
        else:
            surface.blit(layer, (0, 0))
            restored = [self.layout.screen]
        drawn = paint_dynamic(ctx, surface, plan, self.live)
        self._last = (surface, key, drawn)
        self.dirty = restored + [r for r in drawn if r not in restored]

    def invalidate(self) -> None:
        """Forget cached layers (after the surface was drawn on by someone else)."""
        self._layers.clear()
        self._last = None

    # ---- touches -------------------------------------------------------------
    def handle(self, event: pygame.event.Event, view: View) -> list[UiAction]:
        """Finger or left mouse press -> actions. Everything else (keys included) is ignored."""
        pos = self._point(event)
        if pos is None:
            return []
        ctx = self._ctx(view)
        if not self.pin.is_open and view.screen != "service" and self._service_gesture(pos):
            self.pin.open()
            return []
        for b in make_plan(ctx).buttons:
            if b.rect.collidepoint(pos):
                return self._press(b, view) if b.enabled else []
        return []

    def buttons(self, view: View):
        """The touch targets of the screen for ``view`` (tests, debugging)."""
        return make_plan(self._ctx(view)).buttons

    def _point(self, event) -> Optional[tuple[int, int]]:
        w, h = self.size
        if event.type == pygame.FINGERDOWN:
            return (min(w - 1, max(0, int(event.x * w))), min(h - 1, max(0, int(event.y * h))))
        if event.type == pygame.MOUSEBUTTONDOWN and event.button == 1 and not getattr(event, "touch", False):
            return tuple(event.pos)  # a mouse press SDL made from a touch is skipped: the finger event counted
        return None

    def _service_gesture(self, pos) -> bool:
        now = self.clock()
        if not self.layout.service_corner.collidepoint(pos):
            self._taps.clear()
            return False
        self._taps.append(now)
        if len(self._taps) == SERVICE_TAPS and now - self._taps[0] <= SERVICE_TAP_WINDOW_S:
            self._taps.clear()
            return True
        return False

    def _press(self, b, view: View) -> list[UiAction]:
        if b.kind == "bin":
            log.info("%s screen: the person chose bin '%s'", view.screen, b.arg)
            return [ChooseBin(b.arg)]
        if b.kind == "retry":
            log.info("unsure screen: the person asked to try again")
            return [TryAgain()]
        if b.kind == "lang":
            return [SetLanguage(b.arg)]
        if b.kind == "pin":
            opened = self.pin.press(b.arg)
            checked = [PinChecked(a.ok, a.describe()) for a in self.pin.attempts]
            self.pin.attempts.clear()
            return checked + ([ServiceMode(True)] if opened else [])
        if b.kind == "pin_cancel":
            self.pin.close()
            return []
        if b.kind == "service_bin":
            self.service_bin = b.arg
            return []
        if b.kind in SERVICE_KINDS:
            return [Service(ServiceAction(b.kind), bin_id=self.service_bin)]
        if b.kind == "close":
            return [ServiceMode(False)]
        return []

    # ---- internals -----------------------------------------------------------
    def _ctx(self, view: View) -> Ctx:
        now = self.clock()
        self.pin.tick()
        if view.screen == "service" and self.pin.is_open:
            self.pin.close()
        if view.screen not in PAINTERS:
            self._warn(("screen", view.screen), "UI: unknown screen '%s'; showing out of service", view.screen)
            view = _replace_screen(view, "out_of_service")
        if view.screen == "service" and self.font_faults:
            view = _replace_faults(view, view.faults + self.font_faults)
        lang = self._shown_language(canonical_lang(view.language))
        full = {b for b, f in view.fill.items() if f >= FULL_AT} | set(view.refused)
        if view.screen == "bin_full" and view.full_bin:
            full.add(view.full_bin)
        tips = self.words.tips(lang)
        tip_index = int(now // self.cfg.ui.tip_seconds) % len(tips) if tips else 0
        return Ctx(lay=self.layout, text=self.text, words=self.words, cfg=self.cfg, lang=lang, view=view,
                   bins=self.bins, full=full, now=now, next_lang=self._next_language(view.language),
                   service_bin=self.service_bin, pin=self.pin, tip_index=tip_index, icons=self.icons)

    def _shown_language(self, lang: str) -> str:
        """``lang`` if a font can show it, else the default or English (logged once)."""
        if self.fonts.renders(lang):
            return lang
        for other in (self.cfg.ui.default_language, "en", *self.languages):
            if self.fonts.renders(other):
                self._warn(("lang", lang), "UI: cannot show language '%s' (%s); showing '%s' instead", lang,
                           self.fonts.problems.get(lang, "no font"), other)
                return other
        return lang

    def _next_language(self, lang: str) -> Optional[str]:
        lang = canonical_lang(lang)
        langs = self.languages
        if len(langs) < 2:
            return None
        return langs[(langs.index(lang) + 1) % len(langs)] if lang in langs else langs[0]

    def _layer_key(self, c: Ctx) -> tuple:
        v, d = c.view, c.view.decision
        return (
            v.screen, c.lang, c.next_lang,
            c.tip_index if v.screen == "idle" else None,
            None if d is None else (d.label, d.bin_id, round(d.score, 2), d.corrected, d.unsure, d.weight_g),
            v.suggested_bin, v.full_bin, tuple(sorted(v.refused)), tuple(sorted(v.out_of_order)),
            v.guesses, id(v.crop) if v.crop is not None else None,  # the unsure screen: one item's picture
            tuple(sorted((k, round(f * 50)) for k, f in v.fill.items())),  # 2 % steps
            tuple((f.code, f.part, f.message) for f in v.faults),
            tuple(sorted(v.counts_today.items())),
            c.service_bin if v.screen == "service" else None,
            self.pin.state(),
        )

    def _warn(self, key, msg, *args) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)


def _replace_faults(view: View, faults) -> View:
    from dataclasses import replace

    return replace(view, faults=tuple(faults))


def _replace_screen(view: View, screen: str) -> View:
    from dataclasses import replace

    return replace(view, screen=screen)
