"""Per-bin scale calibration (tare offset and counts per gram), kept apart
from the hand-edited config in ``<data_dir>/calibration.json``.

Why a separate file: tare and calibration are measured by the kiosk, not
typed by a person, and change every time a technician re-zeroes a bin. It is
written atomically (temp file, fsync, rename, fsync of the folder) so a
power cut mid-write leaves either the old or the new file, never half of
one; a scale that silently lost its calibration would weigh nonsense.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from kiosk.errors import KioskError, excerpt
from kiosk.files import atomic_write_text, read_json

FILE_NAME = "calibration.json"
SIMULATED_FILE_NAME = "calibration-simulated.json"  # --simulate never touches the real one
VERSION = 1


class CalibrationError(KioskError):
    """The calibration file is unreadable, or a calibration step was refused."""

    code = "E430"


@dataclass(frozen=True)
class BinCalibration:
    """``grams = (raw - offset) / scale``; ``scale`` is None until calibrated with a known mass.

    ``gain`` and ``source`` (hx711 / iio) are recorded because counts per
    gram at gain 128 are wrong at gain 64 or through another ADC path.
    """

    offset: float
    scale: Optional[float] = None
    gain: int = 128
    source: str = "hx711"
    tared_at: str = ""
    calibrated_at: str = ""

    @property
    def complete(self) -> bool:
        return self.scale is not None

    def grams(self, raw: float) -> float:
        if self.scale is None:
            return math.nan
        return (raw - self.offset) / self.scale

    def matches(self, gain: int, source: str) -> bool:
        return self.gain == gain and self.source == source


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _finite(x, what: str, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise CalibrationError(f"{where}: {what} must be a finite number, got {excerpt(x)}")
    return float(x)


def _parse_bin(bin_id: str, d, where: str) -> BinCalibration:
    w = f"{where}: bins.{excerpt(bin_id)[1:-1]}"
    if not isinstance(d, dict):
        raise CalibrationError(f"{w}: expected an object, got {type(d).__name__}")
    unknown = set(d) - {"offset", "scale", "gain", "source", "tared_at", "calibrated_at"}
    if unknown:
        raise CalibrationError(f"{w}: unknown keys {excerpt(sorted(unknown))}")
    if "offset" not in d:
        raise CalibrationError(f"{w}: offset is missing")
    offset = _finite(d["offset"], "offset", w)
    scale = d.get("scale")
    if scale is not None:
        scale = _finite(scale, "scale", w)
        if abs(scale) < 1e-6:
            raise CalibrationError(f"{w}: scale {scale} is zero (counts per gram): calibrate again")
    gain = d.get("gain", 128)
    if gain not in (128, 64, 32):
        raise CalibrationError(f"{w}: gain must be 128, 64 or 32, got {excerpt(gain)}")
    source = d.get("source", "hx711")
    if source not in ("hx711", "iio"):
        raise CalibrationError(f"{w}: source must be hx711 or iio, got {excerpt(source)}")
    return BinCalibration(offset=offset, scale=scale, gain=gain, source=source,
                          tared_at=str(d.get("tared_at", "")), calibrated_at=str(d.get("calibrated_at", "")))



class Calibration:
    """All bins' calibrations, loaded from and saved to one JSON file."""

    def __init__(self, path: Path, bins: Optional[dict[str, BinCalibration]] = None):
        self.path = Path(path)
        self.bins: dict[str, BinCalibration] = dict(bins or {})
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> "Calibration":
        """Read the file; a missing file is an empty calibration, a broken one an error."""
        path = Path(path)
        if not path.exists():
            return cls(path)
        where = str(path)
        hint = "fix it, or delete it and tare/calibrate every bin again"
        try:
            data = read_json(path)
        except OSError as e:
            raise CalibrationError(f"{where}: cannot read calibration file: {e}") from None
        except ValueError as e:
            raise CalibrationError(f"{where}: {e}: {hint}") from None
        if not isinstance(data, dict) or not isinstance(data.get("bins"), dict):
            raise CalibrationError(f"{where}: expected {{\"version\": {VERSION}, \"bins\": {{...}}}}: {hint}")
        if data.get("version") != VERSION:
            raise CalibrationError(f"{where}: unknown calibration file version {excerpt(data.get('version'))} (expected {VERSION})")
        return cls(path, {b: _parse_bin(b, d, where) for b, d in data["bins"].items()})

    def save(self) -> None:
        with self._lock:
            doc = {"version": VERSION, "bins": {b: asdict(c) for b, c in sorted(self.bins.items())}}
            atomic_write_text(self.path, json.dumps(doc, indent=2) + "\n")

    def get(self, bin_id: str) -> Optional[BinCalibration]:
        return self.bins.get(bin_id)

    def for_scale(self, bin_id: str, gain: int, source: str) -> tuple[Optional[BinCalibration], Optional[str]]:
        """The calibration usable with this gain/source, or None and why not."""
        c = self.bins.get(bin_id)
        if c is None:
            return None, f"bin {bin_id}: scale not calibrated: run `kiosk scale tare {bin_id}` then `kiosk scale calibrate {bin_id} --known-mass GRAMS`"
        if not c.matches(gain, source):
            return None, (f"bin {bin_id}: calibration was made with {c.source} gain {c.gain}, the config now says "
                          f"{source} gain {gain}: tare and calibrate again")
        if not c.complete:
            return None, f"bin {bin_id}: scale tared but not calibrated: run `kiosk scale calibrate {bin_id} --known-mass GRAMS`"
        return c, None

    # ---- the two technician steps (pure: the caller measured ``raw``) --------
    def set_tare(self, bin_id: str, raw: float, gain: int, source: str) -> BinCalibration:
        """Empty bin reads ``raw``: that is zero. Keeps counts per gram if gain/source match."""
        old = self.bins.get(bin_id)
        keep = old is not None and old.matches(gain, source)
        c = BinCalibration(offset=float(raw), scale=old.scale if keep else None, gain=gain, source=source,
                           tared_at=_now(), calibrated_at=old.calibrated_at if keep else "")
        self.bins[bin_id] = c
        return c

    def set_known_mass(self, bin_id: str, raw: float, known_g: float, min_counts: float = 100.0) -> BinCalibration:
        """With ``known_g`` on the tared bin the reading is ``raw``: counts per gram from that."""
        if not (math.isfinite(known_g) and known_g > 0):
            raise CalibrationError(f"bin {bin_id}: the known mass must be a positive number of grams, got {known_g}")
        old = self.bins.get(bin_id)
        if old is None:
            raise CalibrationError(f"bin {bin_id}: tare it first (empty bin): `kiosk scale tare {bin_id}`")
        delta = raw - old.offset
        if abs(delta) < min_counts:
            raise CalibrationError(
                f"bin {bin_id}: {known_g:g} g moved the reading by only {delta:.0f} counts (need at least {min_counts:.0f}): "
                "is the mass on the bin, and is the load cell wired?"
            )
        c = replace(old, scale=delta / known_g, calibrated_at=_now())
        self.bins[bin_id] = c
        return c


def calibration_path(data_dir: Path, simulate: bool = False) -> Path:
    return Path(data_dir) / (SIMULATED_FILE_NAME if simulate else FILE_NAME)


__all__ = ["CalibrationError", "BinCalibration", "Calibration", "atomic_write_text", "calibration_path",
           "FILE_NAME", "SIMULATED_FILE_NAME"]
