"""The kiosk's main loop: the main thread's App, and how the kiosk is started.

pygame owns the main thread and draws at the display rate; the worker
(``kiosk.worker``) does capture -> presence gate -> classifier -> decision
engine -> flaps and event log on its own thread, always on the newest frame.
The UI never waits on the model: it draws the latest published ``View``.

Faults do not end the process. A camera that disappears, a model that is
refused or a scale that stops answering puts the kiosk *out of service*:
flaps are closed, the screen shows a code, the part is retried with backoff
and the systemd watchdog keeps being fed, as long as the loops themselves
are alive. The watchdog is fed from the main thread only while the worker
has checked in recently, so a hung worker gets the process restarted.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Optional

from kiosk.appliance.lifecycle import StopFlag
from kiosk.config import KioskConfig
from kiosk.errors import KioskError
from kiosk.faults import Fault, PartKind
from kiosk.worker import WORKER_HUNG_S, Worker

log = logging.getLogger(__name__)

class App:
    """Main thread: events -> worker commands, latest View -> screen, watchdog."""

    def __init__(self, cfg: KioskConfig, worker: Worker, ui=None, notifier=None, max_frames: Optional[int] = None,
                 cues=None):
        self.cfg = cfg
        self.worker = worker
        self.ui = ui
        self.cues = cues  # kiosk.screens.sound.SoundCues: a tone when the screen changes
        self.notifier = notifier
        self.max_frames = max_frames
        self.stop = worker.stop

    def run(self, surface=None) -> int:
        import pygame

        clock = pygame.time.Clock()
        self.worker.start()
        ready = hung = False
        frames = 0
        try:
            while not self.stop:
                view = self.worker.view()
                for event in pygame.event.get():
                    if event.type == pygame.QUIT:
                        self.stop.set("window closed")
                    elif self.ui is not None:
                        for action in self._handle(event, view):
                            self.worker.post(action)
                if self.ui is not None and surface is not None:
                    self.ui.draw(surface, view)
                    pygame.display.flip()
                    self.worker.screen_drawn()  # no flap opens behind a screen that stopped drawing
                    if self.cues is not None:
                        self.cues.on_screen(view.screen)
                now = time.monotonic()
                if self.notifier is not None:
                    if not ready:
                        self.notifier.ready()
                        ready = True
                    if self.worker.alive(now):
                        self.notifier.alive(view)
                if not self.worker.alive(now) and not self.worker.finished.is_set():
                    if now - self.worker.heartbeat > WORKER_HUNG_S:
                        log.error("worker silent for %.0f s: stopping so the service restarts", now - self.worker.heartbeat)
                        self.stop.set("worker hung")
                        hung = True
                frames += 1
                if self.max_frames is not None and frames >= self.max_frames:
                    self.stop.set("frame limit")
                clock.tick(self.cfg.ui.fps)
        finally:
            self.stop.set("main loop ended")
            if self.notifier is not None:
                self.notifier.stopping()
            self.worker.join(timeout=5.0)
        if self.worker.error is not None or hung:
            return 1
        return 0

    def _handle(self, event, view) -> list:
        """A touch's actions. A bug behind one button must not take the kiosk down on every tap: logged, ignored."""
        try:
            return self.ui.handle(event, view)
        except Exception:
            log.exception("touch ignored: handling it failed (screen %s)", getattr(view, "screen", "?"))
            return []


def build_worker(cfg: KioskConfig, *, demo: bool = False, stop: Optional[StopFlag] = None,
                 hardware=None, eventlog=None, realtime: bool = True, startup_faults=(),
                 on_model_rollback=lambda reason: None) -> Worker:
    """The worker with the configured camera, model, hardware and event log."""
    from kiosk.camera import open_camera
    from kiosk.updates.store import ModelStore, open_running

    store = ModelStore.for_config(cfg)
    load = model_loader(cfg)

    def load_classifier():  # the active update, rolled back by itself if it does not load; else the factory model
        return open_running(store, load, on_rollback=on_model_rollback)

    return Worker(cfg, lambda: open_camera(cfg.camera, realtime=realtime, allow_synthetic=demo), load_classifier,
                  hardware=hardware, eventlog=eventlog, stop=stop, startup_faults=startup_faults)


def model_loader(cfg: KioskConfig):
    """path -> classifier, as the kiosk loads its model (threads, CLAHE): the kiosk, an update's canary."""
    from kiosk.classifier import OnnxClassifier

    return lambda path: OnnxClassifier(path, threads=cfg.model.threads, clahe=cfg.enhance.clahe)


def open_model_watcher(cfg: KioskConfig, worker: Worker, fleet=None):
    """The thread that follows ``kiosk model update``/``rollback`` (and runs the daily check when set)."""
    from kiosk.updates.store import ModelStore, model_label
    from kiosk.updates.watcher import ModelWatcher

    store = ModelStore.for_config(cfg)
    load = model_loader(cfg)

    def offer(classifier) -> None:
        worker.offer_classifier(classifier)
        if fleet is not None:  # the status topic names the model the kiosk runs
            fleet.model = model_label(classifier.path)

    def daily_check() -> None:
        from kiosk.updates.install import update

        outcome = update(store, cfg.updates.source, cfg.resolve(cfg.updates.trusted_root), load)
        log.info("daily model check: %s", outcome.message)

    watcher = ModelWatcher(store, load, offer, daily=daily_check if cfg.updates.daily_check else None,
                           check_hour=cfg.updates.check_hour)
    worker.watch(frozenset({PartKind.UPDATE}), watcher.faults)
    return watcher


