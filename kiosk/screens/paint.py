"""What each screen shows, and where its touch targets are.

``make_plan`` says which buttons a screen has and where the camera picture
goes (the event handler needs that without drawing). ``paint_static``
draws everything that only changes with the state (cached by the UI as one
layer); ``paint_dynamic`` draws what moves every frame (camera picture,
progress, the pulse on the open bin) and returns the rectangles it touched.
Words come from ``Wording``; nothing here spells any out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pygame

from kiosk.screens import shapes as shapes
from kiosk.screens import theme as th
from kiosk.commands import ServiceAction
from kiosk.decision import usable_fallback
from kiosk.screens.layout import Layout, direction
from kiosk.screens.icons import blit_centred
from kiosk.screens.live import LiveView, map_roi
from kiosk.screens.technician import _out_of_service, _service
from kiosk.screens.widgets import _bin_button, _dots, _lang_button, _pin_pad, _strip, _strip_cell, _weight

FULL_AT = 1.0  # fill fraction at which a bin refuses items on the choice screens
CONFIDENCE_STEPS = (0.75, 0.9)  # scores for two and three confidence dots
MAX_STEPS = 3  # guidance steps shown; the first is the one that matters
PIN_KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "del", "0", "ok")
RESULT_SCREENS = ("decided", "await_drop", "thanks")
CORRECTABLE = ("decided", "await_drop")  # the other bins are touch targets: the person can correct the kiosk


SERVICE_KINDS = tuple(a.value for a in ServiceAction)  # one service-screen button per action

@dataclass(frozen=True)
class Button:
    rect: pygame.Rect
    kind: str  # bin, lang, pin, pin_cancel, service_bin, a ServiceAction value (tare, flap_test, reset), close
    arg: Optional[str] = None
    enabled: bool = True


@dataclass
class Plan:
    screen: str  # the screen drawn ("pin" while the PIN pad is up)
    buttons: list[Button] = field(default_factory=list)
    live: Optional[pygame.Rect] = None  # where the camera picture goes


@dataclass
class Ctx:
    """Everything a painter needs for one frame."""

    lay: Layout
    text: object  # TextPainter
    words: object  # Wording
    cfg: object  # KioskConfig
    lang: str  # the language whose words are drawn
    view: object  # View
    bins: list  # BinConfig, left to right as they stand
    full: set
    now: float
    next_lang: Optional[str]
    service_bin: Optional[str]
    pin: object  # PinPad
    tip_index: int = 0
    icons: object = None  # kiosk.screens.icons.IconSet (None: no pictograms)

    def t(self, key: str, **values) -> str:
        return self.words.t(self.lang, key, **values)

    def bin_name(self, bin_id: str) -> str:
        return self.words.bin_name(self.lang, bin_id)

    def icon(self, bin_id: Optional[str], px: int, colour):
        """The bin's pictogram at ``px`` pixels in ``colour`` (cached), or None."""
        if self.icons is None or not bin_id:
            return None
        try:
            name = self.cfg.bin(bin_id).icon
        except KeyError:
            return None
        return self.icons.render(name, px, colour)

    def bin_colour(self, bin_id: Optional[str]):
        try:
            return th.hex_rgb(self.cfg.bin(bin_id).colour)
        except KeyError:
            return th.PANEL_HI

    def draw(self, surface, text, box, size, colour=th.TEXT, lang=None, **kw):
        s = self.lay.px(size)
        if "min_size" in kw:
            kw["min_size"] = self.lay.px(kw["min_size"])
        return self.text.draw(surface, lang or self.lang, text, box, s, colour, **kw)


# ---------------------------------------------------------------- plans --

