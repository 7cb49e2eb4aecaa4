"""Sound cues with SDL's dummy audio driver: generated, one per screen change, silent when off or without a device."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

from kiosk.screens.sound import CUES, SoundCues, alsa_cards, no_audio_device, tone  # noqa: E402


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


PI_CARDS = """ 0 [vc4hdmi0       ]: vc4-hdmi - vc4-hdmi-0
                      vc4-hdmi-0
"""
NO_CARDS = "--- no soundcards ---\n"


def test_whether_there_is_a_device_to_open():
    assert no_audio_device({}, PI_CARDS) is None  # the Pi's HDMI audio: open it
    assert "no sound card" in no_audio_device({}, NO_CARDS)
    assert "no sound card" in no_audio_device({}, "")  # no /proc/asound: ALSA not even loaded
    assert "no sound card" in no_audio_device({"SDL_AUDIODRIVER": "alsa"}, NO_CARDS)
    assert no_audio_device({"SDL_AUDIODRIVER": "dummy"}, NO_CARDS) is None  # plays to nothing: needs no card
    assert no_audio_device({"SDL_AUDIODRIVER": "pulseaudio"}, "") is None  # chosen on purpose: SDL tries only it
    assert no_audio_device({"PULSE_SERVER": "unix:/mnt/wslg/PulseServer"}, "") is None  # WSLg's sound server
    assert no_audio_device({}, None) is None  # no such list (not Linux): try, as before


def test_the_cards_list_is_read_from_proc_on_linux_only(tmp_path):
    cards = tmp_path / "cards"
    cards.write_text(PI_CARDS)
    assert alsa_cards(cards, platform="linux") == PI_CARDS
    assert alsa_cards(tmp_path / "none", platform="linux") == ""
    assert alsa_cards(tmp_path / "none", platform="darwin") is None


def test_without_a_sound_card_the_mixer_is_not_even_opened(mixer_off, caplog):
    """No card and no driver chosen: SDL would fall through to ALSA, which prints into the journal. Not tried."""
    import pygame

    pygame.mixer.quit()
    caplog.set_level("INFO", logger="kiosk.screens.sound")
    cues = SoundCues(enabled=True, environ={}, cards=lambda: NO_CARDS)
    assert pygame.mixer.get_init() is None
    assert not cues.active and "no sound card" in cues.problem and cues.on_screen("decided") is None
    assert [r.getMessage() for r in caplog.records] == [f"sound cues off: {cues.problem}"]  # said once, in the log
    cues.close()
    cues.close()
    assert cues.closed


def test_the_dummy_driver_opens_without_a_card_and_close_gives_the_mixer_back_once(mixer_off):
    import pygame

    pygame.mixer.quit()
    cues = SoundCues(enabled=True, environ={"SDL_AUDIODRIVER": "dummy"}, cards=lambda: NO_CARDS)
    assert cues.active and pygame.mixer.get_init() is not None
    with cues:
        assert cues.on_screen("thanks") == "thanks"
    assert cues.closed and pygame.mixer.get_init() is None and not cues.active
    cues.close()  # again: nothing to do, no error
    assert cues.on_screen("decided") is None and cues.played == ["thanks"]  # closed: silent


def test_a_mixer_someone_else_opened_stays_open_after_close(mixer_off):
    import pygame

    pygame.mixer.quit()
    pygame.mixer.init(frequency=22050, size=-16, channels=2)  # e.g. the host app's own sounds
    with SoundCues(enabled=True, environ={"SDL_AUDIODRIVER": "dummy"}, cards=lambda: NO_CARDS) as cues:
        assert cues.active and cues.on_screen("thanks") == "thanks"
    assert cues.closed and pygame.mixer.get_init() is not None  # not ours to close


def test_a_driver_that_fails_to_open_is_silent_and_leaves_no_mixer(monkeypatch, mixer_off):
    import pygame

    pygame.mixer.quit()
    monkeypatch.setenv("SDL_AUDIODRIVER", "no-such-driver")
    cues = SoundCues(enabled=True, cards=lambda: PI_CARDS)  # a card, but the driver will not open
    assert not cues.active and "no audio device" in cues.problem and pygame.mixer.get_init() is None
    cues.close()
    assert cues.closed