def run(cfg: KioskConfig, *, demo: bool = False, max_frames: Optional[int] = None) -> int:
    """Run the kiosk until SIGTERM/SIGINT or the window closes. Devices are always closed."""
    from kiosk.appliance.lifecycle import graceful_signals

    stop = StopFlag()
    hardware = eventlog = fleet = watcher = cues = None
    surface = None
    with graceful_signals(stop):
        try:
            faults = []
            try:  # a part that cannot start is an out-of-service screen, not a crash loop
                eventlog = open_eventlog(cfg)
            except KioskError as e:
                from kiosk.appliance.eventlog import NullEventLog

                log.error("event log did not open (decisions will not be recorded): %s", e)
                eventlog = NullEventLog(failed=Fault(e.code, PartKind.EVENTLOG, str(e)))  # shown while it runs
            if not demo:  # before any pin is driven: after a crash, close-all drives these
                from kiosk.devices.pinmap import save_last_good

                save_last_good(cfg)
            try:
                hardware = open_hardware(cfg, demo, on_event=bin_event_recorder(eventlog))
            except KioskError as e:
                log.error("flaps/scales did not start: %s", e)
                faults.append(Fault(e.code, PartKind.HARDWARE, str(e)))
            worker = build_worker(cfg, demo=demo, stop=stop, hardware=hardware, eventlog=eventlog,
                                  startup_faults=faults,  # the watcher exists by the time the worker loads
                                  on_model_rollback=lambda why: watcher.rolled_back(why) if watcher else None)
            fleet = open_fleet(cfg, eventlog, worker) if cfg.fleet.enabled and not demo else None
            watcher = open_model_watcher(cfg, worker, fleet) if not demo else None
            from kiosk.ui import KioskUI, open_display

            surface = open_display(cfg.ui)
            ui = KioskUI(cfg, surface.get_size())
            from kiosk.screens.sound import SoundCues

            cues = SoundCues(cfg.ui.sound.enabled, cfg.ui.sound.volume)
            code = App(cfg, worker, ui=ui, notifier=open_notifier(), max_frames=max_frames, cues=cues).run(surface)
            log.info("stopped: %s", stop.signal_name)
            return code
        finally:
            # the cues first: the mixer is given back before pygame.quit() takes SDL down under it;
            # the publisher before the log it reads
            for closer in (cues, watcher, fleet, hardware, eventlog):
                if closer is not None:
                    try:
                        closer.close()
                    except Exception:
                        log.exception("closing %s", type(closer).__name__)
            if surface is not None:
                import pygame

                pygame.quit()


def open_hardware(cfg: KioskConfig, demo: bool, on_event=None):
    """Flaps and scales from config; the demo simulates them on gpiozero's mock pins."""
    from kiosk.devices.hardware import open_hardware as _open

    return _open(cfg, simulate=demo, on_event=on_event)


def bin_event_recorder(eventlog):
    """``ScaleBank.on_event`` -> the event log's bin_events (``kiosk stats`` lists them); None without a log."""
    from kiosk.weighing.bank import FILL_EVENTS  # a scale's faults reach the log through the worker's FaultBook

    if eventlog is None:
        return None

    def record(kind: str, bin_id: str, message: str) -> None:
        if kind in FILL_EVENTS:
            eventlog.record_bin_event(bin_id, kind, message)

    return record


def open_eventlog(cfg: KioskConfig):
    from kiosk.appliance.eventdb import eventlog_path
    from kiosk.appliance.eventlog import EventLog

    return EventLog(eventlog_path(cfg.data_dir), capture_images=cfg.storage.capture_images,
                    retention_days=cfg.storage.retention_days)


def open_fleet(cfg: KioskConfig, eventlog, worker):
    """The MQTT publisher (fleet.enabled): its faults are the worker's warnings, its outbox the event log."""
    from kiosk import __version__
    from kiosk.faults import NEXT_STEPS
    from kiosk.fleet.publisher import FleetPublisher
    from kiosk.updates.store import model_label, running_model

    model = model_label(running_model(cfg))
    fleet = FleetPublisher(cfg.fleet, eventlog, worker.view, software=__version__, model=model, resolve=cfg.resolve,
                           next_steps=NEXT_STEPS, capacity_kg={b.id: b.capacity_kg for b in cfg.bins})
    worker.watch(frozenset({PartKind.FLEET}), fleet.faults)
    eventlog.on_decision.append(fleet.nudge)  # each item goes out as soon as it is recorded
    return fleet


def open_notifier():
    from kiosk.appliance.sdnotify import LoopNotifier

    return LoopNotifier()


CONFIG_RECHECK_S = 5.0


