"""The worker loop end to end: synthetic camera, a real ONNX model, faults."""

from __future__ import annotations


from kiosk.devices.synthetic_camera import SyntheticCamera, SyntheticScene
from kiosk.classifier import OnnxClassifier
from kiosk.errors import CameraError, ModelError
from kiosk.commands import ChooseBin as Choose
from kiosk.commands import Service, ServiceAction, ServiceMode
from kiosk.supervision import Backoff
from kiosk.appliance.eventlog import NullEventLog
from kiosk.worker import Worker
from kiosk.view import Fault

from tests.fakes import FakeHardware

FPS = 30


def make_worker(cfg, model, hardware=None, fail_after=None, scene=None, decisions=None, **kw):
    cameras = []

    def open_camera():
        cam = SyntheticCamera(cfg.camera, realtime=False, scene=scene, fail_after=fail_after).open()
        cameras.append(cam)
        return cam

    w = Worker(cfg, open_camera, lambda: OnnxClassifier(model, threads=1), hardware=hardware,
               on_decision=(decisions.append if decisions is not None else None), **kw)
    w.cameras = cameras
    return w


def test_decision_sequence_end_to_end(cfg_with, scene_model):
    cfg = cfg_with({"camera.backend": "synthetic"}, model=scene_model)
    hw, decisions = FakeHardware(), []
    w = make_worker(cfg, scene_model, hardware=hw, decisions=decisions)
    scene = SyntheticScene(tuple(cfg.camera.size), seed=cfg.camera.seed)
    screens = []
    for _ in range(int(scene.period * 3 * FPS)):
        w.step()
        screens.append((w.last_frame.t, w.view().screen))
    labels = [d.label for d in decisions]
    assert labels == ["glass", "cardboard", "metal"]
    assert [d.bin_id for d in decisions] == ["glass", "paper", "packaging"]
    assert all(d.drop_confirmed and d.weight_g == 180.0 for d in decisions)
    for d in decisions:  # every decision was made while an item was in view
        assert scene.item_present(d.t), (d.t, scene.phase(d.t))
    assert hw.log == [x for d in decisions for x in (("open", d.bin_id), ("close", d.bin_id))]
    seen = {s for _, s in screens}
    assert {"idle", "looking", "decided", "thanks"} <= seen


class RecordingLog(NullEventLog):
    def __init__(self):
        super().__init__()
        self.decisions, self.recorded = [], []

    def record_decision(self, decision, image=None):
        self.decisions.append(decision)

    def record_fault(self, code, part, message):
        self.recorded.append((code, part))


class RefusingHardware(FakeHardware):
    """The glass flap will not open, and (like a flap still closing) the hardware does not lock it out."""

    def open_flap(self, bin_id):
        if bin_id == "glass":
            self.log.append(("refused", bin_id))
            return False
        return super().open_flap(bin_id)


def test_a_flap_that_will_not_open_sends_the_person_to_another_bin(cfg_with, scene_model):
    cfg = cfg_with({"camera.backend": "synthetic"}, model=scene_model)
    hw, log, decisions = RefusingHardware(), RecordingLog(), []
    w = make_worker(cfg, scene_model, hardware=hw, decisions=decisions, eventlog=log)
    scene = SyntheticScene(tuple(cfg.camera.size), seed=cfg.camera.seed)
    views = []
    while not any(v.screen == "bin_full" for v in views):
        w.step()
        views.append(w.view())
        assert len(views) < scene.period * FPS, "no bin-full screen after the refusal"
    v = views[-1]
    assert hw.log == [("refused", "glass")] and hw.open is None and ("E411", "flap:glass") in log.recorded
    # never "put it in glass" over a shut flap: the person is offered the others, glass marked out of order
    assert "decided" not in [x.screen for x in views]
    assert v.full_bin == "glass" and "glass" in v.refused and v.out_of_order == {"glass"}
    assert decisions == [] and log.decisions == []  # the outcome is what the person does next
    w.post(Choose("glass"))  # touches go through the worker's command queue, as from the UI
    w.step()
    assert hw.open is None and w.view().screen == "bin_full"  # the refused bin cannot be chosen for this item
    w.post(Choose("residual"))
    w.step()
    assert hw.open == "residual"
    for _ in range(int(3 * FPS)):
        w.step()
    assert [(d.label, d.bin_id, d.corrected, d.drop_confirmed) for d in decisions] == [("glass", "residual", True, True)]
    assert log.decisions == decisions  # recorded once, counted once
    assert w.counts_today == {"residual": 1}


