"""Every bin's scale together: readings, confirmed drops, fill levels, full bins, tare and calibration.

``ScaleBank`` is what the hardware front (``kiosk.devices.hardware``) and the
technician commands drive; each ``kiosk.weighing.scale.Scale`` reads one load
cell on its own thread, and the pure logic of ``kiosk.weighing.fill`` decides
drops and fill.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from kiosk.closing import Closable
from kiosk.config import BinConfig
from kiosk.datatypes import Reading
from kiosk.faults import Fault, PartKind
from kiosk.weighing.calibration import BinCalibration, Calibration, CalibrationError
from kiosk.weighing.fill import DropDetector, FillLevel, FillState
from kiosk.weighing.hx711 import ScaleError
from kiosk.weighing.scale import STABLE_WAIT_S, Scale

log = logging.getLogger(__name__)


# What a bin's scale reports about the bin itself (its faults are Faults): logged, listed by ``kiosk stats``.
FILL_EVENTS = ("near_full", "full", "emptied", "full_reset")


@dataclass(frozen=True)
class Drop:
    """A confirmed drop: ``grams`` landed in ``bin_id`` (reading time ``t``)."""

    bin_id: str
    grams: float
    t: float


class ScaleBank(Closable):
    """Every bin's scale, its fill level, and drop confirmation for the open flap.

    Main-loop use, once per frame::

        drops = scales.update(now)           # feeds fill levels + drop detector
        for d in drops: effects += decider.dropped(now, d.bin_id, d.grams)
        decider.set_full(scales.full_bins())

    and ``arm_drop(bin, now)`` when a flap opens, ``disarm_drop()`` when it closes.
    """

    def __init__(self, scales: dict[str, Scale], bins: Iterable[BinConfig], *, calibration: Optional[Calibration] = None,
                 clock: Callable[[], float] = time.monotonic, on_event: Optional[Callable[[str, str, str], None]] = None):
        self.scales = dict(scales)
        self.calibration = calibration
        self.clock = clock
        self.on_event = on_event
        self._cfg = {b.id: b for b in bins}
        unknown = set(self.scales) - set(self._cfg)
        if unknown:
            raise ValueError(f"scales for unknown bins: {sorted(unknown)}")
        self.fills = {b: FillLevel(self._cfg[b].capacity_kg * 1000.0, self._cfg[b].near_full) for b in self.scales}
        self.detectors = {b: DropDetector(self._cfg[b].scale.drop_min_g) for b in self.scales}
        self._last_t: dict[str, float] = {}
        self._faults: dict[str, Optional[str]] = {b: None for b in self.scales}
        self._lock = threading.Lock()
        self.closed = False

    def _close(self) -> None:
        """Stop every reader."""
        for s in self.scales.values():
            s.close()

    @property
    def bins(self) -> frozenset[str]:
        """Bins that have a scale (the decision engine's ``scaled_bins``)."""
        return frozenset(self.scales)

    def reading(self, bin_id: str) -> Optional[Reading]:
        s = self.scales.get(bin_id)
        return s.reading if s else None

    def readings(self) -> dict[str, Reading]:
        return {b: s.reading for b, s in self.scales.items()}

    # ---- drop confirmation ------------------------------------------------
    def arm_drop(self, bin_id: str, now: Optional[float] = None) -> bool:
        """The flap of ``bin_id`` just opened: watch for the drop. False if it cannot be weighed."""
        with self._lock:
            for d in self.detectors.values():
                d.disarm()
            s = self.scales.get(bin_id)
            if s is None:
                return False
            r = s.reading
            ok = self.detectors[bin_id].arm(self.clock() if now is None else now, r)
            if not ok:
                log.warning("bin %s: cannot confirm the drop: %s", bin_id, r.fault or "no reading yet")
            return ok

    def disarm_drop(self, bin_id: Optional[str] = None) -> None:
        with self._lock:
            for b, d in self.detectors.items():
                if bin_id is None or b == bin_id:
                    d.disarm()

    def update(self, now: Optional[float] = None) -> list[Drop]:
        """Feed each new reading to the fill levels and the drop detector; confirmed drops."""
        drops = []
        with self._lock:
            for b, s in self.scales.items():
                r = s.reading
                self._note_fault(b, r.fault)
                if self._last_t.get(b) == r.t:
                    continue
                self._last_t[b] = r.t
                before = self.fills[b].state
                after = self.fills[b].update(r)
                self._note_fill(b, before, after)
                grams = self.detectors[b].update(r)
                if grams is not None:
                    drops.append(Drop(b, grams, r.t))
                    log.info("bin %s: drop confirmed, %.0f g", b, grams)
        return drops

    def _emit(self, kind: str, bin_id: str, message: str) -> None:
        if self.on_event:
            try:
                self.on_event(kind, bin_id, message)
            except Exception:
                log.exception("on_event handler failed")

    def _note_fault(self, b: str, fault: Optional[str]) -> None:
        if fault != self._faults.get(b):
            self._faults[b] = fault
            if fault:
                self._emit("scale_fault", b, fault)
            else:
                self._emit("scale_ok", b, f"bin {b}: scale readings are back")

    def _note_fill(self, b: str, before: FillState, after: FillState) -> None:
        if after.full and not before.full:
            log.warning("bin %s: full (%.1f kg)", b, after.grams / 1000)
            self._emit("full", b, f"bin {b} is full ({after.grams / 1000:.1f} kg)")
        elif before.full and not after.full:
            log.info("bin %s: emptied", b)
            self._emit("emptied", b, f"bin {b} was emptied")
        elif after.near_full and not before.near_full:
            log.warning("bin %s: nearly full (%.0f%%)", b, after.fraction * 100)
            self._emit("near_full", b, f"bin {b} is nearly full ({after.fraction:.0%})")

    # ---- fill levels --------------------------------------------------------
    def fill(self, bin_id: str) -> Optional[FillState]:
        f = self.fills.get(bin_id)
        return f.state if f else None

    def fill_levels(self) -> dict[str, FillState]:
        return {b: f.state for b, f in self.fills.items()}

    def full_bins(self) -> set[str]:
        return {b for b, f in self.fills.items() if f.state.full}

    def near_full_bins(self) -> set[str]:
        return {b for b, f in self.fills.items() if f.state.near_full}

    def hold_full(self, bin_id: str) -> None:
        """The bin was full when the kiosk stopped: full again now (``FillLevel.hold_full``)."""
        with self._lock:
            self.fills[bin_id].hold_full()

    def reset_full(self, bin_id: str) -> FillState:
        """Technician override: the bin is not full."""
        with self._lock:
            before = self.fills[bin_id].state
            after = self.fills[bin_id].reset()
            if before.full:
                log.warning("bin %s: full flag reset by a technician", bin_id)
                self._emit("full_reset", bin_id, f"bin {bin_id}: full flag reset by a technician")
            return after

    def faults(self) -> list[Fault]:
        """A fault for each bin whose scale has one, by bin id."""
        out = []
        for b, s in sorted(self.scales.items()):
            r, code = s.status()
            if r.fault:
                out.append(Fault(code or ScaleError.code, PartKind.SCALE, r.fault, b))
        return out

    # ---- technician procedures (CLI and service screen) ----------------------
    def _source(self, bin_id: str) -> tuple[int, str]:
        sc = self._cfg[bin_id].scale
        return sc.gain, sc.type

    def _need(self, bin_id: str) -> Scale:
        if bin_id not in self._cfg:
            raise CalibrationError(f"unknown bin '{bin_id}' (bins are {', '.join(self._cfg)})")
        s = self.scales.get(bin_id)
        if s is None:
            raise CalibrationError(f"bin {bin_id} has no scale (scale.type is none)")
        if self.calibration is None:
            raise CalibrationError("no calibration file attached to the scales")
        return s

    def tare(self, bin_id: str, timeout_s: float = STABLE_WAIT_S) -> BinCalibration:
        """Zero an empty bin. Refuses while readings are unstable or faulty; saves the file."""
        s = self._need(bin_id)
        raw = s.wait_stable(timeout_s)
        gain, source = self._source(bin_id)
        cal = self.calibration.set_tare(bin_id, raw, gain, source)
        self.calibration.save()
        s.set_calibration(*self.calibration.for_scale(bin_id, gain, source))
        log.info("bin %s: tared at raw %.0f", bin_id, raw)
        return cal

    def calibrate(self, bin_id: str, known_g: float, timeout_s: float = STABLE_WAIT_S) -> BinCalibration:
        """With ``known_g`` grams on the tared bin: counts per gram. Refuses while unstable; saves."""
        s = self._need(bin_id)
        gain, source = self._source(bin_id)
        old = self.calibration.get(bin_id)
        if old is None or not old.matches(gain, source):
            raise CalibrationError(f"bin {bin_id}: tare it first, with the bin empty: `kiosk scale tare {bin_id}`")
        raw = s.wait_stable(timeout_s)
        cal = self.calibration.set_known_mass(bin_id, raw, known_g)
        if cal.scale < 0:
            log.warning("bin %s: the reading falls under load (load-cell wires swapped?); calibration allows for it", bin_id)
        self.calibration.save()
        s.set_calibration(cal)
        self.fills[bin_id] = FillLevel(self._cfg[bin_id].capacity_kg * 1000.0, self._cfg[bin_id].near_full)
        log.info("bin %s: calibrated, %.2f counts per gram", bin_id, cal.scale)
        return cal


__all__ = ["Drop", "ScaleBank"]
