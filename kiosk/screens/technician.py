"""The technician's screens: out of service (what is wrong, its code) and the service screen.

Drawn from the same context as the passers-by's screens (``paint.Ctx``);
``kiosk.screens.paint`` lists them with the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pygame

from kiosk.screens import shapes as shapes
from kiosk.faults import NEXT_STEPS
from kiosk.screens import theme as th
from kiosk.screens.qr import qr_surface

if TYPE_CHECKING:  # the context type only; paint imports this module
    from kiosk.screens.paint import Ctx

MAX_FAULT_LINES = 3
OUT_FAULTS = 2  # faults the out-of-service band spells out (code, part, message, next step); the rest counted


def _out_of_service(c: Ctx, s: pygame.Surface) -> None:
    """For the public: what happened and whom to tell (contact, QR). For a technician: code, part, next step."""
    L, v = c.lay, c.view
    site = c.cfg.site
    shapes.warning(s, th.WARN, th.INK, L.out_icon)
    c.draw(s, c.t("out_title"), L.out_title, 48, bold=True, min_size=16, valign="middle")
    c.draw(s, c.t("out_hint"), L.out_hint, 26, th.MUTED, min_size=12, valign="middle")
    if site.contact:
        c.draw(s, c.t("out_contact", contact=site.contact), L.out_contact, 28, bold=True, min_size=12,
               valign="middle")
    if site.id:
        c.draw(s, c.t("out_site", id=site.id), L.out_site, 20, th.MUTED, min_size=10, valign="middle")
    if site.qr_url:
        box = L.out_qr
        code = qr_surface(site.qr_url.replace("{site_id}", site.id or ""), min(box.w, box.h))
        s.blit(code, code.get_rect(center=box.center))
        c.draw(s, c.t("out_scan"), L.out_qr_caption, 20, th.MUTED, min_size=10, align="centre", valign="middle")
    if not v.faults:
        return
    box = L.out_codes
    pygame.draw.rect(s, th.PANEL, box, border_radius=L.px(14))
    inner = box.inflate(-L.px(28), -L.px(16))
    shown = v.faults[:OUT_FAULTS]
    rows = len(shown) + (1 if len(v.faults) > OUT_FAULTS else 0)
    h = inner.h // max(rows, 1)
    for i, f in enumerate(shown):
        row = pygame.Rect(inner.x, inner.y + i * h, inner.w, h)
        head = pygame.Rect(row.x, row.y, row.w, round(row.h * 0.45))
        step = pygame.Rect(row.x, head.bottom, row.w, row.h - head.h)
        # two lines, not one shrunk to 10 px: a config error's message ends in the key's file (the point of it)
        c.draw(s, c.t("out_fault", code=f.code, part=c.words.part(c.lang, f), message=f.message), head, 22, th.WARN,
               bold=True, min_size=10, valign="middle", max_lines=2)
        c.draw(s, c.t("out_next", step=next_step(f.code)), step, 20, th.TEXT, min_size=10, valign="top",
               max_lines=2)
    if len(v.faults) > OUT_FAULTS:
        more = pygame.Rect(inner.x, inner.y + len(shown) * h, inner.w, h)
        c.draw(s, c.t("service_more_faults", n=len(v.faults) - OUT_FAULTS), more, 20, th.MUTED, min_size=10,
               valign="middle")


def next_step(code: str) -> str:
    """What a technician does next: kiosk.faults.NEXT_STEPS, the table the README's fault table shows."""
    return NEXT_STEPS.get(code) or NEXT_STEPS["E000"]


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