def make_plan(c: Ctx) -> Plan:
    L, v = c.lay, c.view
    if c.pin.is_open:
        buttons = [Button(r, "pin", k) for r, k in zip(L.pin_keys(), PIN_KEYS)] if c.pin.configured else []
        return Plan("pin", buttons + [Button(L.pin_cancel, "pin_cancel")])
    plan = Plan(v.screen)
    if c.next_lang:
        plan.buttons.append(Button(L.lang_button, "lang", c.next_lang))
    n = len(c.bins)
    if v.screen in ("idle", "looking"):
        plan.live = L.live_full
    elif v.screen in RESULT_SCREENS:
        plan.live = L.live_small
        if v.screen in CORRECTABLE and v.decision and v.decision.bin_id:  # wrong bin? one tap on the right one
            plan.buttons += [Button(r, "bin", b.id, b.id not in c.full)
                             for r, b in zip(L.strip_cells(n), c.bins) if b.id != v.decision.bin_id]
    elif v.screen == "unsure":
        guesses, rest = unsure_split(c)
        plan.buttons += [Button(r, "bin", b.id, b.id not in c.full) for r, b in zip(L.unsure_guesses(len(guesses)), guesses)]
        rects = L.unsure_rest(len(rest) + 1)
        plan.buttons += [Button(r, "bin", b.id, b.id not in c.full) for r, b in zip(rects, rest)]
        plan.buttons.append(Button(rects[-1], "retry"))
    elif v.screen == "bin_full":
        plan.buttons += [Button(r, "bin", b.id, b.id not in c.full) for r, b in zip(L.full_grid(n), c.bins)]
    elif v.screen == "service":
        plan.buttons += [Button(r, "service_bin", b.id) for r, b in zip(L.service_cards(n), c.bins)]
        kinds = (*SERVICE_KINDS, "close")
        plan.buttons += [Button(r, k) for r, k in zip(L.service_buttons(len(kinds)), kinds)]
    return plan


# -------------------------------------------------------------- painting --

def paint_static(c: Ctx, surface: pygame.Surface, plan: Plan) -> None:
    surface.fill(th.BG)
    screen = c.view.screen
    PAINTERS.get(screen, _out_of_service)(c, surface)
    if c.next_lang:
        _lang_button(c, surface, c.lay.lang_button)
    if plan.screen == "pin":
        _pin_pad(c, surface, plan)


