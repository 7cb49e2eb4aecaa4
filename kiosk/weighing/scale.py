"""Weighing: a reader thread per load cell, and the bank of them the hardware front drives.

The pure parts (``WeightFilter``, ``DropDetector``, ``FillLevel``) live in
``kiosk.weighing.fill`` and take plain numbers, so they are tested with
scripted data. The ``Scale`` thread only moves raw codes from a backend (``hx711.HX711``,
``iio.IIOHX711`` or a simulation) into a ``WeightFilter`` and reports
``Reading(grams, stable, t, fault)``; it never blocks the UI.

Why medians: HX711 boards glitch now and then (a shifted bit is a spike of
kilograms). A median of five throws away up to two such codes without
smoothing a real step away, and stability is judged on the medians so a
single spike does not make a settled bin look unsettled.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from kiosk.weighing.calibration import BinCalibration, Calibration, CalibrationError
from kiosk.config import BinConfig
from kiosk.datatypes import Reading
from kiosk.faults import Fault, PartKind
from kiosk.weighing.fill import MEDIAN_WINDOW, STABLE_G, STABLE_S, DropDetector, FillLevel, FillState, WeightFilter
from kiosk.weighing.hx711 import Saturated, ScaleError

log = logging.getLogger(__name__)

FAULT_AFTER = 2  # consecutive failed reads before the reading carries a fault
STALE_S = 3.0  # no good reading for this long is a fault
STABLE_WAIT_S = 10.0  # tare/calibrate wait this long for stable readings
UNCALIBRATED_STABLE_COUNTS = 300.0  # stability tolerance in raw counts before counts-per-gram is known (tare)

# Fault codes beyond the driver's own (hx711.ScaleError and subclasses, E420-E424)
NOT_CALIBRATED_CODE = "E425"
STALE_CODE = "E426"
CLOSED_CODE = "E427"


# --------------------------------------------------------------------------
# Pure logic
# --------------------------------------------------------------------------
# --------------------------------------------------------------------------
# The reader thread
# --------------------------------------------------------------------------
class Scale:
    """Reads one backend on its own thread; ``reading`` is the latest Reading.

    ``grams`` is NaN (and ``fault`` says why) while the bin has no usable
    calibration, so a missing calibration can never pass for a weight.
    """

    def __init__(self, bin_id: str, backend, calibration: Optional[BinCalibration] = None, *,
                 not_calibrated: Optional[str] = None, median_window: int = MEDIAN_WINDOW,
                 stable_s: float = STABLE_S, stable_g: float = STABLE_G, fault_after: int = FAULT_AFTER,
                 stale_s: float = STALE_S, clock: Callable[[], float] = time.monotonic, start: bool = True):
        self.bin_id = bin_id
        self.backend = backend
        self.stable_g = stable_g
        self.fault_after = fault_after
        self.stale_s = stale_s
        self.clock = clock
        self._filter = WeightFilter(median_window, stable_s)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._cal = calibration
        self._not_calibrated = None if calibration else (not_calibrated or f"bin {bin_id}: scale not calibrated")
        self._fault: Optional[str] = None
        self._fault_code: Optional[str] = None
        self._errors = 0
        self._last_error: Optional[str] = None
        self._last_good_t: Optional[float] = None
        self._started_t = clock()
        self.samples = 0  # good raw codes read
        self.closed = False
        if start:
            self.start()

    # ---- lifecycle --------------------------------------------------------
    def start(self) -> None:
        if self._thread is None and not self.closed:
            self._thread = threading.Thread(target=self._run, name=f"scale-{self.bin_id}", daemon=True)
            self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Stop the thread and release the backend. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5.0)
            if t.is_alive():
                log.error("scale %s: reader thread did not stop within 5 s", self.bin_id)
        try:
            self.backend.close()
        except Exception:
            log.exception("scale %s: closing the backend failed", self.bin_id)

    # ---- calibration ------------------------------------------------------
    @property
    def calibration(self) -> Optional[BinCalibration]:
        return self._cal

    def set_calibration(self, cal: Optional[BinCalibration], why_not: Optional[str] = None) -> None:
        with self._lock:
            self._cal = cal if (cal is not None and cal.complete) else None
            self._not_calibrated = None if self._cal else (why_not or f"bin {self.bin_id}: scale not calibrated")

    def _tolerance(self) -> float:
        """Stability tolerance in raw counts."""
        cal = self._cal
        if cal is not None and cal.scale:
            return self.stable_g * abs(cal.scale)
        return UNCALIBRATED_STABLE_COUNTS

    # ---- the thread ---------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                raw = self.backend.read_raw()
            except Saturated as e:
                self._bad(e.code, str(e), backoff=0.0)  # an impact can saturate for a moment: keep reading
            except ScaleError as e:
                self._bad(e.code, str(e), backoff=0.2)
            except Exception as e:  # a bug or an OS error: a fault on the screen, not a dead thread
                if self._stop.is_set():
                    break
                log.exception("scale %s: unexpected error", self.bin_id)
                self._bad(ScaleError.code, f"bin {self.bin_id}: scale reader error: {type(e).__name__}: {e}", backoff=0.5)
            else:
                self._good(raw)

    def _good(self, raw: int) -> None:
        with self._lock:
            now = self.clock()
            self._filter.add(raw, now)
            self.samples += 1
            self._errors = 0
            self._last_good_t = now
            if self._fault is not None and self._filter.median is not None:
                log.info("scale %s: readings are back (%s)", self.bin_id, self._fault)
                self._fault = self._fault_code = None

    def _bad(self, code: str, message: str, backoff: float) -> None:
        with self._lock:
            self._errors += 1
            self._last_error = message
            if self._errors >= self.fault_after and self._fault != message:
                if self._fault is None:
                    log.error("scale %s: %s [%s]", self.bin_id, message, code)
                self._fault, self._fault_code = message, code
                self._filter.reset()  # old medians say nothing about what comes after a fault
        if backoff:
            self._stop.wait(backoff)

    # ---- what the rest of the kiosk sees ----------------------------------
    @property
    def reading(self) -> Reading:
        return self.status()[0]

    def status(self) -> tuple[Reading, Optional[str]]:
        """The latest Reading and the code of its fault (None when fine)."""
        now = self.clock()
        with self._lock:
            fault, code = self._fault, self._fault_code
            if self.closed:
                fault, code = f"bin {self.bin_id}: scale closed", CLOSED_CODE
            last = self._last_good_t
            since = now - (last if last is not None else self._started_t)
            if fault is None and since > self.stale_s:
                code = STALE_CODE
                fault = f"bin {self.bin_id}: no reading from the scale for {since:.1f} s" + (
                    f" (last error: {self._last_error})" if self._last_error else "")
            median = self._filter.median
            t = last if last is not None else now
            if median is None:
                return Reading(grams=math.nan, stable=False, t=t, fault=fault), code
            cal = self._cal
            if fault is None and cal is None:
                fault, code = self._not_calibrated, NOT_CALIBRATED_CODE
            grams = cal.grams(median) if cal is not None else math.nan
            stable = fault is None and self._filter.stable(self._tolerance())
            return Reading(grams=grams, stable=stable, t=t, fault=fault), code

    def raw_status(self) -> tuple[Optional[float], Optional[float], Optional[str]]:
        """(median raw code, spread of medians in counts, fault) for tare and the service screen."""
        with self._lock:
            return self._filter.median, self._filter.spread, self._fault

    def wait_stable(self, timeout_s: float = STABLE_WAIT_S, poll_s: float = 0.05) -> float:
        """The settled raw median; refuses (ScaleError) on a fault or if it will not settle."""
        deadline = time.monotonic() + timeout_s
        # the whole stable window must be read after this call began: a mass put on just
        # before must not be judged by medians from before it was there
        t_start = self.clock()
        while True:
            with self._lock:
                fault = self._fault
                median, spread, since = self._filter.median, self._filter.spread, self._filter.window_start
                ok = (fault is None and self._filter.stable(self._tolerance())
                      and since is not None and since >= t_start)
            if ok:
                return median
            if time.monotonic() >= deadline:
                break
            if self._stop.wait(poll_s):
                raise ScaleError(f"bin {self.bin_id}: scale closed while waiting for stable readings")
        if fault:
            raise ScaleError(f"bin {self.bin_id}: scale fault, cannot weigh: {fault}")
        if spread is None:
            raise ScaleError(f"bin {self.bin_id}: not enough readings within {timeout_s:g} s (got {self.samples}): "
                             f"is the scale connected? last error: {self._last_error}")
        cal = self._cal
        if cal is not None and cal.scale:
            what = f"{spread / abs(cal.scale):.1f} g (limit {self.stable_g:g} g)"
        else:
            what = f"{spread:.0f} counts (limit {self._tolerance():.0f})"
        raise ScaleError(f"bin {self.bin_id}: readings not stable within {timeout_s:g} s (they moved {what}): "
                         "keep the bin still with nothing touching it, and try again")


@dataclass(frozen=True)
class Drop:
    """A confirmed drop: ``grams`` landed in ``bin_id`` (reading time ``t``)."""

    bin_id: str
    grams: float
    t: float


class ScaleBank:
    """Every bin's scale, its fill level, and drop confirmation for the open flap.

    Main-loop use, once per frame::

        drops = scales.update(now)           # feeds fill levels + drop detector
        for d in drops: effects += decider.dropped(now, d.bin_id, d.grams)
        decider.set_full(scales.full_bins())

    and ``arm_drop(bin, now)`` when a flap opens, ``disarm_drop()`` when it closes.
    """

    def __init__(self, scales: dict[str, Scale], bins: Iterable[BinConfig], *, calibration: Optional[Calibration] = None,
                 clock: Callable[[], float] = time.monotonic, on_event: Optional[Callable[[str, str, str], None]] = None,
                 owned: Iterable = ()):
        self.scales = dict(scales)
        self._owned = list(owned)  # e.g. simulated chips: closed after the scales
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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Stop every reader. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for s in self.scales.values():
            s.close()
        for o in self._owned:
            o.close()

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


__all__ = ["WeightFilter", "DropDetector", "FillState", "FillLevel", "Scale", "Drop", "ScaleBank"]
