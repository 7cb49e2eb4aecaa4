"""Sound cues with SDL's dummy audio driver: generated, one per screen change, silent when off or without a device."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

from kiosk.screens.sound import CUES, SoundCues, tone  # noqa: E402


@pytest.fixture
def mixer_off():
    import pygame

    yield
    pygame.mixer.quit()


def test_cues_are_distinct_short_and_click_free():
    waves = {name: tone(notes, 0.6) for name, notes in CUES.items()}
    for name, w in waves.items():
        assert w.dtype == np.int16 and 0.15 < len(w) / 22050 < 0.6, name
        assert abs(int(w[0])) < 500 and abs(int(w[-1])) < 500, name  # faded: no click at either end
        assert np.abs(w).max() > 10000, name  # and audible
    assert len({w.tobytes() for w in waves.values()}) == len(waves)
    assert np.abs(tone(CUES["decided"], 0.0)).max() == 0  # volume 0 is silence


def test_a_cue_plays_once_per_screen_change(mixer_off):
    cues = SoundCues(enabled=True, volume=0.5)
    assert cues.active, cues.problem  # the dummy driver is an audio device
    for screen in ["idle", "looking", "decided", "decided", "await_drop", "thanks", "thanks", "idle", "unsure",
                   "out_of_service", "out_of_service"]:
        cues.on_screen(screen)
    assert cues.played == ["decided", "thanks", "unsure", "fault"]
    cues.close()


def test_off_in_config_or_no_device_is_silent_not_an_error(monkeypatch, mixer_off):
    off = SoundCues(enabled=False)
    assert not off.active and off.on_screen("decided") is None and off.played == []
    import pygame

    pygame.mixer.quit()
    monkeypatch.setenv("SDL_AUDIODRIVER", "no-such-driver")
    silent = SoundCues(enabled=True)
    assert not silent.active and "no audio device" in silent.problem
    assert silent.on_screen("decided") is None
