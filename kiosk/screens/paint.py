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
from kiosk.screens.layout import Layout, direction
from kiosk.screens.live import LiveView, map_roi

FULL_AT = 1.0  # fill fraction at which a bin refuses items on the choice screens
CONFIDENCE_STEPS = (0.75, 0.9)  # scores for two and three confidence dots
MAX_STEPS = 3  # guidance steps shown; the first is the one that matters
MAX_FAULT_LINES = 3
PIN_KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "del", "0", "ok")
RESULT_SCREENS = ("decided", "await_drop", "thanks")


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

    def t(self, key: str, **values) -> str:
        return self.words.t(self.lang, key, **values)

    def bin_name(self, bin_id: str) -> str:
        return self.words.bin_name(self.lang, bin_id)

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
    elif v.screen in ("unsure", "bin_full"):
        rects = L.choice_grid(n) if v.screen == "unsure" else L.full_grid(n)
        plan.buttons += [Button(r, "bin", b.id, b.id not in c.full) for r, b in zip(rects, c.bins)]
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
    _strip(c, s, highlight=bin_id)


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


def _unsure(c: Ctx, s: pygame.Surface) -> None:
    L = c.lay
    c.draw(s, c.t("unsure_title"), L.choice_title, 36, bold=True, min_size=14, valign="middle")
    c.draw(s, c.t("unsure_hint"), L.choice_hint, 24, th.MUTED, min_size=12, valign="middle")
    for rect, b in zip(L.choice_grid(len(c.bins)), c.bins):
        _bin_button(c, s, rect, b, enabled=b.id not in c.full)


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
    c.draw(s, c.t(title, bin=c.bin_name(full_id) if full_id else ""), title_box, 44, fg, bold=True,
           min_size=14, valign="middle")
    hint = c.t("bin_full_suggest", bin=c.bin_name(v.suggested_bin)) if v.suggested_bin else c.t("bin_full_choose")
    c.draw(s, hint, L.full_hint, 30, bold=True, min_size=12, valign="middle")
    for rect, b in zip(L.full_grid(len(c.bins)), c.bins):
        _bin_button(c, s, rect, b, enabled=b.id not in c.full, suggested=(b.id == v.suggested_bin))


def _out_of_service(c: Ctx, s: pygame.Surface) -> None:
    L, v = c.lay, c.view
    shapes.warning(s, th.WARN, th.INK, L.out_icon)
    c.draw(s, c.t("out_title"), L.out_title, 48, bold=True, min_size=16, valign="middle")
    c.draw(s, c.t("out_hint"), L.out_hint, 28, th.MUTED, min_size=12)
    if not v.faults:
        return
    box = L.out_codes
    pygame.draw.rect(s, th.PANEL, box, border_radius=L.px(14))
    inner = box.inflate(-L.px(32), -L.px(24))
    lines = [c.t("out_code", code=f.code, part=c.words.part(c.lang, f)) for f in v.faults[:MAX_FAULT_LINES]]
    if len(v.faults) > MAX_FAULT_LINES:
        lines.append(c.t("service_more_faults", n=len(v.faults) - MAX_FAULT_LINES))
    h = inner.h // max(len(lines), 2)
    for i, line in enumerate(lines):
        row = pygame.Rect(inner.x, inner.y + i * h, inner.w, h)
        c.draw(s, line, row, 30, th.WARN if i < MAX_FAULT_LINES else th.MUTED, bold=True, min_size=12,
               valign="middle")


def _service(c: Ctx, s: pygame.Surface) -> None:
    L, v = c.lay, c.view
    c.draw(s, c.t("service_title"), L.service_title, 36, bold=True, min_size=14, valign="middle")
    c.draw(s, c.t("service_today", n=sum(v.counts_today.values())), L.service_summary, 24, th.MUTED,
           min_size=12, valign="middle", align="right")
    for rect, b in zip(L.service_cards(len(c.bins)), c.bins):
        _service_card(c, s, rect, b)
    box = L.service_faults
    pygame.draw.rect(s, th.PANEL, box, border_radius=L.px(12))
    inner = box.inflate(-L.px(24), -L.px(16))
    if not v.faults:
        c.draw(s, c.t("service_no_faults"), inner, 22, th.MUTED, min_size=11, valign="middle")
    else:
        lines = [c.t("service_fault", code=f.code, part=c.words.part(c.lang, f), message=f.message)
                 for f in v.faults[:MAX_FAULT_LINES]]
        if len(v.faults) > MAX_FAULT_LINES:
            lines[-1] = c.t("service_more_faults", n=len(v.faults) - MAX_FAULT_LINES + 1)
        h = inner.h // MAX_FAULT_LINES
        for i, line in enumerate(lines):
            c.draw(s, line, pygame.Rect(inner.x, inner.y + i * h, inner.w, h), 18, th.WARN, min_size=10,
                   valign="middle", max_lines=1)
    sel = c.bin_name(c.service_bin) if c.service_bin else ""
    labels = {
        "tare": c.t("service_tare", bin=sel),
        "flap_test": c.t("service_flap_test", bin=sel),
        "reset": c.t("service_reset", bin=sel),
        "close": c.t("service_close"),
    }
    kinds = list(labels)
    for rect, kind in zip(L.service_buttons(len(kinds)), kinds):
        bg = th.ACCENT if kind == "close" else th.PANEL_HI
        pygame.draw.rect(s, bg, rect, border_radius=L.px(12))
        c.draw(s, labels[kind], rect.inflate(-L.px(16), -L.px(12)), 22, th.text_on(bg), bold=True, min_size=10,
               align="centre", valign="middle")


