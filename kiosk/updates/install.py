"""One update, start to end: fetch (TUF), stage, canary, switch. Any refusal leaves the running model as it was.

Why the canary runs before the switch: a power cut while it runs must leave
the old model live. The running kiosk checks again after the switch
(``kiosk.updates.watcher``): it loads the new model, plays the canary, and
rolls back by itself if either fails.
"""

from __future__ import annotations

import logging
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from kiosk.errors import ModelError, UpdateError
from kiosk.updates.canary import run_canary
from kiosk.updates.client import fetch
from kiosk.updates.store import ModelStore

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    installed: bool
    message: str
    version: Optional[int] = None


def update(store: ModelStore, source: str, trusted_root: Path, load: Callable[[Path], object]) -> Outcome:
    """Install the repository's current model if it is newer, verified and passes its canary.

    ``load``: path -> classifier, the way the kiosk loads its model (threads, CLAHE).
    Raises ``UpdateError`` (E701-E705) when refused; the active model is untouched then.
    """
    with store.locked(), _incoming_dropped(store):
        manifest, files = fetch(store, source, trusted_root)
        active = store.installed("active")
        if active is not None and manifest.version == active.manifest.version:
            return Outcome(False, f"up to date: {active.manifest.label} is active", manifest.version)
        if active is not None and manifest.version < active.manifest.version:
            raise UpdateError(f"update refused: {manifest.label} is older than the active "
                              f"{active.manifest.label} (a rollback is done with `kiosk model rollback`)",
                              code="E701")
        if manifest.folder in store.rejected():
            raise UpdateError(f"{manifest.label} was refused here before ({store.rejected()[manifest.folder]}); "
                              f"publish a new version", code="E702")
        inst = store.stage(manifest, files)
        store.clear_incoming()

        def refuse(reason: str) -> UpdateError:
            store.reject(manifest, reason)
            shutil.rmtree(inst.folder, ignore_errors=True)
            return UpdateError(f"{manifest.label} not installed: {reason}; the running model is unchanged",
                               code="E702")

        try:
            new = load(inst.model_path)
        except ModelError as e:
            raise refuse(f"it does not load: [{e.code}] {e}") from None
        try:
            try:
                old = load(store.model_path())
            except ModelError as e:  # nothing to compare the speed with; the new one may still replace it
                log.warning("the running model does not load here (%s): no speed comparison", e)
                old = None
            try:
                result = run_canary(new, inst.canary_photos(), old)
            finally:
                if old is not None:
                    old.close()
        finally:
            new.close()
        if not result.ok:
            raise refuse(f"canary {result.summary()}")
        store.activate(inst)
        store.prune()
        return Outcome(True, f"{manifest.label} is active (canary {result.summary()}); the running kiosk "
                             f"switches to it between two items", manifest.version)


@contextmanager
def _incoming_dropped(store: ModelStore):
    """Whatever happens, no download is left in ``incoming``: a refused or failed one (a full disk) must
    not keep the data partition full, since the event log and calibration live there too."""
    try:
        yield
    finally:
        shutil.rmtree(store.incoming, ignore_errors=True)


__all__ = ["update", "Outcome"]
