"""``kiosk snapshot``: any screen, with sample data, to a PNG, with no display.

For reviewing the layout at each size and language (and for the README and
the manual) without a Pi, a camera or an item to hold up. The sample camera
picture is drawn with numpy: a wall, a counter, a hand holding a bottle.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

from kiosk.config import KioskConfig, canonical_lang, load_config
from kiosk.datatypes import Decision, Roi
from kiosk.errors import ConfigError
from kiosk.faults import PartKind
from kiosk.view import SCREENS, Fault, View

log = logging.getLogger(__name__)

SAMPLE_FRAME_SIZE = (640, 480)
SAMPLE_ROI = Roi(250, 70, 200, 350)
SAMPLE_LABEL = "plastic"  # used when the config has a rule for it


def sample_frame(size=SAMPLE_FRAME_SIZE, seed: int = 0) -> np.ndarray:
    """A camera-like RGB picture: lit wall, counter, a hand holding a bottle, sensor noise."""
    w, h = size
    sx, sy = w / 640, h / 480
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy /= sy
    xx /= sx
    light = 1.0 - 0.35 * ((xx - 300) / 640) ** 2 - 0.25 * (yy / 480)  # lamp above, falling off
    img = np.empty((h, w, 3), np.float32)
    img[:] = (196, 188, 172)
    counter = yy > 380
    img[counter] = (120, 92, 66)
    img *= light[..., None]
    # bottle: body, shoulders, neck, cap, with a highlight and a shadow on the counter
    body = (np.abs(xx - 320) < 48) & (yy > 170) & (yy < 400)
    shoulder = ((xx - 320) / 48) ** 2 + ((yy - 170) / 45) ** 2 < 1
    neck = (np.abs(xx - 320) < 17) & (yy > 100) & (yy < 170)
    cap = (np.abs(xx - 320) < 20) & (yy > 80) & (yy <= 102)
    shadow = (((xx - 350) / 80) ** 2 + ((yy - 404) / 12) ** 2 < 1) & ~body
    img[shadow] *= 0.65
    bottle = body | shoulder | neck
    img[bottle] = img[bottle] * 0.45 + np.array([70, 130, 190], np.float32) * 0.55
    img[bottle & (np.abs(xx - 300) < 7)] = (225, 238, 246)  # specular highlight
    img[cap] = (30, 80, 200)
    label = (np.abs(xx - 320) < 48) & (yy > 250) & (yy < 310)
    img[label] = (230, 60, 50)
    # a hand gripping the bottle from the right
    hand = (((xx - 395) / 70) ** 2 + ((yy - 280) / 48) ** 2 < 1) & (xx > 352)
    img[hand] = (214, 162, 122)
    img[hand & (xx > 440)] = (60, 70, 110)  # sleeve
    rng = np.random.default_rng(seed)
    img += rng.normal(0, 4.0, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _sample_label(cfg: KioskConfig) -> str:
    return SAMPLE_LABEL if SAMPLE_LABEL in cfg.rules else next(iter(cfg.rules))


def sample_view(cfg: KioskConfig, state: str, lang: str, frame: np.ndarray | None = None, seq: int = 0) -> View:
    """A plausible ``View`` for ``state``, built from the config's own bins and rules."""
    if state not in SCREENS:
        raise ValueError(f"unknown state '{state}' (states are {', '.join(SCREENS)})")
    frame = sample_frame() if frame is None else frame
    label = _sample_label(cfg)
    bin_id = cfg.rules[label].bin
    ids = [b.id for b in cfg.bins]
    fill = {b: round(0.2 + 0.7 * ((i * 37) % 10) / 10, 2) for i, b in enumerate(ids)}
    counts = {b: 7 + (i * 13) % 30 for i, b in enumerate(ids)}
    decision = Decision(t=0.0, bin_id=bin_id, label=label, score=0.93, scores={label: 0.93})
    kw = dict(screen=state, language=lang, frame=frame, frame_seq=seq, fill=fill, counts_today=counts)
    if state == "looking":
        kw.update(roi=SAMPLE_ROI, progress=0.6)
    elif state in ("decided", "await_drop"):
        kw.update(roi=SAMPLE_ROI, decision=decision)
    elif state == "thanks":
        kw.update(decision=Decision(t=0.0, bin_id=bin_id, label=label, score=0.93, weight_g=23.0, drop_confirmed=True))
    elif state == "unsure":
        # leaning to the sample's bin, then to the next other bin a rule names: the two big targets
        other = next((c for c, r in cfg.rules.items() if r.bin != bin_id), label)
        scores = {label: 0.41, other: 0.33}
        guesses = tuple(dict.fromkeys([bin_id, cfg.rules[other].bin]))
        kw.update(roi=SAMPLE_ROI, decision=Decision(t=0.0, bin_id=None, label=label, score=0.41, scores=scores,
                                                    unsure=True),
                  crop=SAMPLE_ROI.crop(frame), guesses=guesses)
    elif state == "bin_full":
        fb = cfg.decision.fallback_bin
        suggested = fb if fb and fb != bin_id else next((b for b in ids if b != bin_id), None)
        fill[bin_id] = 1.0
        kw.update(decision=Decision(t=0.0, bin_id=None, label=label, score=0.93), full_bin=bin_id,
                  suggested_bin=suggested)
    elif state == "out_of_service":
        kw.update(frame=None, faults=(Fault("E200", PartKind.CAMERA, "camera not found: /dev/video0"),))
    elif state == "service":
        kw.update(faults=(Fault("E400", PartKind.SCALE, "HX711 not ready for 2 s: check DOUT/SCK wiring", ids[-1]),))
    return View(**kw)


