"""Flap lockouts kept on the data partition: a jammed bin stays locked out across a restart.

A jam locks its bin out until a technician has looked (``FlapBank``); a
restart alone (a power cut, the watchdog) must not quietly put a jammed
flap back in service. The file lists the locked-out bins and why. The
kiosk writes it when the set changes and re-reads it when someone else
changed it, which is how ``kiosk flaps reset BIN`` clears a lockout on a
running kiosk without touching its pins. Written atomically; a file that
cannot be read is reported and treated as empty (the start-up switch check
still catches a flap that is open).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Optional

from kiosk.weighing.calibration import atomic_write_text

log = logging.getLogger(__name__)

FILE_NAME = "flap-lockouts.json"
SIMULATED_FILE_NAME = "flap-lockouts-simulated.json"


def lockouts_path(data_dir: Path, simulated: bool = False) -> Path:
    return Path(data_dir).expanduser() / (SIMULATED_FILE_NAME if simulated else FILE_NAME)


class LockoutStore:
    """``{bin id: reason}`` in a JSON file; ``changed()`` says whether another process wrote it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._seen: Optional[float] = None  # mtime of the file as we last read or wrote it

    def load(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
            self._seen = self._mtime()
        except FileNotFoundError:
            self._seen = None
            return {}
        except OSError as e:
            log.error("flap lockouts: cannot read %s (%s): starting with none", self.path, e)
            return {}
        try:
            data = json.loads(text)
            return {str(b): str(why) for b, why in dict(data.get("locked_out", {})).items()}
        except (ValueError, TypeError, AttributeError) as e:
            log.error("flap lockouts: %s is not a lockout file (%s): starting with none", self.path, e)
            return {}

    def save(self, locked: dict[str, str]) -> None:
        owner = _owner(self.path) or _owner(self.path.parent)
        atomic_write_text(self.path, json.dumps({"locked_out": dict(sorted(locked.items()))}, indent=2) + "\n")
        if owner and os.geteuid() == 0 and owner != _owner(self.path):
            os.chown(self.path, *owner)  # `sudo kiosk flaps reset` must leave a file the kiosk user can rewrite
        self._seen = self._mtime()

    def changed(self) -> bool:
        """True when the file differs from what this process last read or wrote."""
        return self._mtime() != self._seen

    def _mtime(self) -> Optional[int]:
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return None


def _owner(path: Path) -> Optional[tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_uid, st.st_gid