def run_from_path(path: str, max_frames: Optional[int] = None) -> int:
    """``kiosk run``: a bad config file is an out-of-service screen, never a boot loop.

    The file is re-read every few seconds; once it is valid the kiosk starts.
    """
    from kiosk.config import load_config
    from kiosk.errors import ConfigError
    from kiosk.appliance.lifecycle import graceful_signals

    try:
        cfg = load_config(path)
    except ConfigError as e:
        stop = StopFlag()
        with graceful_signals(stop):
            cfg = config_error_screen(path, e, stop, max_frames=max_frames)
        if cfg is None:
            return 1 if max_frames else 0
    return run(cfg, max_frames=max_frames)


def config_error_screen(path: str, error, stop: StopFlag, max_frames: Optional[int] = None):
    """Say what is wrong (code E100, the key and the file) until the file loads (returns it) or we are stopped.

    The same out-of-service design as every fault, in every language it can
    show (one after the other), drawn with a config that does load: the
    factory one, else built-in defaults. One display for the whole wait, the
    watchdog fed all along.
    """
    import pygame

    from kiosk.config import UiConfig, load_config
    from kiosk.errors import ConfigError
    from kiosk.ui import KioskUI, open_display
    from kiosk.view import View

    log.error("config %s is invalid: %s", path, "; ".join(error.problems))
    headless = os.environ.get("DISPLAY") is None and os.environ.get("WAYLAND_DISPLAY") is None
    base = with_own_site(fallback_config(path), path)
    surface = open_display(UiConfig(fullscreen=headless, size=base.ui.size))
    ui = KioskUI(base, surface.get_size())
    langs = ui.languages or [base.ui.default_language]
    notifier = open_notifier()
    notifier.ready("out of service: config")
    frames, next_check = 0, time.monotonic() + CONFIG_RECHECK_S
    try:
        while not stop:
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + CONFIG_RECHECK_S
                try:
                    return load_config(path)
                except ConfigError as e:
                    if e.problems != error.problems:
                        log.error("config %s is still invalid: %s", path, "; ".join(e.problems))
                    error = e
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    stop.set("window closed")
            lang = langs[int(time.monotonic() // LANGUAGE_EVERY_S) % len(langs)]
            ui.draw(surface, View(screen="out_of_service", language=lang, faults=config_faults(path, error)))
            pygame.display.flip()
            notifier.alive(None)
            frames += 1
            if max_frames is not None and frames >= max_frames:
                stop.set("frame limit")
            time.sleep(0.2)
        return None
    finally:
        pygame.quit()


LANGUAGE_EVERY_S = 6.0  # the config-error screen shows each language in turn


def config_faults(path: str, error) -> tuple:
    """The config's problems as the screen's faults: each names the key, the first the file too."""
    problems = error.problems or ["the file cannot be read"]
    return tuple(Fault(error.code, PartKind.CONFIG, f"{p} ({path})" if i == 0 else p)
                 for i, p in enumerate(problems[:6]))


def with_own_site(base, broken: str):
    """``base`` with the broken file's own ``site`` (contact, QR code, name) when that section is valid.

    The factory config knows no city's phone number: without this, the one screen that most needs
    a passer-by to report it would show none. Anything unreadable keeps ``base``'s.
    """
    from pydantic import ValidationError

    from kiosk.config import SiteConfig
    from kiosk.configfile import read_yaml
    from kiosk.errors import ConfigError

    try:
        data = read_yaml(Path(broken))
    except ConfigError:
        return base
    site = data.get("site") if isinstance(data, dict) else None
    fleet = data.get("fleet") if isinstance(data, dict) else None
    if not isinstance(site, dict):
        return base
    if site.get("id") is None and isinstance(fleet, dict) and fleet.get("site_id"):  # named for the fleet only
        site = {**site, "id": fleet["site_id"]}
    try:
        own = SiteConfig.model_validate(site)
    except ValidationError:  # the site section is itself what is wrong: the factory's then
        return base
    return base.model_copy(update={"site": own})


def fallback_config(broken: str):
    """A config to draw with while the technician's file is broken: the factory one, else built-in defaults."""
    from kiosk.appliance.configpath import DEFAULT_CANDIDATES
    from kiosk.config import load_config, parse_config
    from kiosk.errors import ConfigError
    from kiosk.screens.wording import LANG_DIR

    for candidate in DEFAULT_CANDIDATES:
        try:
            if candidate.is_file() and candidate.resolve() != Path(broken).resolve():
                return load_config(str(candidate), check_model=False)
        except (ConfigError, OSError):
            continue
    langs = sorted(p.stem for p in LANG_DIR.glob("*.yaml"))
    every = lambda text: {lang: text for lang in langs}  # noqa: E731
    return parse_config({
        "bins": [{"id": "residual", "name": every("-"), "colour": "#6B6B6B", "position": "centre"}],
        "rules": {"trash": {"bin": "residual", "guidance": every(["-"])}},
        "ui": {"languages": langs, "default_language": "en", "tips": every(["-"])},
    }, base_dir=Path("."), check_model=False)