class FontMissing(RuntimeError):
    """No installed font shows this language: a picture of it would be another language's (or boxes)."""


SIZES = ((800, 480), (1280, 800))  # the official 7" display and the 10.1" panel


def snapshot(cfg: KioskConfig, state: str, lang: str, size: tuple[int, int], out_path, ui=None) -> None:
    """Render ``state`` in ``lang`` at ``size`` with sample data and save it as a PNG.

    Raises ``FontMissing`` (nothing written) when no installed font can show ``lang``.
    """
    import pygame

    from kiosk.ui import KioskUI

    view = sample_view(cfg, state, lang)
    surface = pygame.Surface(tuple(size))
    ui = ui or KioskUI(cfg, tuple(size), clock=lambda: 0.0)
    if not ui.fonts.renders(lang):
        raise FontMissing(ui.fonts.problems.get(canonical_lang(lang), f"no installed font can show '{lang}'"))
    ui.draw(surface, view)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pygame.image.save(surface, str(out))
    log.info("snapshot: %s in '%s' at %dx%d -> %s", state, lang, *size, out)


def snapshot_all(cfg: KioskConfig, out_dir: Path) -> int:
    """Every state x language x size as ``STATE-LANG-WxH.png``; exit 3 if a language had no font."""
    from kiosk.ui import KioskUI

    missing, written = {}, 0
    for size in SIZES:
        ui = KioskUI(cfg, size, clock=lambda: 0.0)
        for lang in cfg.ui.languages:
            for state in SCREENS:
                try:
                    snapshot(cfg, state, lang, size, out_dir / f"{state}-{lang}-{size[0]}x{size[1]}.png", ui=ui)
                    written += 1
                except FontMissing as e:
                    missing[lang] = str(e)
                    break
    print(f"wrote {written} pictures to {out_dir}")
    for lang, why in missing.items():
        print(f"kiosk snapshot: {why}; '{lang}' not drawn (README: fonts)", file=sys.stderr)
    return 3 if missing else 0


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 800x480 (got '{text}')") from None
    if not (320 <= w <= 3840 and 240 <= h <= 2160):
        raise argparse.ArgumentTypeError(f"size {w}x{h} is outside 320x240 .. 3840x2160")
    return w, h


def register(subparsers) -> None:
    """Add ``kiosk snapshot`` to the CLI."""
    p = subparsers.add_parser(
        "snapshot", help="render a screen with sample data to a PNG (no display needed)",
        description="Render one UI screen with built-in sample data to a PNG file; needs no display or camera.")
    p.add_argument("--state", choices=SCREENS, help="the screen to render")
    p.add_argument("--all", action="store_true",
                   help="every screen in every language of ui.languages at 800x480 and 1280x800, into --out (a folder)")
    p.add_argument("--lang", default=None, help="language code (default: ui.default_language)")
    p.add_argument("--size", type=parse_size, default=None, help="WxH, e.g. 800x480 or 1280x800 (default: ui.size)")
    p.add_argument("--out", required=True, help="PNG file to write (with --all: a folder)")
    from kiosk.appliance.configpath import CONFIG_HELP

    # SUPPRESS: a --config given to a parent parser is not overwritten by this one's default
    p.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE", help=CONFIG_HELP)
    p.set_defaults(func=run_snapshot)


def run_snapshot(args) -> int:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        from kiosk.appliance.configpath import resolve_config_arg

        # the usual places (boot partition, /etc/kiosk, ./config.yaml), as every other command
        cfg = load_config(resolve_config_arg(getattr(args, "config", None)), check_model=False)
    except ConfigError as e:
        print(f"kiosk snapshot: {e}", file=sys.stderr)
        return 2
    if args.all:
        return snapshot_all(cfg, Path(args.out))
    if not args.state:
        print("kiosk snapshot: give --state (or --all)", file=sys.stderr)
        return 2
    lang = canonical_lang(args.lang or cfg.ui.default_language)
    if lang not in cfg.ui.languages:
        print(f"kiosk snapshot: language '{lang}' is not in ui.languages ({', '.join(cfg.ui.languages)})",
              file=sys.stderr)
        return 2
    size = tuple(args.size or cfg.ui.size)
    try:
        snapshot(cfg, args.state, lang, size, args.out)
    except FontMissing as e:
        print(f"kiosk snapshot: {e}; nothing written (README: fonts)", file=sys.stderr)
        return 3
    except (OSError, RuntimeError) as e:  # pygame.error is a RuntimeError
        print(f"kiosk snapshot: cannot write {args.out}: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.state}, {lang}, {size[0]}x{size[1]})")
    return 0
