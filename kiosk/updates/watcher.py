"""The running kiosk follows the ``active`` link: a new model is loaded beside the old one, checked, handed over.

Why a thread of its own: loading and warming a model takes a second or two
on a Pi; the worker keeps sorting with the old model meanwhile and swaps
between two items (``Worker.offer_classifier``), so no decision waits on it.
A model that does not load or fails its canary here is rolled back at once
(``previous``, else the factory model) and stays named on the service screen
as an E702 warning until a good model is switched in.

With ``updates.daily_check`` the same thread runs ``kiosk model update``'s
flow once a day at ``updates.check_hour``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path
from typing import Callable, Optional

from kiosk.closing import Closable
from kiosk.errors import ModelError, UpdateError
from kiosk.faults import Fault, PartKind
from kiosk.updates.canary import run_canary
from kiosk.updates.store import ModelStore

log = logging.getLogger(__name__)

POLL_S = 5.0


class ModelWatcher(Closable):
    """Watches ``store``'s active link; ``offer(classifier)`` hands a checked model to the worker."""

    def __init__(self, store: ModelStore, load: Callable[[Path], object], offer: Callable[[object], None], *,
                 poll_s: float = POLL_S, daily: Optional[Callable[[], None]] = None, check_hour: int = 3,
                 now: Callable[[], dt.datetime] = dt.datetime.now):
        self.store, self.load, self.offer = store, load, offer
        self.poll_s = poll_s
        self.daily, self.check_hour, self.now = daily, check_hour, now
        self._seen = store.active_link()
        self._running = self._seen  # the link whose model the worker was given (it loads the same at start)
        self._fault: Optional[Fault] = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._checked_on: Optional[dt.date] = None
        self.switched = 0
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
        self._thread.start()

    def faults(self) -> list[Fault]:
        with self._lock:
            return [self._fault] if self._fault else []

    def _set_fault(self, fault: Optional[Fault]) -> None:
        with self._lock:
            self._fault = fault

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except Exception:  # never the end of the watcher: logged, tried again next poll
                log.exception("model watcher")

    def poll(self) -> None:
        """One look (the thread calls it; tests call it directly)."""
        if self.daily is not None:
            now = self.now()
            if now.hour == self.check_hour and self._checked_on != now.date():
                self._checked_on = now.date()
                try:
                    self.daily()
                    self._set_fault(None)
                except UpdateError as e:
                    log.error("daily model check: [%s] %s", e.code, e)
                    self._set_fault(Fault(e.code, PartKind.UPDATE, str(e)))
        link = self.store.active_link()
        if link != self._seen:
            self._seen = link  # handled once, whatever happens: a model that fails is not reloaded every 5 s
            try:
                self._switch(link)
            except Exception as e:  # a switch that breaks is a warning that says so, never a silent stale link
                log.exception("model switch failed")
                self._set_fault(Fault("E702", PartKind.UPDATE, f"switching to the new model failed "
                                                              f"({type(e).__name__}: {e}); the kiosk keeps its model"))

    def _switch(self, link: Optional[str]) -> None:
        path = self.store.model_path()
        active = self.store.installed("active")
        label = active.manifest.label if active else "the factory model"
        try:
            clf = self.load(path)
        except ModelError as e:
            self._roll_back(f"{label} does not load on this kiosk: [{e.code}] {e}", link)
            return
        handed = False
        try:
            if active is not None:
                result = run_canary(clf, active.canary_photos(), rounds=1)
                if not result.ok:
                    self._roll_back(f"{label} failed its canary on this kiosk: {result.reason}", link)
                    return
            self.offer(clf)
            handed = True
        finally:
            if not handed:
                clf.close()
        self._running = self._seen
        self.switched += 1
        self._set_fault(None)
        log.info("model %s loaded and checked: the kiosk switches to it after the current item", label)

    def rolled_back(self, reason: str) -> None:
        """The worker rolled back at start (``open_running``): say so on the service screen too."""
        self._seen = self._running = self.store.active_link()
        back = self.store.installed("active")
        self._set_fault(Fault("E702", PartKind.UPDATE, f"{reason}; rolled back to "
                                                      f"{back.manifest.label if back else 'the factory model'}"))

    def _roll_back(self, reason: str, link: Optional[str]) -> None:
        with self.store.locked():  # only if it is still the one found bad (a technician may have moved on)
            back = self.store.rollback(reason, expected=link)
        self._seen = self.store.active_link()
        self._set_fault(Fault("E702", PartKind.UPDATE, f"{reason}; rolled back to "
                                                      f"{back.manifest.label if back else 'the factory model'}"))
        log.error("model update rolled back: %s", reason)
        if self._seen == self._running:  # the worker never left it: nothing to hand over
            return
        try:
            self.offer(self.load(self.store.model_path()))
            self._running = self._seen
        except ModelError as e:
            log.error("the rolled-back model does not load either: %s", e)

    def _close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10.0)


__all__ = ["ModelWatcher", "POLL_S"]
