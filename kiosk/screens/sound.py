"""Short tones that confirm what the screen says, for people not looking at it at the moment of the drop.

Generated at start-up from sine waves (no sound files to ship or license):
a rising pair for "decided", a falling pair for "not sure", a bright chime
for "thanks" and a low double buzz for a fault. Each screen change plays at
most one cue. No audio device, or ``ui.sound.enabled: false``: silent, said
once in the log, never an error (a kiosk without a speaker is a normal kiosk).
"""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np

log = logging.getLogger(__name__)

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


class SoundCues:
    """Plays a cue when the screen changes to one that has one. ``played``: cues so far (tests, logs)."""

    def __init__(self, enabled: bool = True, volume: float = 0.6):
        self.enabled = enabled
        self.played: list[str] = []
        self._sounds: dict = {}
        self._last: Optional[str] = None
        self.problem: Optional[str] = None
        if not enabled:
            self.problem = "off (ui.sound.enabled)"
            return
        try:
            import pygame

            if not pygame.mixer.get_init():
                pygame.mixer.init(frequency=RATE, size=-16, channels=1, buffer=512)
            freq, _, channels = pygame.mixer.get_init()
            for name, notes in CUES.items():
                mono = tone(notes, volume, freq)
                data = np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono
                self._sounds[name] = pygame.sndarray.make_sound(np.ascontiguousarray(data))
        except Exception as e:  # no sound card, no driver: a silent kiosk, said once
            self.problem = f"no audio device ({e})"
            self._sounds = {}
            log.info("sound cues off: %s", self.problem)

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

    def close(self) -> None:
        if self._sounds:
            import pygame

            pygame.mixer.quit()
            self._sounds = {}


__all__ = ["SoundCues", "tone", "CUES", "SCREEN_CUES"]
