"""The worker thread: capture, gate, classify, decide and act on the newest frame; publish a View.

It runs ``kiosk.pipeline.Pipeline`` on each frame, applies the engine's
effects to the hardware and the event log, keeps its parts alive
(``kiosk.supervision``) and the current faults, and publishes a frozen
``View`` for the UI thread. Commands (``kiosk.commands``) arrive on a queue.
Faults never end it: a missing part takes the kiosk out of service until it
is back.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from typing import Callable, Optional

from kiosk.camera import EndOfStream, FrameSource
from kiosk.classifier import Classifier
from kiosk.commands import ChooseBin, Service, ServiceAction, ServiceMode, SetLanguage
from kiosk.config import KioskConfig
from kiosk.datatypes import Decision, Frame, Presence, Roi
from kiosk.decision import Decider, Effect, State
from kiosk.errors import CameraError, HardwareError, KioskError, ModelError
from kiosk.model.sessions import KERNEL_FALLBACK_CODE
from kiosk.appliance.lifecycle import StopFlag
from kiosk.pipeline import Pipeline
from kiosk.supervision import Backoff, Supervised
from kiosk.faults import Fault, PartKind
from kiosk.view import View

log = logging.getLogger(__name__)

FLAP_REFUSED_CODE = "E411"  # the hardware would not open a flap: the person was offered the other bins
WORKER_STALL_S = 10.0  # a worker silent this long is hung: stop feeding the watchdog
WORKER_HUNG_S = 60.0  # silent this long (longer than any service action): exit, systemd restarts
SERVICE_IDLE_S = 300.0  # the service screen closes itself when left open and untouched


def _to_screen(roi, frame: Optional[Frame]):
    """The gate's ROI is in analysis pixels; the screen may show the bigger preview."""
    if roi is None or frame is None or frame.preview is None:
        return roi
    sy = frame.preview.shape[0] / frame.image.shape[0]
    sx = frame.preview.shape[1] / frame.image.shape[1]
    return Roi(int(roi.x * sx), int(roi.y * sy), int(roi.w * sx), int(roi.h * sy))


class NullHardware:
    """No flaps, no scales: a kiosk that only advises."""

    def open_flap(self, bin_id: str) -> bool:
        return True

    def close_flap(self, bin_id: str) -> None:
        pass

    def close_all(self) -> None:
        pass

    def poll(self, now: float) -> None:
        pass

    def drops(self) -> list[tuple[str, float]]:
        return []

    def fill_levels(self) -> dict[str, float]:
        return {}

    def refused_bins(self) -> set[str]:
        return set()

    def faults(self) -> list[Fault]:
        return []

    def service(self, action: ServiceAction, bin_id: Optional[str]) -> str:
        return f"{action.value}: no hardware"

    def close(self) -> None:
        pass


