"""One fault record, from the device that detects it to the screen and the event log.

A fault names the kind of part (``camera``, ``scale``...) and, for the parts
each bin has, the bin: nothing parses ``"flap:glass"`` strings. ``part`` is
that spelling, kept for the event log and the journal, which people read.
Whether a fault takes the kiosk out of service is part of the record too:
a jammed flap only locks out its bin, a lost camera stops everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional


class PartKind(str, Enum):
    CONFIG = "config"
    CAMERA = "camera"
    MODEL = "model"
    SCALE = "scale"
    FLAP = "flap"
    HARDWARE = "hardware"
    EVENTLOG = "eventlog"
    FLEET = "fleet"
    UPDATE = "update"


# Kinds whose faults leave the kiosk sorting (the bin is refused, or only records suffer).
WARNING_KINDS = frozenset({PartKind.FLAP, PartKind.EVENTLOG, PartKind.FLEET, PartKind.UPDATE})


@dataclass(frozen=True)
class Fault:
    code: str  # short code a technician looks up in the README, e.g. "E200"
    kind: PartKind
    message: str
    bin_id: Optional[str] = None  # for the per-bin parts (scale, flap)
    blocking: Optional[bool] = field(default=None, compare=False)  # None: by kind (see WARNING_KINDS)

    def __post_init__(self):
        object.__setattr__(self, "kind", PartKind(self.kind))
        if self.blocking is None:
            object.__setattr__(self, "blocking", self.kind not in WARNING_KINDS)

    @property
    def part(self) -> str:
        """``camera``, ``scale:glass``: the key a part's fault is kept under, and how logs spell it."""
        return f"{self.kind.value}:{self.bin_id}" if self.bin_id else self.kind.value

    @classmethod
    def from_error(cls, err: BaseException, kind: PartKind, bin_id: Optional[str] = None) -> "Fault":
        """A part's raised error as its fault, under the error's own code (``KioskError.code``)."""
        return cls(getattr(err, "code", "E000"), kind, str(err), bin_id)


# What a technician does next, per code: the out-of-service screen shows it, the fleet's ``health``
# topic sends it, and the README's fault table has it as its last column (a test keeps them equal).
_SCALE_WIRING = "check the HX711 wiring of the bin named"
_SCALE_READER = "restart the kiosk; if it repeats, check the scale's wiring: `kiosk doctor`"
NEXT_STEPS = {
    "E000": "report it with the journal: journalctl -u kiosk",
    "E100": "fix the key the screen names in kiosk.yaml (kiosk check-config FILE)",
    "E110": "install the font the message names (fonts-noto-cjk for zh-CN), then restart",
    "E111": "install fonts-material-design-icons-iconfont, or fix the bin's icon name in kiosk.yaml",
    "E200": "check the camera cable and `kiosk doctor`; the kiosk retries by itself",
    "E300": "re-copy the model and its card (sha256 or card mismatch); `kiosk doctor`",
    "E301": "none needed (sorting on the reference path); report the CPU and onnxruntime version",
    "E302": "report the CPU and onnxruntime version; install a model that passes its self-check",
    "E310": "replace the image file the message names",
    "E400": "check the pin or device the message names; restart the kiosk",
    "E402": "no GPIO here: run on the kiosk, or add --simulate on a desktop",
    "E410": "clear the jam, then Reset the bin (service screen or `sudo kiosk flaps reset BIN`)",
    "E411": "none needed if it passes; if it repeats, `sudo kiosk flaps test BIN`",
    **{f"E42{i}": _SCALE_WIRING for i in range(5)},
    "E425": "`kiosk scale tare BIN`, then `kiosk scale calibrate BIN --known-mass GRAMS`",
    "E426": _SCALE_READER,
    "E427": _SCALE_READER,
    "E430": "tare and calibrate again (or fix calibration.json)",
    "E500": "check /var/lib/kiosk (mounted, writable): `kiosk doctor`",
    "E501": "free space on /var/lib/kiosk or replace the SD card: `kiosk doctor`",
    "E502": "copy events.db.damaged-* off the kiosk, then delete it",
    "E510": "run it with sudo, or check /var/lib/kiosk/events.db: `kiosk doctor`",
    "E601": "check fleet.username and fleet.password_file (or the client certificate)",
    "E602": "check the network and fleet.host/port; a certificate error: check fleet.tls.ca_file",
    "E603": "make the file the message names readable by the kiosk, or put the right PEM file there (an unencrypted key)",
    "E604": "give each kiosk its own site.id in kiosk.yaml; if it is unique, the broker's log says why it closes the connection",
    "E700": "read the message; `kiosk model status` shows the model that runs",
    "E701": "none on the kiosk: the update was refused as unsigned, tampered, older or expired; tell the publisher",
    "E702": "none on the kiosk (it kept or went back to the previous model); send `kiosk model status` to the publisher",
    "E703": "check the network or the USB stick given to --from (updates.source)",
    "E704": "free space on /var/lib/kiosk: `kiosk doctor`",
    "E705": "set updates.trusted_root to the image's root.json (made by `kiosk model keys`)",
}
