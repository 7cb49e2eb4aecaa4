"""App.run headless (SDL dummy): the real UI loop, the worker thread, the watchdog gate."""

from __future__ import annotations

import threading
import time

import pygame

from kiosk import main as kiosk_main
from kiosk.devices.synthetic_camera import SyntheticCamera
from kiosk.classifier import OnnxClassifier
from kiosk.appliance.lifecycle import StopFlag
from kiosk import worker as kiosk_worker
from kiosk.main import App
from kiosk.worker import Worker
from kiosk.ui import KioskUI, open_display

from tests.fakes import FakeHardware


class Notifier:
    def __init__(self):
        self.readies, self.alives, self.stops = 0, 0, 0
        self.alive_times, self.stop_time = [], None

    def ready(self, text="running"):
        self.readies += 1

    def alive(self, view=None):
        self.alives += 1
        self.alive_times.append(time.monotonic())

    def stopping(self):
        self.stops += 1
        self.stop_time = time.monotonic()


def test_app_runs_headless_and_decides(cfg_with, scene_model):
    cfg = cfg_with({"camera.backend": "synthetic"}, model=scene_model)
    decisions, hw = [], FakeHardware()
    w = Worker(cfg, lambda: SyntheticCamera(cfg.camera, realtime=False).open(),
               lambda: OnnxClassifier(scene_model, threads=1), hardware=hw, on_decision=decisions.append,
               stop=StopFlag())
    surface = open_display(cfg.ui)
    try:
        ui, notifier = KioskUI(cfg, surface.get_size()), Notifier()
        from kiosk.screens.sound import SoundCues

        cues = SoundCues(cfg.ui.sound.enabled, cfg.ui.sound.volume)  # SDL's dummy audio driver
        app = App(cfg, w, ui=ui, notifier=notifier, cues=cues)
        start = time.monotonic()

        def stop_when_done():
            return len(decisions) >= 2 or time.monotonic() - start > 90

        # run the app loop on this thread until two items were decided
        import threading

        watcher = threading.Thread(target=lambda: (
            [time.sleep(0.1) for _ in iter(lambda: stop_when_done(), True)], w.stop.set("test done")), daemon=True)
        watcher.start()
        code = app.run(surface)
    finally:
        pygame.quit()
    assert code == 0
    assert [d.label for d in decisions[:2]] == ["glass", "cardboard"]
    assert notifier.readies == 1 and notifier.alives > 10 and notifier.stops == 1
    assert hw.open is None  # every flap closed at the end
    assert cues.active and cues.played[:2] == ["decided", "thanks"]  # the drawn screens' tones, in order


def test_hung_worker_starves_the_watchdog_and_stops_the_app(cfg_with, scene_model, monkeypatch):
    cfg = cfg_with({"camera.backend": "synthetic"}, model=scene_model)
    monkeypatch.setattr(kiosk_worker, "WORKER_STALL_S", 0.3)
    monkeypatch.setattr(kiosk_main, "WORKER_HUNG_S", 1.0)

    released = threading.Event()  # set when the test ends: no thread left sleeping behind it

    class HangingCamera(SyntheticCamera):
        def _make(self, index):
            if index == 20:
                released.wait(30)  # the worker hangs inside a camera read
            return super()._make(index)

    w = Worker(cfg, lambda: HangingCamera(cfg.camera, realtime=False).open(),
               lambda: OnnxClassifier(scene_model, threads=1), stop=StopFlag())
    notifier = Notifier()
    surface = open_display(cfg.ui)
    try:
        t0 = time.monotonic()
        code = App(cfg, w, ui=None, notifier=notifier).run(surface)
        elapsed = time.monotonic() - t0
    finally:
        released.set()
        pygame.quit()
    assert code == 1 and w.stop.signal_name == "worker hung"
    assert elapsed < 20
    assert notifier.alives > 0  # fed while the worker was fine...
    # ...then starved: no ping in the last 0.5 s before the app gave up (hung after WORKER_HUNG_S = 1 s)
    assert notifier.stop_time - notifier.alive_times[-1] > 0.5
