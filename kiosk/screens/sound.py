"""Short tones that confirm what the screen says, for people not looking at it at the moment of the drop.

Generated at start-up from sine waves (no sound files to ship or license):
a rising pair for "decided", a falling pair for "not sure", a bright chime
for "thanks" and a low double buzz for a fault. Each screen change plays at
most one cue. No audio device, or ``ui.sound.enabled: false``: silent, said
once in the log, never an error (a kiosk without a speaker is a normal kiosk).

Without a sound card the mixer is not even tried: SDL falls through to ALSA,
which prints "Unknown PCM default" lines to stderr, straight into the journal,
at every start (the display is opened without ``pygame.init()`` for the same
reason). Those lines come from C, below Python's logging; stderr is not
redirected around the call instead, because by then other threads log to the
same file descriptor and their lines would be swallowed with ALSA's.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Callable, Mapping, Optional

import numpy as np

from kiosk.closing import Closable

log = logging.getLogger(__name__)

ALSA_CARDS = Path("/proc/asound/cards")
NO_CARD_DRIVERS = {"dummy", "disk"}  # SDL audio drivers that play to no device: tests, recording to a file
_CARD_LINE = re.compile(r"^\s*\d+\s+\[", re.MULTILINE)  # " 0 [vc4hdmi0       ]: vc4-hdmi - vc4-hdmi-0"


def alsa_cards(path: Path = ALSA_CARDS, platform: str = sys.platform) -> Optional[str]:
    """The kernel's list of sound cards; "" on Linux without ALSA loaded; None where there is no such list."""
    if not platform.startswith("linux"):
        return None  # a developer's Mac or Windows: SDL's own drivers, no ALSA to print anything
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""  # no /proc/asound: the ALSA core is not even loaded, so no card
    except OSError:
        return None  # cannot tell: try the mixer as before


def no_audio_device(environ: Mapping[str, str], cards: Optional[str]) -> Optional[str]:
    """Why opening the mixer could only fail through ALSA (and print into the journal), or None to try it.

    ``environ``: the process environment (``SDL_AUDIODRIVER``, ``PULSE_SERVER``); ``cards``: ``alsa_cards()``.
    """
    wanted = {d.strip().lower() for d in environ.get("SDL_AUDIODRIVER", "").split(",") if d.strip()}
    if wanted and "alsa" not in wanted:
        return None  # a driver chosen on purpose (dummy in tests, pulseaudio, pipewire): SDL tries only that
    if cards is None or _CARD_LINE.search(cards):
        return None
    if not wanted and environ.get("PULSE_SERVER"):
        return None  # a sound server elsewhere (WSLg's, a network sink): SDL reaches it before ALSA
    return f"no sound card in {ALSA_CARDS}"

RATE = 22050
# cue -> notes as (frequency Hz, seconds); 0 Hz is a pause
CUES = {
    "decided": ((660, 0.09), (0, 0.03), (990, 0.14)),
    "unsure": ((740, 0.11), (0, 0.03), (494, 0.16)),
    "thanks": ((1046, 0.08), (1318, 0.08), (1568, 0.16)),
    "fault": ((220, 0.16), (0, 0.06), (220, 0.16)),
}
SCREEN_CUES = {"decided": "decided", "unsure": "unsure", "bin_full": "unsure", "thanks": "thanks",
               "out_of_service": "fault"}


def tone(notes, volume: float, rate: int = RATE) -> np.ndarray:
    """16-bit mono samples of ``notes``, each faded in and out over 8 ms (no clicks)."""
    parts = []
    for freq, seconds in notes:
        n = int(rate * seconds)
        if freq <= 0:
            parts.append(np.zeros(n, np.float32))
            continue
        t = np.arange(n, dtype=np.float32) / rate
        wave = np.sin(2 * np.pi * freq * t) + 0.25 * np.sin(4 * np.pi * freq * t)  # a little warmth
        ramp = min(n // 2, int(rate * 0.008))
        env = np.ones(n, np.float32)
        if ramp:
            env[:ramp] = np.linspace(0, 1, ramp)
            env[-ramp:] = np.linspace(1, 0, ramp)
        parts.append(wave * env / 1.25)
    samples = np.concatenate(parts) if parts else np.zeros(1, np.float32)
    return (samples * volume * 32767 * 0.9).astype(np.int16)


class SoundCues(Closable):
    """Plays a cue when the screen changes to one that has one. ``played``: cues so far (tests, logs).

    ``environ``/``cards``: what says whether there is a device to open (``os.environ``, ``alsa_cards``).
    ``close()`` gives back the mixer it opened, once (one already open belongs to whoever opened it);
    a closed one plays nothing.
    """

    def __init__(self, enabled: bool = True, volume: float = 0.6, *, environ: Optional[Mapping[str, str]] = None,
                 cards: Callable[[], Optional[str]] = alsa_cards):
        self.enabled = enabled
        self.played: list[str] = []
        self._sounds: dict = {}
        self._opened_mixer = False
        self._last: Optional[str] = None
        self.problem: Optional[str] = None
        if not enabled:
            self.problem = "off (ui.sound.enabled)"
            return
        missing = no_audio_device(os.environ if environ is None else environ, cards())
        if missing:
            self.problem = f"no audio device ({missing})"
            log.info("sound cues off: %s", self.problem)
            return
        try:
            import pygame

            if not pygame.mixer.get_init():
                pygame.mixer.init(frequency=RATE, size=-16, channels=1, buffer=512)
                self._opened_mixer = True
            freq, _, channels = pygame.mixer.get_init()
            for name, notes in CUES.items():
                mono = tone(notes, volume, freq)
                data = np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono
                self._sounds[name] = pygame.sndarray.make_sound(np.ascontiguousarray(data))
        except Exception as e:  # no sound card, no driver: a silent kiosk, said once
            self.problem = f"no audio device ({e})"
            self._sounds = {}
            log.info("sound cues off: %s", self.problem)
            if self._opened_mixer:  # one that opened but could not take the cues is given back now
                self._give_back()

    @property
    def active(self) -> bool:
        return bool(self._sounds)

    def on_screen(self, screen: str) -> Optional[str]:
        """Call with every drawn view's screen; plays (and returns) a cue when it changed to one with a cue."""
        if screen == self._last:
            return None
        self._last = screen
        cue = SCREEN_CUES.get(screen)
        if cue is None or not self._sounds:
            return None
        self._sounds[cue].play()
        self.played.append(cue)
        return cue

    def _close(self) -> None:
        self._sounds = {}
        if self._opened_mixer:  # a kiosk without sound never had a mixer to give back
            self._give_back()

    def _give_back(self) -> None:
        self._opened_mixer = False
        try:
            import pygame

            pygame.mixer.quit()
        except Exception:  # no pygame, or SDL already gone: nothing left open
            pass


__all__ = ["SoundCues", "tone", "alsa_cards", "no_audio_device", "CUES", "SCREEN_CUES"]