def test_nothing_in_view_means_no_decision_and_no_model_run(cfg_with, scene_model):
    cfg = cfg_with({"camera.backend": "synthetic"}, model=scene_model)
    empty = SyntheticScene(tuple(cfg.camera.size), hold_s=0, enter_s=0, leave_s=0, empty_s=1e6, drift=0.2,
                           drift_period=8)
    hw, decisions = FakeHardware(), []
    w = make_worker(cfg, scene_model, hardware=hw, scene=empty, decisions=decisions)
    calls = []
    w._ensure_parts(0.0)
    real = w.classifier.classify
    w.classifier.classify = lambda *a, **k: calls.append(1) or real(*a, **k)
    for _ in range(15 * FPS):
        w.step()
    assert decisions == [] and hw.log == [] and calls == []
    assert {w.view().screen} == {"idle"}


def test_camera_loss_is_out_of_service_then_recovers(cfg_with, scene_model):
    cfg = cfg_with({"camera.backend": "synthetic"}, model=scene_model)
    hw = FakeHardware(drop_after=0)
    clock = [0.0]
    w = make_worker(cfg, scene_model, hardware=hw, fail_after=int(3.2 * FPS), clock=lambda: clock[0])
    for _ in range(int(3.2 * FPS)):  # the first item is decided and its flap is open
        w.step()
        clock[0] += 1 / FPS
    assert hw.open == "glass"
    w.step()  # camera dies
    v = w.view()
    assert v.screen == "out_of_service" and v.faults[0].code == CameraError.code and v.faults[0].part == "camera"
    assert hw.open is None and hw.log[-1] == ("close", "glass")
    assert len(w.cameras) == 1
    for _ in range(5):
        w.step()  # backoff: no reconnect yet
    assert len(w.cameras) == 1
    clock[0] += 1.5
    w.step()
    assert len(w.cameras) == 2  # retried after the backoff
    w.step()
    assert w.view().screen != "out_of_service"


def test_refused_model_is_out_of_service_and_retried(cfg_with, scene_model):
    cfg = cfg_with({"camera.backend": "synthetic"}, model=scene_model)
    clock, attempts = [0.0], []

    def load():
        attempts.append(clock[0])
        if len(attempts) < 3:
            raise ModelError("model kiosk.onnx does not match its card: sha256 is 0000")
        return OnnxClassifier(scene_model, threads=1)

    w = Worker(cfg, lambda: SyntheticCamera(cfg.camera, realtime=False).open(), load, clock=lambda: clock[0])
    for _ in range(40):
        w.step()
        clock[0] += 0.5
        if w.view().screen != "out_of_service":
            break
    assert len(attempts) == 3
    assert attempts[2] - attempts[1] > attempts[1] - attempts[0]  # backoff grows
    assert w.view().screen == "idle"


def test_scale_fault_closes_flaps_and_blocks_decisions(cfg_with, scene_model):
    cfg = cfg_with({"camera.backend": "synthetic"}, model=scene_model)
    hw, decisions = FakeHardware(drop_after=0), []
    w = make_worker(cfg, scene_model, hardware=hw, decisions=decisions)
    for _ in range(int(3.2 * FPS)):
        w.step()
    assert hw.open == "glass"
    hw.fault_list = [Fault("E410", "scale", "HX711 data line stuck", "glass")]
    w.step()
    assert hw.open is None and w.view().screen == "out_of_service"
    assert any(f.part == "scale:glass" for f in w.view().faults)
    n = len(hw.log)
    for _ in range(10 * FPS):
        w.step()
    assert len(hw.log) == n  # nothing opened while out of service
    hw.fault_list = []
    w.step()
    assert w.view().screen != "out_of_service"