class NullEventLog:
    def record_decision(self, decision: Decision, image=None) -> None:
        pass

    def record_fault(self, code: str, part: str, message: str) -> None:
        pass

    def record_service(self, action: str, detail: str) -> None:
        pass

    def counts_today(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass


class Worker:
    """Capture, gate, classify, decide and act on one thread; publish a View."""

    def __init__(self, cfg: KioskConfig, open_camera: Callable[[], FrameSource],
                 load_classifier: Callable[[], Classifier], hardware=None, eventlog=None,
                 stop: Optional[StopFlag] = None, clock: Callable[[], float] = time.monotonic,
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
            on_failed=lambda e: self._error(PartKind.CAMERA, e))
        self._model: Supervised[Classifier] = Supervised(
            load_classifier, ModelError, Backoff(2.0, 60.0),
            on_failed=lambda e: self._error(PartKind.MODEL, e), on_opened=self._model_opened)
        self.pipeline: Optional[Pipeline] = None
        self.faults: dict[str, Fault] = {}  # out of service while any is set
        self.warnings: dict[str, Fault] = {}  # shown to technicians, kiosk keeps working
        self.service_mode = False
        self._service_touched = 0.0
        self._crop = None
        self._day = time.strftime("%Y-%m-%d")
        self.counts_today: dict[str, int] = dict(self.eventlog.counts_today())
        self.commands: queue.SimpleQueue = queue.SimpleQueue()
        self.heartbeat = clock()
        self.language = cfg.ui.default_language
        self._view = View(language=self.language)
        self._view_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self.finished = threading.Event()
        self.error: Optional[BaseException] = None
        for f in startup_faults:  # parts that failed before the loop began: shown, never retried silently
            (self.faults if f.blocking else self.warnings)[f.part] = f
        self.last_frame: Optional[Frame] = None
        self.fps = 0.0

    # ---- thread plumbing ------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kiosk-worker", daemon=True)
        self._thread.start()

    def join(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self, now: float) -> bool:
        return not self.finished.is_set() and now - self.heartbeat < WORKER_STALL_S

    def post(self, command) -> None:
        self.commands.put(command)

    def view(self) -> View:
        with self._view_lock:
            return self._view

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
        self._sync_hardware_faults()  # before commands: a touch never opens a flap past a new fault
        self._commands(now)
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
        self._clear("camera")
        self._frame_rate(frame)
        self.last_frame = frame
        pipe = self.pipeline
        if self.faults or self.service_mode:
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

    @property
    def camera(self) -> Optional[FrameSource]:
        return self._camera.part

    @property
    def classifier(self) -> Optional[Classifier]:
        return self._model.part

    def _model_opened(self, classifier) -> None:
        self._clear("model")
        check = getattr(classifier, "self_check", None)
        if check is not None and check.fallback:  # sorting goes on, correctly but slower: tell the technician
            self._fault(Fault(KERNEL_FALLBACK_CODE, PartKind.MODEL, check.detail, blocking=False))

    def _ensure_parts(self, now: float) -> bool:
        model, camera = self._model.ensure(now), self._camera.ensure(now)
        if camera is None or model is None:
            return False
        if self.pipeline is None:
            self.pipeline = Pipeline(self.cfg, self.classifier, tuple(self.cfg.camera.size))
        return True

    def _commands(self, now: float) -> None:
        if self.service_mode and now - self._service_touched > SERVICE_IDLE_S:
            self.service_mode = False
            self.eventlog.record_service("service_screen", "closed after idle timeout")
        while True:
            try:
                cmd = self.commands.get_nowait()
            except queue.Empty:
                return
            if isinstance(cmd, ChooseBin):
                if self.pipeline is not None and not self.faults and not self.service_mode:
                    t = self.last_frame.t if self.last_frame else now
                    self._apply(self.pipeline.decider.choose(t, cmd.bin_id), self.last_frame)
            elif isinstance(cmd, SetLanguage):
                self.language = cmd.lang
            elif isinstance(cmd, ServiceMode):
                self.service_mode = cmd.on
                self._service_touched = now
                if cmd.on and self.pipeline is not None:
                    self._close_all()
                self.eventlog.record_service("service_screen", "open" if cmd.on else "closed")
            elif isinstance(cmd, Service):
                if not self.service_mode:
                    log.warning("service command %s ignored: the service screen is not open", cmd.action.value)
                    continue
                self._service_touched = now
                try:
                    result = self.hardware.service(cmd.action, cmd.bin_id)
                except KioskError as e:
                    result = f"failed: {e}"
                self.eventlog.record_service(cmd.action.value, f"{cmd.bin_id or ''} {result}".strip())

    def _apply(self, effects: list[Effect], frame: Optional[Frame]) -> None:
        for e in effects:
            if e.kind == "open":
                try:
                    opened = self.hardware.open_flap(e.bin_id)
                except HardwareError as err:
                    opened = False
                    self._error(PartKind.FLAP, err, e.bin_id)
                if not opened:
                    self._flap_refused(e.bin_id, frame)
            elif e.kind == "close":
                self.hardware.close_flap(e.bin_id)
            elif e.kind == "record" and e.decision is not None:
                crop = self._crop if self.cfg.storage.capture_images else None
                self.eventlog.record_decision(e.decision, crop)
                self._crop = None
                today = time.strftime("%Y-%m-%d")
                if today != self._day:
                    self._day, self.counts_today = today, {}
                if e.decision.bin_id:
                    self.counts_today[e.decision.bin_id] = self.counts_today.get(e.decision.bin_id, 0) + 1
                if self.on_decision:
                    self.on_decision(e.decision)

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
    # Blocking faults (camera, model, scales) take the kiosk out of service; flap
    # faults only lock out their bin (the hardware refuses it), the rest works on.
    def _fault(self, fault: Fault) -> None:
        part = fault.part
        old = self.faults.get(part) or self.warnings.get(part)
        if old is None or old.code != fault.code:  # log a fault once, not every frame (messages may carry timings)
            log.error("fault %s %s: %s", fault.code, part, fault.message)
            self.eventlog.record_fault(fault.code, part, fault.message)
        if not fault.blocking:
            self.warnings[part] = fault
        else:
            self.faults[part] = fault
            self._close_all()

    def _error(self, kind: PartKind, err: KioskError, bin_id: Optional[str] = None) -> None:
        """A part's raised error as its fault (the error's own code)."""
        self._fault(Fault(getattr(err, "code", "E000"), kind, str(err), bin_id))

    def _close_all(self) -> None:
        if self.pipeline is not None:
            for e in self.pipeline.decider.abort(self.clock()):
                if e.kind == "close":
                    self.hardware.close_flap(e.bin_id)
        self.hardware.close_all()

    def _clear(self, part: str) -> None:
        if (self.faults.pop(part, None) or self.warnings.pop(part, None)) is not None:
            log.info("%s recovered", part)
            self.eventlog.record_fault("OK", part, "recovered")

    def _sync_hardware_faults(self) -> None:
        hw = {f.part: f for f in self.hardware.faults()}
        known = list(self.faults.values()) + list(self.warnings.values())
        for f in known:
            if f.kind in (PartKind.SCALE, PartKind.FLAP) and f.part not in hw:
                self._clear(f.part)
        for f in hw.values():
            self._fault(f)

    def _frame_rate(self, frame: Frame) -> None:
        if self.last_frame is not None and frame.t > self.last_frame.t:
            inst = 1.0 / (frame.t - self.last_frame.t)
            self.fps = inst if self.fps == 0 else 0.9 * self.fps + 0.1 * inst

    # ---- view ---------------------------------------------------------------------
    def _publish(self, frame: Optional[Frame], presence: Presence) -> None:
        d = self.pipeline.decider if self.pipeline else None
        if self.service_mode:  # reachable while out of service: that is when a technician needs it
            screen = "service"
        elif self.faults or d is None:
            screen = "out_of_service"
        else:
            screen = d.state.value
        prev = self._view
        view = View(
            screen=screen,
            language=self.language,
            frame=frame.screen if frame is not None else prev.frame,
            frame_seq=frame.seq if frame is not None else prev.frame_seq,
            roi=_to_screen(presence.roi, frame),
            progress=d.progress if d else 0.0,
            decision=d.decision if d else None,
            suggested_bin=d.suggested if d else None,
            full_bin=self._full_bin(d),
            fill=self.hardware.fill_levels(),
            refused=frozenset(d.blocked) if d else frozenset(),
            out_of_order=frozenset(f.bin_id for f in self.warnings.values() if f.kind is PartKind.FLAP)
            | (frozenset(d.refused_now) if d else frozenset()),
            faults=tuple(self.faults.values()) + tuple(self.warnings.values()),
            counts_today=dict(self.counts_today),
            fps=self.fps,
        )
        with self._view_lock:
            self._view = view

    def _full_bin(self, d: Optional[Decider]) -> Optional[str]:
        return d.full_bin if d is not None and d.state is State.BIN_FULL else None

    def _shutdown(self) -> None:
        """Flaps first (they are the dangerous part), then the rest; never raise."""
        for step in (self.hardware.close_all, self._camera.close, self._model.close):
            try:
                step()
            except Exception:
                log.exception("during shutdown")