def _service_card(c: Ctx, s: pygame.Surface, rect: pygame.Rect, b) -> None:
    L, v = c.lay, c.view
    colour = th.hex_rgb(b.colour)
    pygame.draw.rect(s, th.PANEL, rect, border_radius=L.px(12))
    stripe = pygame.Rect(rect.x, rect.y, L.px(14), rect.h)
    pygame.draw.rect(s, colour, stripe, border_top_left_radius=L.px(12), border_bottom_left_radius=L.px(12))
    if b.id == c.service_bin:
        pygame.draw.rect(s, th.TEXT, rect, width=L.px(4), border_radius=L.px(12))
    inner = pygame.Rect(stripe.right + L.px(8), rect.y + L.px(8), rect.right - stripe.right - L.px(16), rect.h - L.px(16))
    fill = max(0.0, min(1.0, v.fill.get(b.id, 0.0)))
    rows = (0.38, 0.3, 0.32) if inner.h > L.px(100) else (0.5, 0.0, 0.5)
    y = inner.y
    name_box = pygame.Rect(inner.x, y, inner.w, round(inner.h * rows[0]))
    c.draw(s, c.bin_name(b.id), name_box, 20, bold=True, min_size=9, valign="middle")
    y = name_box.bottom
    if rows[1]:
        count_box = pygame.Rect(inner.x, y, inner.w, round(inner.h * rows[1]))
        c.draw(s, c.t("service_count", n=v.counts_today.get(b.id, 0)), count_box, 18, th.MUTED, min_size=9,
               valign="middle")
        y = count_box.bottom
    bar_h = L.px(8)
    fill_box = pygame.Rect(inner.x, y, inner.w, inner.bottom - y - bar_h - L.px(4))
    warn = fill >= b.near_full
    c.draw(s, c.t("service_fill", pct=round(fill * 100)), fill_box, 18, th.WARN if warn else th.MUTED, min_size=9,
           valign="middle")
    bar = pygame.Rect(inner.x, inner.bottom - bar_h, inner.w, bar_h)
    pygame.draw.rect(s, th.PANEL_HI, bar, border_radius=bar_h // 2)
    if fill > 0:
        pygame.draw.rect(s, th.WARN if warn else colour, (bar.x, bar.y, max(bar_h, round(bar.w * fill)), bar_h),
                         border_radius=bar_h // 2)


# -------------------------------------------------------------- widgets --

def _lang_button(c: Ctx, s: pygame.Surface, rect: pygame.Rect) -> None:
    L = c.lay
    pygame.draw.rect(s, th.PANEL_HI, rect, border_radius=L.px(14))
    pygame.draw.rect(s, th.MUTED, rect, width=L.px(2), border_radius=L.px(14))
    label = c.words.language_name(c.next_lang)
    c.draw(s, label, rect.inflate(-L.px(12), -L.px(12)), 24, bold=True, min_size=10, align="centre",
           valign="middle", lang=c.next_lang)


def _strip_cell(c: Ctx, bin_id: str) -> Optional[pygame.Rect]:
    for cell, b in zip(c.lay.strip_cells(len(c.bins)), c.bins):
        if b.id == bin_id:
            return cell
    return None


def _strip(c: Ctx, s: pygame.Surface, highlight: Optional[str] = None) -> None:
    """The bins as they stand, with fill bars; one highlighted, the others dimmed."""
    L = c.lay
    for cell, b in zip(L.strip_cells(len(c.bins)), c.bins):
        colour = th.hex_rgb(b.colour)
        if highlight and b.id != highlight:
            colour = th.mix(colour, th.BG, 0.7)
        pygame.draw.rect(s, colour, cell, border_radius=L.px(10))
        fg = th.text_on(colour)
        name_box = cell.inflate(-L.px(12), -L.px(20))
        name_box.y = cell.y + L.px(6)
        c.draw(s, c.bin_name(b.id), name_box, 22, fg, bold=True, min_size=9, align="centre", valign="middle")
        fill = max(0.0, min(1.0, c.view.fill.get(b.id, 0.0)))
        bar = pygame.Rect(cell.x + L.px(10), cell.bottom - L.px(12), cell.w - L.px(20), L.px(5))
        pygame.draw.rect(s, th.mix(colour, (0, 0, 0), 0.35), bar, border_radius=bar.h // 2)
        if fill > 0:
            done = pygame.Rect(bar.x, bar.y, max(bar.h, round(bar.w * fill)), bar.h)
            pygame.draw.rect(s, th.ERROR if fill >= b.near_full else fg, done, border_radius=bar.h // 2)
        if highlight == b.id:
            pygame.draw.rect(s, th.TEXT, cell, width=L.px(3), border_radius=L.px(10))


def _bin_button(c: Ctx, s, rect: pygame.Rect, b, enabled: bool, suggested: bool = False) -> None:
    L = c.lay
    colour = th.hex_rgb(b.colour) if enabled else th.DISABLED
    fg = th.text_on(colour) if enabled else th.MUTED
    pygame.draw.rect(s, colour, rect, border_radius=L.px(16))
    inner = rect.inflate(-L.px(16), -L.px(16))
    out_of_order = b.id in c.view.out_of_order
    badge = (c.t("out_of_order_badge" if out_of_order else "full_badge") if not enabled
             else c.t("suggested_badge") if suggested else None)
    if badge:
        badge_box = pygame.Rect(inner.x, inner.y, inner.w, min(L.px(30), inner.h // 3))
        c.draw(s, badge, badge_box, 20, th.ERROR if not enabled else fg, bold=True, min_size=9, align="centre",
               valign="middle")
        inner = pygame.Rect(inner.x, badge_box.bottom, inner.w, inner.bottom - badge_box.bottom)
    if suggested:
        pygame.draw.rect(s, th.TEXT, rect, width=L.px(5), border_radius=L.px(16))
    c.draw(s, c.bin_name(b.id), inner, 34, fg, bold=True, min_size=10, align="centre", valign="middle")


def _dots(c: Ctx, s, centre, n: int, current: int) -> None:
    L = c.lay
    r, gap = L.px(4), L.px(14)
    x0 = centre[0] - (n - 1) * gap / 2
    for i in range(n):
        pygame.draw.circle(s, th.TEXT if i == current else th.PANEL_HI, (round(x0 + i * gap), centre[1]), r)


def _pin_pad(c: Ctx, s: pygame.Surface, plan: Plan) -> None:
    L, pad = c.lay, c.pin
    shade = pygame.Surface(L.size, pygame.SRCALPHA)
    shade.fill((0, 0, 0, 190))
    s.blit(shade, (0, 0))
    panel = L.pin_panel
    pygame.draw.rect(s, th.PANEL, panel, border_radius=L.px(18))
    pygame.draw.rect(s, th.MUTED, panel, width=L.px(2), border_radius=L.px(18))
    c.draw(s, c.t("pin_title"), L.pin_title, 32, bold=True, min_size=14, valign="middle")
    if pad.configured:
        dots = L.pin_dots
        pygame.draw.line(s, th.MUTED, dots.bottomleft, dots.bottomright, L.px(2))
        r = L.px(9)
        for i in range(len(pad.digits)):
            pygame.draw.circle(s, th.TEXT, (dots.x + r + i * 3 * r, dots.centery), r)
    _, _, message, left = pad.state()
    if message:
        colour = th.TEXT if message == "pin_not_set" else th.ERROR
        box = L.pin_message if pad.configured else L.pin_message_wide
        c.draw(s, c.t(message, s=left), box, 26, colour, min_size=11, valign="top")
    for b in plan.buttons:
        if b.kind == "pin":
            bg = th.ACCENT if b.arg == "ok" else th.PANEL_HI
            pygame.draw.rect(s, bg, b.rect, border_radius=L.px(14))
            label = {"ok": c.t("pin_ok"), "del": c.t("pin_delete")}.get(b.arg, b.arg)
            c.draw(s, label, b.rect.inflate(-L.px(12), -L.px(12)), 40 if b.arg.isdigit() else 24, th.text_on(bg),
                   bold=True, min_size=10, align="centre", valign="middle")
        elif b.kind == "pin_cancel":
            pygame.draw.rect(s, th.PANEL_HI, b.rect, border_radius=L.px(14))
            c.draw(s, c.t("pin_cancel"), b.rect.inflate(-L.px(16), -L.px(12)), 26, bold=True, min_size=10,
                   align="centre", valign="middle")


def _weight(c: Ctx, grams: float) -> str:
    if grams >= 1000:
        return c.t("weight_kg", value=f"{grams / 1000:.1f}")
    return c.t("weight_g", value=f"{grams:.0f}")


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