def test_flap_fault_is_a_warning_not_out_of_service(cfg_with, scene_model):
    cfg = cfg_with({"camera.backend": "synthetic"}, model=scene_model)
    hw = FakeHardware()
    hw.fault_list = [Fault("E420", "flap", "flap did not close: locked out", "glass")]
    w = make_worker(cfg, scene_model, hardware=hw)
    for _ in range(10):
        w.step()
    v = w.view()
    assert v.screen == "idle" and v.faults[0].part == "flap:glass"


def test_backoff_doubles_to_a_limit():
    b = Backoff(1.0, 5.0)
    delays = []
    for _ in range(5):
        b.failed(0.0)
        delays.append(b.delay)
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert not b.due(4.9) and b.due(5.0)
    b.succeeded()
    assert b.due(0.0)


def run_until(w, screen, limit=400):
    for _ in range(limit):
        w.step()
        if w.view().screen == screen:
            return True
    return False


def unsure_worker(cfg_with, hw, **kw):
    """A worker whose model never agrees with itself: the item ends on the unsure screen."""
    from kiosk.classifier import ScriptedClassifier

    from tests.conftest import CLASSES

    cfg = cfg_with({"camera.backend": "synthetic", "decision.look_timeout_s": 1.0})
    clf = ScriptedClassifier(CLASSES, ["glass", "metal", "paper", "trash"])
    return Worker(cfg, lambda: SyntheticCamera(cfg.camera, realtime=False).open(), lambda: clf, hardware=hw, **kw)


def test_choice_opens_only_on_the_unsure_screen_and_never_while_out_of_service(cfg_with):

    hw = FakeHardware(drop_after=0)
    w = unsure_worker(cfg_with, hw)
    w.step()
    w.post(Choose("glass"))  # idle: ignored
    w.step()
    assert hw.log == []
    assert run_until(w, "unsure")
    hw.fault_list = [Fault("E420", "scale", "stuck", "glass")]
    w.post(Choose("glass"))
    w.step()
    assert hw.log == [] and w.view().screen == "out_of_service"
    hw.fault_list = []
    w.step()
    assert run_until(w, "unsure", limit=2000)
    w.post(Choose("glass"))
    w.step()
    assert hw.log == [("open", "glass")]


def test_service_commands_need_the_service_screen_even_when_out_of_service(cfg_with):

    class ServiceHardware(FakeHardware):
        def service(self, action, bin_id):
            self.log.append((action.value, bin_id))
            return "done"

    hw = ServiceHardware()
    hw.fault_list = [Fault("E425", "scale", "not calibrated", "glass")]
    w = unsure_worker(cfg_with, hw)
    w.post(Service(ServiceAction.TARE, "glass"))
    w.step()
    assert hw.log == [] and w.view().screen == "out_of_service"
    w.post(ServiceMode(True))
    w.post(Service(ServiceAction.TARE, "glass"))
    w.step()
    assert hw.log == [("tare", "glass")] and w.view().screen == "service"
    w.post(ServiceMode(False))
    w.step()
    assert w.view().screen == "out_of_service"


def test_fault_is_logged_once_not_every_frame(cfg_with):
    class Log(NullEventLog):
        def __init__(self):
            super().__init__()
            self.recorded = []

        def record_fault(self, code, part, message):
            self.recorded.append((code, part))

        def counts_today(self):
            return {"glass": 4}

    hw, ev = FakeHardware(), Log()
    w = unsure_worker(cfg_with, hw, eventlog=ev)
    assert w.counts_today == {"glass": 4}  # counts survive a restart
    for i in range(30):
        hw.fault_list = [Fault("E426", "scale", f"no reading for {i} s", "glass")]
        w.step()
    assert ev.recorded == [("E426", "scale:glass")]


