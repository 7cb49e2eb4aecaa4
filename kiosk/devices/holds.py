"""What keeps a bin refusing items across a restart: a flap lockout, a "full" flag.

A jam locks its bin out until a technician has looked (``FlapBank``), and a
full bin stays full until it is emptied or reset (``ScaleBank``). A restart
alone (a power cut, the watchdog) must put neither back in service, so both
are kept in one file on the data partition. The kiosk writes it when they
change and re-reads it when someone else changed it: that is how
``kiosk flaps reset BIN`` clears a bin on a running kiosk without touching
its pins. Written atomically; a file that cannot be read is logged and
treated as empty (the start-up switch check and the scales still catch a
flap that is open and a bin that is full).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from kiosk.errors import excerpt
from kiosk.files import atomic_write_text, read_json

log = logging.getLogger(__name__)

FILE_NAME = "bin-holds.json"
SIMULATED_FILE_NAME = "bin-holds-simulated.json"


def holds_path(data_dir: Path, simulated: bool = False) -> Path:
    return Path(data_dir).expanduser() / (SIMULATED_FILE_NAME if simulated else FILE_NAME)


@dataclass
class Holds:
    locked_out: dict[str, str] = field(default_factory=dict)  # bin id -> why (the jam's message)
    full: dict[str, str] = field(default_factory=dict)  # bin id -> why

    def bins(self) -> set[str]:
        return set(self.locked_out) | set(self.full)

    def same_bins(self, other: "Holds") -> bool:
        return set(self.locked_out) == set(other.locked_out) and set(self.full) == set(other.full)


class HoldStore:
    """``Holds`` in a JSON file; ``changed()`` says whether another process wrote it since."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._seen: Optional[int] = None  # mtime of the file as this process last read or wrote it

    def load(self) -> Holds:
        try:
            self._seen = self._mtime()
            data = read_json(self.path)
        except FileNotFoundError:
            self._seen = None
            return Holds()
        except (OSError, ValueError) as e:
            log.error("bin holds: cannot read %s (%s): starting with none", self.path, e)
            return Holds()
        try:
            return Holds({str(b): str(w) for b, w in dict(data.get("locked_out", {})).items()},
                         {str(b): str(w) for b, w in dict(data.get("full", {})).items()})
        except (ValueError, TypeError, AttributeError) as e:
            log.error("bin holds: %s is not a bin-holds file (%s): starting with none", self.path, excerpt(str(e)))
            return Holds()

    def save(self, holds: Holds) -> None:
        text = json.dumps({"locked_out": dict(sorted(holds.locked_out.items())),
                           "full": dict(sorted(holds.full.items()))}, indent=2) + "\n"
        atomic_write_text(self.path, text)  # keeps the kiosk user's owner and mode under `sudo kiosk flaps reset`
        self._seen = self._mtime()

    def changed(self) -> bool:
        return self._mtime() != self._seen

    def _mtime(self) -> Optional[int]:
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return None