def paint_dynamic(c: Ctx, surface: pygame.Surface, plan: Plan, live: LiveView) -> list[pygame.Rect]:
    """Per-frame drawing over the cached layer; returns the rects touched."""
    if plan.screen == "pin":
        return []
    touched = []
    v, L = c.view, c.lay
    if plan.live is not None:
        box = plan.live
        touched.append(box)
        pic = live.surface(v.frame, v.frame_seq, box)
        if pic is None:
            c.draw(surface, c.t("no_camera"), box.inflate(-L.px(24), -L.px(24)), 26, th.MUTED, align="centre",
                   valign="middle")
        else:
            surface.blit(pic, live.dest)
            _roi(c, surface, live)
    if v.screen == "looking":
        bar = _progress_bar_rect(c)
        pygame.draw.rect(surface, th.PANEL_HI, bar, border_radius=bar.h // 2)
        done = bar.copy()
        done.w = round(bar.w * max(0.0, min(1.0, v.progress)))
        if done.w:
            pygame.draw.rect(surface, th.ACCENT, done, border_radius=bar.h // 2)
        touched.append(bar)
    if v.screen == "await_drop" and v.decision and v.decision.bin_id:
        cell = _strip_cell(c, v.decision.bin_id)
        if cell is not None:
            outline = cell.inflate(L.px(6), L.px(6)).clip(L.screen)
            if int(c.now * 2) % 2 == 0:  # pulse twice a second
                pygame.draw.rect(surface, th.TEXT, outline, width=L.px(4), border_radius=L.px(12))
            touched.append(outline)
    return touched


def _roi(c: Ctx, surface, live: LiveView) -> None:
    v, L = c.view, c.lay
    h, w = v.frame.shape[:2]
    box = map_roi(v.roi, w, h, live.dest) if v.roi is not None else None
    if v.screen == "looking":
        target = box or live.dest
        if box is not None:
            pygame.draw.rect(surface, th.ACCENT, box, width=L.px(3), border_radius=L.px(6))
        radius = max(L.px(22), min(min(target.w, target.h) * 0.3, L.px(60)))
        clip = surface.get_clip()
        surface.set_clip(live.dest)
        pygame.draw.circle(surface, th.mix(th.BG, th.TEXT, 0.35), target.center, radius, L.px(8))
        shapes.ring(surface, th.ACCENT, target.center, radius, L.px(8), v.progress)
        surface.set_clip(clip)
    elif box is not None and v.decision and v.decision.bin_id:
        pygame.draw.rect(surface, c.bin_colour(v.decision.bin_id), box, width=L.px(4), border_radius=L.px(6))


# ------------------------------------------------------------ the screens --

def _idle(c: Ctx, s: pygame.Surface) -> None:
    L = c.lay
    pygame.draw.rect(s, th.LETTERBOX, L.live_full)
    c.draw(s, c.t("idle_title"), L.side_title, 34, bold=True, min_size=14, valign="middle")
    card = L.side_card
    pygame.draw.rect(s, th.PANEL, card, border_radius=L.px(14))
    tips = c.words.tips(c.lang)
    if tips:
        i = c.tip_index % len(tips)
        inner = card.inflate(-L.px(28), -L.px(28))
        inner.h -= L.px(14)
        c.draw(s, tips[i], inner, 26, min_size=12, valign="middle")
        _dots(c, s, (card.centerx, card.bottom - L.px(14)), len(tips), i)
    _strip(c, s)


def _looking(c: Ctx, s: pygame.Surface) -> None:
    L = c.lay
    pygame.draw.rect(s, th.LETTERBOX, L.live_full)
    c.draw(s, c.t("looking_title"), L.side_title, 34, bold=True, min_size=14, valign="middle")
    card = L.side_card
    pygame.draw.rect(s, th.PANEL, card, border_radius=L.px(14))
    hint = card.inflate(-L.px(28), -L.px(28))
    hint.h -= L.px(40)
    c.draw(s, c.t("looking_hint"), hint, 28, min_size=12, valign="middle", align="centre")
    _strip(c, s)


def _progress_bar_rect(c: Ctx) -> pygame.Rect:
    card, L = c.lay.side_card, c.lay
    return pygame.Rect(card.x + L.px(20), card.bottom - L.px(44), card.w - 2 * L.px(20), L.px(18))


def _result(c: Ctx, s: pygame.Surface) -> None:
    """decided, await_drop and thanks: a card in the bin's colour, then the steps."""
    L, v = c.lay, c.view
    d = v.decision
    bin_id = d.bin_id if d else None
    colour = c.bin_colour(bin_id)
    fg = th.text_on(colour)
    pygame.draw.rect(s, colour, L.card, border_radius=L.px(18))
    name = c.bin_name(bin_id) if bin_id else ""
    if v.screen == "thanks":
        shapes.tick(s, fg, L.card_icon.inflate(-L.px(16), -L.px(16)))
        c.draw(s, name, L.card_line1, 28, fg, min_size=12, valign="bottom")
        c.draw(s, c.t("thanks_title"), L.card_line2, 60, fg, bold=True, min_size=18, valign="middle")
        blit_centred(s, c.icon(bin_id, L.card_pictogram.h, fg), L.card_pictogram)
        if d and d.weight_g is not None:
            c.draw(s, c.t("thanks_weight", weight=_weight(c, d.weight_g)), L.card_line3, 24, fg, min_size=12)
    else:
        position = c.cfg.bin(bin_id).position if bin_id else "centre"
        shapes.arrow(s, fg, L.card_icon, direction(position))
        if v.screen == "await_drop":
            line1 = c.t("await_title")
        elif d and d.corrected:
            line1 = c.t("decided_choice")
        else:
            line1 = c.t("decided_material", material=c.words.material(c.lang, d.label if d else None))
        c.draw(s, line1, L.card_line1, 28, fg, min_size=12, valign="bottom")
        c.draw(s, name, L.card_line2, 56, fg, bold=True, min_size=16, valign="middle")
        blit_centred(s, c.icon(bin_id, L.card_pictogram.h, fg), L.card_pictogram)
        if v.screen == "await_drop":
            c.draw(s, c.t("await_hint"), L.card_line3, 24, fg, bold=True, min_size=12)
        elif d and not d.corrected:
            _confidence(c, s, d.score, fg)
    pygame.draw.rect(s, th.LETTERBOX, L.live_small)
    if v.screen == "thanks":
        total = sum(v.counts_today.values())
        if total:
            c.draw(s, c.t("today_total", n=total), L.steps.inflate(-L.px(16), -L.px(16)), 26, th.MUTED,
                   min_size=12, valign="middle")
    else:
        _steps(c, s, d, colour)
        if v.screen in CORRECTABLE and bin_id:
            c.draw(s, c.t("change_bin_hint"), L.change_hint, 20, th.MUTED, min_size=10, valign="middle")
    _strip(c, s, highlight=bin_id, tappable=v.screen in CORRECTABLE)


def _steps(c: Ctx, s: pygame.Surface, d, colour) -> None:
    L = c.lay
    rule = c.cfg.rules.get(d.label) if d and d.label else None
    steps = c.words.guidance(c.lang, d.label) if rule is not None and rule.bin == d.bin_id else []
    steps = steps[:MAX_STEPS] or [c.t("no_guidance")]
    area = L.steps
    first_h = area.h if len(steps) == 1 else round(area.h * 0.5)
    rest_h = (area.h - first_h) // max(1, len(steps) - 1)
    y = area.y
    fg = th.text_on(colour)
    for i, step in enumerate(steps):
        h = first_h if i == 0 else rest_h
        row = pygame.Rect(area.x, y, area.w, h)
        dia = min(h - L.px(8), L.px(44 if i == 0 else 34))
        dot = pygame.Rect(0, 0, dia, dia)
        dot.midleft = (row.x, row.centery)
        pygame.draw.circle(s, colour, dot.center, dia // 2)
        c.draw(s, str(i + 1), dot.inflate(-dia // 4, -dia // 4), 26 if i == 0 else 20, fg, bold=True,
               min_size=8, align="centre", valign="middle")
        box = pygame.Rect(dot.right + L.px(12), row.y + L.px(2), row.right - dot.right - L.px(12), h - L.px(4))
        c.draw(s, step, box, 34 if i == 0 else 24, th.TEXT, bold=(i == 0), min_size=12, valign="middle")
        y += h


def _confidence(c: Ctx, s: pygame.Surface, score: float, fg) -> None:
    L = c.lay
    level = 1 + sum(score >= t for t in CONFIDENCE_STEPS)
    box = L.card_line3
    r = L.px(7)
    for i in range(3):
        centre = (box.x + r + i * (3 * r), box.centery)
        pygame.draw.circle(s, fg, centre, r, 0 if i < level else max(1, L.px(2)))
    word = ("confidence_low", "confidence_mid", "confidence_high")[level - 1]
    text_box = pygame.Rect(box.x + 9 * r, box.y, box.w - 9 * r, box.h)
    c.draw(s, c.t(word), text_box, 22, fg, min_size=11, valign="middle")


def unsure_split(c: Ctx) -> tuple[list, list]:
    """(the model's guesses as bins, the other bins in standing order): the unsure screen's two tiers."""
    by_id = {b.id: b for b in c.bins}
    guesses = [by_id[g] for g in c.view.guesses if g in by_id][:2]
    return guesses, [b for b in c.bins if b not in guesses]


def _unsure(c: Ctx, s: pygame.Surface) -> None:
    """What it saw, its two best guesses as the largest targets, the rest smaller, "try again" last."""
    L, v = c.lay, c.view
    c.draw(s, c.t("unsure_title"), L.choice_title, 36, bold=True, min_size=14, valign="middle")
    # The bin-full screen's rule: a full or locked-out "if in doubt" bin is not advice to follow (its tile
    # says Full), so the hint becomes a plain "choose a bin" and no tile wears the badge.
    doubt = usable_fallback(c.cfg.decision.fallback_bin, c.full)
    hint = c.t("unsure_if_in_doubt", bin=c.bin_name(doubt)) if doubt else c.t("unsure_hint")
    c.draw(s, hint, L.choice_hint, 24, th.MUTED, min_size=12, valign="middle")
    box = L.unsure_crop
    pygame.draw.rect(s, th.LETTERBOX, box, border_radius=L.px(12))
    if v.crop is not None and v.crop.ndim == 3 and v.crop.size:
        pic = _fit_picture(v.crop, box.inflate(-L.px(8), -L.px(8)))
        s.blit(pic, pic.get_rect(center=box.center))
    guesses, rest = unsure_split(c)
    for rect, b in zip(L.unsure_guesses(len(guesses)), guesses):
        _bin_button(c, s, rect, b, enabled=b.id not in c.full, label=c.t("unsure_guess", bin=c.bin_name(b.id)))
    rects = L.unsure_rest(len(rest) + 1)
    for rect, b in zip(rects, rest):
        _bin_button(c, s, rect, b, enabled=b.id not in c.full, suggested=(b.id == doubt and bool(guesses)),
                    badge_key="if_in_doubt_badge")
    retry = rects[-1]
    pygame.draw.rect(s, th.PANEL_HI, retry, border_radius=L.px(16))
    pygame.draw.rect(s, th.MUTED, retry, width=L.px(2), border_radius=L.px(16))
    icon = pygame.Rect(0, 0, min(retry.w, retry.h) // 3, min(retry.w, retry.h) // 3)
    icon.midtop = (retry.centerx, retry.y + L.px(14))
    shapes.ring(s, th.TEXT, icon.center, icon.w // 2, L.px(5), 0.8)
    c.draw(s, c.t("try_again"), pygame.Rect(retry.x + L.px(8), icon.bottom + L.px(6), retry.w - L.px(16),
                                             retry.bottom - icon.bottom - L.px(14)),
           24, bold=True, min_size=10, align="centre", valign="middle")


def _fit_picture(rgb, box: pygame.Rect) -> pygame.Surface:
    """The crop scaled to fit ``box``, aspect kept (drawn once: the layer is cached per item)."""
    import numpy as np

    h, w = rgb.shape[:2]
    k = min(box.w / w, box.h / h)
    pic = pygame.surfarray.make_surface(np.ascontiguousarray(np.transpose(rgb[..., :3], (1, 0, 2))))
    return pygame.transform.smoothscale(pic, (max(1, round(w * k)), max(1, round(h * k))))


def _bin_full(c: Ctx, s: pygame.Surface) -> None:
    L, v = c.lay, c.view
    full_id = v.full_bin or (v.decision.bin_id if v.decision else None)
    colour = th.mix(c.bin_colour(full_id), th.BG, 0.45)
    fg = th.text_on(colour)
    card = L.full_card
    pygame.draw.rect(s, colour, card, border_radius=L.px(18))
    icon = pygame.Rect(card.x + L.px(12), card.y + L.px(12), card.h - L.px(24), card.h - L.px(24))
    shapes.cross(s, th.ERROR if th.contrast(th.ERROR, colour) > 2.5 else fg, icon)
    title_box = pygame.Rect(icon.right + L.px(16), card.y + L.px(8), card.right - icon.right - L.px(32), card.h - L.px(16))
    title = "bin_out_of_order_title" if full_id in v.out_of_order else "bin_full_title"
    picto = pygame.Rect(card.right - L.px(112), card.y + L.px(16), L.px(96), card.h - L.px(32))
    if blit_centred(s, c.icon(full_id, picto.h, fg), picto):
        title_box.w = picto.x - title_box.x - L.px(8)
    c.draw(s, c.t(title, bin=c.bin_name(full_id) if full_id else ""), title_box, 44, fg, bold=True,
           min_size=14, valign="middle")
    hint = c.t("bin_full_suggest", bin=c.bin_name(v.suggested_bin)) if v.suggested_bin else c.t("bin_full_choose")
    c.draw(s, hint, L.full_hint, 30, bold=True, min_size=12, valign="middle")
    for rect, b in zip(L.full_grid(len(c.bins)), c.bins):
        _bin_button(c, s, rect, b, enabled=b.id not in c.full, suggested=(b.id == v.suggested_bin),
                    dim=v.suggested_bin is not None and b.id != v.suggested_bin)


PAINTERS = {
    "idle": _idle,
    "looking": _looking,
    "decided": _result,
    "await_drop": _result,
    "thanks": _result,
    "unsure": _unsure,
    "bin_full": _bin_full,
    "out_of_service": _out_of_service,
    "service": _service,
}
