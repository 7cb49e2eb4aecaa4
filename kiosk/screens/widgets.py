"""The pieces the screens are drawn from: bin strip and buttons, language button, dots, PIN pad.

Each takes the screen context (``paint.Ctx``) and a surface; the screens in
``kiosk.screens.paint`` compose them. Nothing here decides what a screen shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import pygame

from kiosk.screens import theme as th
from kiosk.screens.icons import blit_centred

if TYPE_CHECKING:  # the context type only; paint imports this module
    from kiosk.screens.paint import Ctx, Plan

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


def _strip(c: Ctx, s: pygame.Surface, highlight: Optional[str] = None, tappable: bool = False) -> None:
    """The bins as they stand, with fill bars; one highlighted, the others dimmed.

    ``tappable``: the others are buttons (a correction), so they are dimmed less and outlined.
    """
    L = c.lay
    for cell, b in zip(L.strip_cells(len(c.bins)), c.bins):
        colour = th.hex_rgb(b.colour)
        if highlight and b.id != highlight:
            colour = th.mix(colour, th.BG, th.DIM_TAPPABLE if tappable and b.id not in c.full else th.DIM_OTHER)
        pygame.draw.rect(s, colour, cell, border_radius=L.px(10))
        fg = th.text_on(colour)
        name_box = cell.inflate(-L.px(12), -L.px(20))
        name_box.y = cell.y + L.px(6)
        if cell.w >= L.px(150):  # room for a pictogram beside the name
            picto = pygame.Rect(name_box.x, name_box.y, L.px(34), name_box.h)
            if blit_centred(s, c.icon(b.id, L.px(30), fg), picto):
                name_box = pygame.Rect(picto.right + L.px(4), name_box.y, name_box.right - picto.right - L.px(4),
                                       name_box.h)
        c.draw(s, c.bin_name(b.id), name_box, 22, fg, bold=True, min_size=9, align="centre", valign="middle")
        fill = max(0.0, min(1.0, c.view.fill.get(b.id, 0.0)))
        bar = pygame.Rect(cell.x + L.px(10), cell.bottom - L.px(12), cell.w - L.px(20), L.px(5))
        pygame.draw.rect(s, th.mix(colour, (0, 0, 0), 0.35), bar, border_radius=bar.h // 2)
        if fill > 0:
            done = pygame.Rect(bar.x, bar.y, max(bar.h, round(bar.w * fill)), bar.h)
            pygame.draw.rect(s, th.ERROR if fill >= b.near_full else fg, done, border_radius=bar.h // 2)
        if highlight == b.id:
            pygame.draw.rect(s, th.TEXT, cell, width=L.px(3), border_radius=L.px(10))
        elif tappable and b.id not in c.full:
            pygame.draw.rect(s, th.MUTED, cell, width=L.px(2), border_radius=L.px(10))


def _bin_button(c: Ctx, s, rect: pygame.Rect, b, enabled: bool, suggested: bool = False, dim: bool = False,
                label: Optional[str] = None, badge_key: str = "suggested_badge") -> None:
    """A bin to touch. ``suggested``: the one to use (a white pill and frame); ``dim``: the others then.

    ``label``: instead of the bin's name (the unsure screen's "Glass?"); ``badge_key``: the pill's words.
    """
    L = c.lay
    colour = th.hex_rgb(b.colour) if enabled else th.DISABLED
    if enabled and dim:
        colour = th.mix(colour, th.BG, th.DIM_TAPPABLE)
    fg = th.text_on(colour) if enabled else th.MUTED
    pygame.draw.rect(s, colour, rect, border_radius=L.px(16))
    inner = rect.inflate(-L.px(16), -L.px(16))
    out_of_order = b.id in c.view.out_of_order
    badge = (c.t("out_of_order_badge" if out_of_order else "full_badge") if not enabled
             else c.t(badge_key) if suggested else None)
    if badge:
        badge_box = pygame.Rect(inner.x, inner.y, inner.w, min(L.px(30), inner.h // 3))
        pill = th.ERROR if not enabled else th.TEXT  # red "Full" / white "Use this", dark ink on both
        pygame.draw.rect(s, pill, badge_box, border_radius=badge_box.h // 2)
        c.draw(s, badge, badge_box.inflate(-L.px(8), 0), 20, th.text_on(pill), bold=True,
               min_size=9, align="centre", valign="middle")
        inner = pygame.Rect(inner.x, badge_box.bottom, inner.w, inner.bottom - badge_box.bottom)
    if suggested:
        pygame.draw.rect(s, th.TEXT, rect, width=L.px(7), border_radius=L.px(16))
    side = min(inner.w, inner.h * 2 // 5)
    if inner.h >= L.px(110) and side >= L.px(36):  # a pictogram above the name where the tile is tall enough
        picto = pygame.Rect(inner.x, inner.y + L.px(4), inner.w, side)
        if blit_centred(s, c.icon(b.id, side, fg), picto):
            inner = pygame.Rect(inner.x, picto.bottom, inner.w, inner.bottom - picto.bottom)
    c.draw(s, label or c.bin_name(b.id), inner, 34, fg, bold=True, min_size=10, align="centre", valign="middle")


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
