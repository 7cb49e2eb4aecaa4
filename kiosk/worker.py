"""The worker thread: capture, gate, classify, decide and act on the newest frame; publish a View.

One ``step()`` is the README's diagram from left to right: poll the
hardware, take the UI's commands, make sure the camera and model are there
(``kiosk.supervision``), read a frame, run ``kiosk.pipeline.Pipeline`` on
it, apply the decision engine's effects to the flaps and the event log, and
publish a frozen ``View`` (``kiosk.viewmodel``). Faults are kept by a
``FaultBook`` and never end the loop: a missing part takes the kiosk out of
service until it is back. Commands (``kiosk.commands``) arrive on a queue.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Optional

from kiosk.appliance.eventlog import NullEventLog
from kiosk.appliance.lifecycle import StopFlag
from kiosk.camera import EndOfStream, FrameSource
from kiosk.classifier import Classifier
from kiosk.commands import ChooseBin, PinChecked, Service, ServiceMode, SetLanguage, TryAgain
from kiosk.config import KioskConfig
from kiosk.datatypes import Decision, Frame, Presence
from kiosk.decision import Effect, State
from kiosk.devices.front import HardwareFront, NullHardware
from kiosk.errors import CameraError, HardwareError, KioskError, ModelError
from kiosk.faultbook import FaultBook
from kiosk.faults import Fault, PartKind
from kiosk.meters import DailyTally, FrameRate
from kiosk.model.sessions import KERNEL_FALLBACK_CODE
from kiosk.pipeline import Pipeline
from kiosk.supervision import Backoff, Supervised
from kiosk.view import View
from kiosk.viewmodel import compose_view

log = logging.getLogger(__name__)

FLAP_REFUSED_CODE = "E411"  # the hardware would not open a flap: the person was offered the other bins
WORKER_STALL_S = 10.0  # a worker silent this long is hung: stop feeding the watchdog
SCREEN_STALL_S = 3.0  # the screen not drawn this long: no flap opens behind it (the person cannot see what to do)
WORKER_HUNG_S = 25.0  # silent this long: exit in order (flaps closed) before the watchdog (STALL + WatchdogSec) kills
SERVICE_IDLE_S = 300.0  # the service screen closes itself when left open and untouched
DEVICE_KINDS = frozenset({PartKind.SCALE, PartKind.FLAP})  # faults the hardware reports as a current list
LOG_KINDS = frozenset({PartKind.EVENTLOG})  # the event log's own state: writes failing, started afresh


class ServiceSession:
    """The service screen: opened by the PIN, closed by the technician or after ``idle_s`` untouched."""

    def __init__(self, idle_s: float = SERVICE_IDLE_S):
        self.idle_s = idle_s
        self.active = False
        self.touched = 0.0

    def set(self, on: bool, now: float) -> None:
        self.active, self.touched = on, now

    def touch(self, now: float) -> None:
        self.touched = now

    def expired(self, now: float) -> bool:
        """True once, when an open session has been left alone too long (it is closed)."""
        if self.active and now - self.touched > self.idle_s:
            self.active = False
            return True
        return False


class Worker:
    """Capture, gate, classify, decide and act on one thread; publish a View."""

    def __init__(self, cfg: KioskConfig, open_camera: Callable[[], FrameSource],
                 load_classifier: Callable[[], Classifier], hardware: Optional[HardwareFront] = None,
                 eventlog=None, stop: Optional[StopFlag] = None, clock: Callable[[], float] = time.monotonic,
                 on_decision: Optional[Callable[[Decision], None]] = None, startup_faults=()):
        self.cfg = cfg
        self.hardware = hardware if hardware is not None else NullHardware()
        self.eventlog = eventlog if eventlog is not None else NullEventLog()
        self.stop = stop if stop is not None else StopFlag()
        self.clock = clock
        self.on_decision = on_decision
        # The parts the loop cannot run without, each kept alive by its own supervisor.
        self._camera: Supervised[FrameSource] = Supervised(
            open_camera, CameraError, Backoff(1.0, cfg.camera.retry_max_s),
            on_failed=lambda e: self._fault(Fault.from_error(e, PartKind.CAMERA)))
        self._model: Supervised[Classifier] = Supervised(
            load_classifier, ModelError, Backoff(2.0, 60.0),
            on_failed=lambda e: self._fault(Fault.from_error(e, PartKind.MODEL)), on_opened=self._model_opened)
        self.pipeline: Optional[Pipeline] = None
        self._offered: Optional[Classifier] = None  # a new model, checked elsewhere, waiting for a pause
        self._offer_lock = threading.Lock()
        self.faults = FaultBook(self.eventlog.record_fault, startup_faults)
        self.service = ServiceSession()
        self.tally = DailyTally(self.eventlog.counts_today())
        self.rate = FrameRate()
        self._crop = None  # the item's square, for the record when images are kept
        self.commands: queue.SimpleQueue = queue.SimpleQueue()
        self._handlers = {ChooseBin: self._choose, TryAgain: self._try_again, SetLanguage: self._set_language,
                          ServiceMode: self._service_mode, Service: self._service_action,
                          PinChecked: self._pin_checked}
        self.heartbeat = clock()
        self.screen_heartbeat: Optional[float] = None  # None: no screen to wait for (tests, bench, eval)
        self._watched: list[tuple[frozenset, Callable[[], list]]] = []
        self.watch(LOG_KINDS, self.eventlog.faults)  # writes failing, file started afresh
        self.language = cfg.ui.default_language
        self._view = View(language=self.language)
        self._view_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self.finished = threading.Event()
        self.error: Optional[BaseException] = None
        self.last_frame: Optional[Frame] = None

    # ---- thread plumbing ------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kiosk-worker", daemon=True)
        self._thread.start()

    def join(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def watch(self, kinds: frozenset, current: Callable[[], list]) -> None:
        """Keep the faults of ``kinds`` equal to ``current()`` every step (a part the worker does not run)."""
        self._watched.append((frozenset(kinds), current))

    def offer_classifier(self, classifier: Classifier) -> None:
        """A loaded, checked model (kiosk.updates.watcher): used from the next idle moment, between two items."""
        with self._offer_lock:
            old, self._offered = self._offered, classifier
        if old is not None:  # offered twice before a pause: the newer one wins
            old.close()

    def _drop_offered(self) -> None:
        with self._offer_lock:
            pending, self._offered = self._offered, None
        if pending is not None:
            pending.close()

    def _take_offered(self) -> None:
        """Swap in an offered model while nobody is mid-decision: no item is judged by two models."""
        if self._offered is None or (self.pipeline is not None and self.pipeline.decider.state is not State.IDLE):
            return
        with self._offer_lock:
            new, self._offered = self._offered, None
        old = self._model.part
        self._model.part = new
        if self.pipeline is not None:
            self.pipeline.classifier = new
        self._model_opened(new)
        if old is not None and old is not new:
            old.close()
        log.info("now sorting with %s", getattr(new, "path", "the new model"))

    def screen_drawn(self) -> None:
        """The main thread put a frame on the screen (called after every flip)."""
        self.screen_heartbeat = self.clock()

    def screen_frozen(self, now: float) -> bool:
        return self.screen_heartbeat is not None and now - self.screen_heartbeat > SCREEN_STALL_S

    def alive(self, now: float) -> bool:
        return not self.finished.is_set() and now - self.heartbeat < WORKER_STALL_S

    def post(self, command) -> None:
        self.commands.put(command)

    def view(self) -> View:
        with self._view_lock:
            return self._view

    @property
    def camera(self) -> Optional[FrameSource]:
        return self._camera.part

    @property
    def classifier(self) -> Optional[Classifier]:
        return self._model.part

    @property
    def counts_today(self) -> dict[str, int]:
        return self.tally.snapshot()

    def _run(self) -> None:
        try:
            while not self.stop:
                self.step()
        except BaseException as e:  # the main thread sees it and stops the process (systemd restarts it)
            self.error = e
            log.exception("worker crashed")
            self.stop.set("worker crashed")
        finally:
            self._shutdown()
            self.finished.set()

    # ---- one iteration ----------------------------------------------------------
    def step(self) -> None:
        now = self.clock()
        self.heartbeat = now
        self.hardware.poll(now)
        if self.faults.sync(DEVICE_KINDS, self.hardware.faults()):  # before commands: no touch opens past a fault
            self._close_all()
        for kinds, current in self._watched:  # the event log, fleet telemetry: warnings, the kiosk sorts on
            self.faults.sync(kinds, current())
        self._commands(now)
        self._take_offered()
        if not self._ensure_parts(now):
            self._publish(None, Presence(False))
            self.stop.wait(0.1)
            return
        try:
            frame = self.camera.read(timeout=2.0)
        except EndOfStream as e:
            log.info("%s", e)
            self.stop.set("end of replay")
            return
        except CameraError as e:
            self._camera.failed(self.clock(), e)
            self._publish(None, Presence(False))
            return
        self.faults.clear(PartKind.CAMERA.value)
        self.rate.update(frame.t)
        self.last_frame = frame
        pipe = self.pipeline
        if self.faults.out_of_service or self.service.active:
            # Out of service or a technician at work: keep learning the scene, decide nothing.
            self._publish(frame, pipe.gate.update(frame.image))
            return
        for bin_id, grams in self.hardware.drops():
            self._apply(pipe.decider.dropped(frame.t, bin_id, grams), frame)
        pipe.decider.set_full(self.hardware.refused_bins())
        presence, prediction, effects = pipe.step(frame)
        if prediction is not None:
            self._crop = presence.roi.crop(frame.image)  # what the record keeps, if images are on
        self._apply(effects, frame)
        self._publish(frame, presence)

    def _ensure_parts(self, now: float) -> bool:
        model, camera = self._model.ensure(now), self._camera.ensure(now)
        if camera is None or model is None:
            return False
        if self.pipeline is None:
            self.pipeline = Pipeline(self.cfg, self.classifier, tuple(self.cfg.camera.size))
        return True

    def _model_opened(self, classifier) -> None:
        self.faults.clear(PartKind.MODEL.value)
        check = getattr(classifier, "self_check", None)
        if check is not None and check.fallback:  # sorting goes on, correctly but slower: tell the technician
            self._fault(Fault(KERNEL_FALLBACK_CODE, PartKind.MODEL, check.detail, blocking=False))

    # ---- commands from the UI ------------------------------------------------------
    def _commands(self, now: float) -> None:
        if self.service.expired(now):
            self.eventlog.record_service("service_screen", "closed after idle timeout")
        while True:
            try:
                cmd = self.commands.get_nowait()
            except queue.Empty:
                return
            self._handlers[type(cmd)](cmd, now)

    def _choose(self, cmd: ChooseBin, now: float) -> None:
        if self.pipeline is not None and not self.faults.out_of_service and not self.service.active:
            t = self.last_frame.t if self.last_frame else now
            self._apply(self.pipeline.decider.choose(t, cmd.bin_id), self.last_frame)

    def _try_again(self, cmd: TryAgain, now: float) -> None:
        if self.pipeline is not None and not self.faults.out_of_service and not self.service.active:
            self.pipeline.decider.retry(self.last_frame.t if self.last_frame else now)

    def _set_language(self, cmd: SetLanguage, now: float) -> None:
        self.language = cmd.lang

    def _service_mode(self, cmd: ServiceMode, now: float) -> None:
        self.service.set(cmd.on, now)
        if cmd.on:
            self._close_all()
        self.eventlog.record_service("service_screen", "open" if cmd.on else "closed")

    def _pin_checked(self, cmd: PinChecked, now: float) -> None:
        self.eventlog.record_service("pin_right" if cmd.ok else "pin_wrong", cmd.detail)

    def _service_action(self, cmd: Service, now: float) -> None:
        if not self.service.active:
            log.warning("service command %s ignored: the service screen is not open", cmd.action.value)
            return
        self.service.touch(now)
        try:
            result = self.hardware.service(cmd.action, cmd.bin_id)
        except KioskError as e:
            result = f"failed: {e}"
        self.eventlog.record_service(cmd.action.value, f"{cmd.bin_id or ''} {result}".strip())

    # ---- effects -----------------------------------------------------------------------
    def _apply(self, effects: list[Effect], frame: Optional[Frame]) -> None:
        for e in effects:
            if e.kind == "open" and self.screen_frozen(self.clock()):
                # the UI hangs until the watchdog restarts us: nobody can see which bin opened
                log.error("screen not drawn for %.0f s: flap %s not opened", self.clock() - self.screen_heartbeat,
                          e.bin_id)
                self._close_all()
                return
            if e.kind == "open":
                try:
                    opened = self.hardware.open_flap(e.bin_id)
                except HardwareError as err:
                    opened = False
                    self._fault(Fault.from_error(err, PartKind.FLAP, e.bin_id))
                if not opened:
                    self._flap_refused(e.bin_id, frame)
            elif e.kind == "close":
                self.hardware.close_flap(e.bin_id)
            elif e.kind == "record" and e.decision is not None:
                self._record(e.decision)

    def _record(self, decision: Decision) -> None:
        crop = self._crop if self.cfg.storage.capture_images else None
        self.eventlog.record_decision(decision, crop)
        self._crop = None
        if decision.bin_id:
            self.tally.count(decision.bin_id)
        if self.on_decision:
            self.on_decision(decision)

    def _flap_refused(self, bin_id: str, frame: Optional[Frame]) -> None:
        """The hardware would not open the bin's flap (locked out, still closing).

        Never pretend: the refusal goes in the fault log, and the person is
        offered the other bins for this item (bin-full screen, that bin
        disabled) instead of being told to use a flap that stays shut.
        """
        log.warning("flap %s did not open", bin_id)
        f = Fault(FLAP_REFUSED_CODE, PartKind.FLAP, "flap refused to open; the person was offered the other bins", bin_id)
        self.eventlog.record_fault(f.code, f.part, f.message)
        effects = self.pipeline.decider.refuse(self.clock() if frame is None else frame.t, bin_id) if self.pipeline else []
        if effects:
            self._apply(effects, frame)
        else:
            self._close_all()

    # ---- faults ---------------------------------------------------------------------
    # Blocking faults (camera, model, scales) take the kiosk out of service and close
    # every flap; flap faults only lock out their bin (the hardware refuses it).
    def _fault(self, fault: Fault) -> None:
        if self.faults.report(fault):
            self._close_all()

    def _close_all(self) -> None:
        if self.pipeline is not None:
            for e in self.pipeline.decider.abort(self.clock()):
                if e.kind == "close":
                    self.hardware.close_flap(e.bin_id)
        self.hardware.close_all()

    # ---- view and shutdown -------------------------------------------------------------
    def _publish(self, frame: Optional[Frame], presence: Presence) -> None:
        view = compose_view(self._view, frame=frame, presence=presence,
                            decider=self.pipeline.decider if self.pipeline else None, faults=self.faults,
                            service_mode=self.service.active, language=self.language,
                            fill=self.hardware.fill_levels(), counts_today=self.tally.snapshot(), fps=self.rate.fps,
                            crop=self._crop)
        with self._view_lock:
            self._view = view

    def _shutdown(self) -> None:
        """Flaps first (they are the dangerous part), then the rest; never raise."""
        for step in (self.hardware.close_all, self._camera.close, self._model.close, self._drop_offered):
            try:
                step()
            except Exception:
                log.exception("during shutdown")