def test_model_on_its_reference_path_keeps_sorting_and_tells_the_technician(cfg_with, scene_model, tmp_path):
    """A CPU whose int8 kernels disagree with the card: E301 shown and logged once, decisions go on."""
    from kiosk.appliance.eventlog import EventLog
    from kiosk.model.sessions import SelfCheck

    cfg = cfg_with({"camera.backend": "synthetic"}, model=scene_model)

    def load():
        clf = OnnxClassifier(scene_model, threads=1)
        # what check_kernels reports on such a CPU (the session is then the reference one)
        clf.self_check = SelfCheck("reference", 2.1, 0.01, 0.16, "model computes differently on this CPU (test): ...")
        return clf

    hw, decisions = FakeHardware(), []
    with EventLog(tmp_path / "events.db") as log:
        w = Worker(cfg, lambda: SyntheticCamera(cfg.camera, realtime=False).open(), load, hardware=hw, eventlog=log,
                   on_decision=decisions.append)
        for _ in range(int(6 * FPS)):
            w.step()
        v = w.view()
        assert v.screen != "out_of_service"
        assert [(f.code, f.part) for f in v.faults] == [("E301", "model")]
        assert "computes differently" in v.faults[0].message
        assert decisions and hw.log[0][0] == "open"  # still sorting
    import sqlite3

    with sqlite3.connect(tmp_path / "events.db") as conn:
        rows = conn.execute("SELECT code, part FROM faults WHERE code = 'E301'").fetchall()
    assert rows == [("E301", "model")]  # logged once, not every frame


def test_a_correction_on_the_decided_screen_moves_the_flap_and_shows_in_stats(cfg_with, tmp_path):
    """The kiosk says glass, the person taps paper: glass closes, paper opens, the log has the correction."""
    from kiosk.appliance.eventlog import EventLog
    from kiosk.appliance.stats import compute
    from kiosk.classifier import ScriptedClassifier

    from tests.conftest import CLASSES

    cfg = cfg_with({"camera.backend": "synthetic"})
    hw = FakeHardware(drop_after=0)
    log = EventLog(tmp_path / "events.db")
    clf = ScriptedClassifier(CLASSES, ["glass"], score=0.95)
    w = Worker(cfg, lambda: SyntheticCamera(cfg.camera, realtime=False).open(), lambda: clf, hardware=hw,
               eventlog=log)
    assert run_until(w, "decided") and hw.log == [("open", "glass")]
    w.post(Choose("paper"))
    w.step()
    assert hw.log == [("open", "glass"), ("close", "glass"), ("open", "paper")] and hw.open == "paper"
    assert w.view().decision.corrected and w.view().decision.bin_id == "paper"
    assert run_until(w, "thanks", limit=600)
    assert hw.open is None
    stats = compute(tmp_path / "events.db")
    assert stats.corrected() == 1
    [row] = [g for g in stats.groups if g.items]
    assert (row.label, row.bin_id, row.corrected) == ("glass", "paper", 1)
    log.close()


def test_try_again_on_the_unsure_screen_looks_again_and_records_nothing(cfg_with, tmp_path):
    from kiosk.appliance.eventlog import EventLog
    from kiosk.commands import TryAgain

    hw = FakeHardware(drop_after=0)
    log = EventLog(tmp_path / "events.db")
    w = unsure_worker(cfg_with, hw, eventlog=log)
    assert run_until(w, "unsure")
    view = w.view()
    assert view.crop is not None and view.crop.ndim == 3 and len(view.guesses) >= 1  # what the screen shows
    w.post(TryAgain())
    w.step()
    assert w.view().screen in ("idle", "looking") and hw.log == []
    log.close()
    import sqlite3

    with sqlite3.connect(str(tmp_path / "events.db")) as db:
        assert db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 0  # this try left no record


def test_the_sound_cues_are_closed_when_the_kiosk_stops(cfg_with, monkeypatch):
    """run() gives the mixer back at shutdown, like every other part it opened (SDL's dummy audio driver here)."""
    import pygame

    from kiosk import main as kiosk_main
    from kiosk.screens import sound

    made = []

    class Cues(sound.SoundCues):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            made.append(self)

    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    monkeypatch.setattr(sound, "SoundCues", Cues)
    cfg = cfg_with({"camera.backend": "synthetic", "gpio.pin_factory": "mock", "ui.fullscreen": False,
                    "fleet.enabled": False})
    assert kiosk_main.run(cfg, demo=True, max_frames=3) == 0
    [cues] = made
    assert cues.problem is None  # it did open the (dummy) mixer
    assert cues.closed and not cues.active and pygame.mixer.get_init() is None
