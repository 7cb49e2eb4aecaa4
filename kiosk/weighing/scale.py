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
from typing import Callable, Optional

from kiosk.closing import Closable
from kiosk.weighing.calibration import BinCalibration
from kiosk.datatypes import Reading
from kiosk.weighing.fill import MEDIAN_WINDOW, STABLE_G, STABLE_S, WeightFilter
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
# The reader thread
# --------------------------------------------------------------------------
class Scale(Closable):
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

    def _close(self) -> None:
        """Stop the thread and release the backend."""
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
            if fault is not None or time.monotonic() >= deadline:
                break  # a scale in fault will not settle by waiting: say so now, under its own code
            if self._stop.wait(poll_s):
                raise ScaleError(f"bin {self.bin_id}: scale closed while waiting for stable readings")
        if fault:
            raise ScaleError(f"bin {self.bin_id}: scale fault, cannot weigh: {fault}", code=self._fault_code)
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


__all__ = ["Scale", "FAULT_AFTER", "STALE_S", "STABLE_WAIT_S"]
