"""A simulated HX711 and load cell: the test and demo backend of ``kiosk.weighing.hx711``.

``SimulatedHX711`` hangs off gpiozero MockFactory pins and answers the real
driver's clock bit for bit, so the driver is tested as it runs on a Pi;
``SimulatedADC`` stands in for the IIO backend; ``LoadCellModel`` is the
analog side both convert (weights, drift, injected faults).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Optional

from kiosk.weighing.hx711 import (BITS, CHIP_POWER_DOWN_S, CODE_MAX, CODE_MIN, GAIN_FOR_PULSES,
                                  ScaleError, check_code, encode, extra_pulses)

class LoadCellModel:
    """The analog side of a bin's load cell: what the ADC would convert at time t.

    Defaults: a 20 kg, 1 mV/V cell at 5 V excitation (0.25 uV per gram, about
    107 counts per gram at gain 128) with the empty bin giving 0.25 mV.
    ``add_load`` schedules an item landing, with a short impact overshoot.
    """

    def __init__(self, *, avdd_v: float = 5.0, offset_mv: float = 0.25, mv_per_g: float = 0.00025,
                 channel_b_mv: float = 0.0, noise_counts: float = 0.0, drift_mv_per_s: float = 0.0,
                 impact_s: float = 0.12, impact_factor: float = 2.5, seed: int = 0,
                 clock: Callable[[], float] = time.monotonic):
        import numpy as np

        self.avdd_v = avdd_v
        self.offset_mv = offset_mv
        self.mv_per_g = mv_per_g
        self.channel_b_mv = channel_b_mv
        self.noise_counts = noise_counts
        self._drift_rate = drift_mv_per_s
        self._drift_mv = 0.0  # drift accumulated up to _drift_t
        self._drift_t = clock()
        self.impact_s = impact_s
        self.impact_factor = impact_factor
        self.grams = 0.0  # load already resting on the cell
        self.clock = clock
        self._rng = np.random.default_rng(seed)
        self._landings: list[tuple[float, float]] = []
        self._inject: deque[int] = deque()
        self._lock = threading.Lock()

    # ---- scenario controls -------------------------------------------------
    @property
    def drift_mv_per_s(self) -> float:
        return self._drift_rate

    @drift_mv_per_s.setter
    def drift_mv_per_s(self, rate: float) -> None:
        """Creep of the zero (temperature, load-cell creep), from now on."""
        now = self.clock()
        with self._lock:
            self._drift_mv += self._drift_rate * (now - self._drift_t)
            self._drift_rate, self._drift_t = rate, now

    def add_load(self, grams: float, delay_s: float = 0.0) -> None:
        """An item of ``grams`` lands ``delay_s`` from now (negative grams: taken out)."""
        with self._lock:
            self._landings.append((self.clock() + delay_s, grams))

    def inject_codes(self, *codes: int) -> None:
        """The next conversions return exactly these codes (spikes, saturation)."""
        for c in codes:
            encode(c)  # range check
        with self._lock:
            self._inject.extend(codes)

    # ---- physics -------------------------------------------------------------
    def counts_per_gram(self, gain: int = 128) -> float:
        return self.mv_per_g * gain * (1 << BITS) / (self.avdd_v * 1000.0)

    def zero_code(self, gain: int = 128) -> float:
        return self.offset_mv * gain * (1 << BITS) / (self.avdd_v * 1000.0)

    def load_at(self, t: float) -> float:
        with self._lock:
            g = self.grams
            for t_land, grams in self._landings:
                if t >= t_land:
                    g += grams * (self.impact_factor if t - t_land < self.impact_s else 1.0)
            return g

    def code(self, gain: int, t: float, *, noise: bool = True, injected: bool = True) -> int:
        """The conversion result at time t for a gain (32 reads channel B)."""
        with self._lock:
            if injected and self._inject:
                return self._inject.popleft()
        if gain == 32:
            mv = self.channel_b_mv
        else:
            drift = self._drift_mv + self._drift_rate * (t - self._drift_t)
            mv = self.offset_mv + self.load_at(t) * self.mv_per_g + drift
        x = mv * gain * (1 << BITS) / (self.avdd_v * 1000.0)
        if noise and self.noise_counts:
            x += float(self._rng.normal(0.0, self.noise_counts))
        return int(min(CODE_MAX, max(CODE_MIN, round(x))))


class SimulatedADC:
    """A LoadCellModel read straight, with no pins: stands in for the IIO backend under ``--simulate``."""

    def __init__(self, model: LoadCellModel, gain: int = 128, *, period_s: float = 0.1, name: str = "simulated ADC"):
        extra_pulses(gain)
        self.model, self.gain, self.period_s, self.name = model, gain, period_s, name
        self._closed = False
        self._stop = threading.Event()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._stop.set()

    def read_raw(self) -> int:
        if self._closed:
            raise ScaleError(f"{self.name}: read after close")
        self._stop.wait(self.period_s)
        return check_code(self.model.code(self.gain, time.monotonic()), self.name)


def unsettled(code: int) -> int:
    """What the simulated chip reports for the first conversion after a reset or gain change."""
    return int(min(CODE_MAX - 1, max(CODE_MIN + 1, code // 2 + 1000)))


class SimulatedHX711:
    """An HX711 on MockFactory pins that answers the driver's clock bit for bit.

    Attach it *before* the driver opens the pins. Conversions complete every
    ``1/rate_hz`` s (evaluated lazily, whenever DOUT is read or the clock
    moves, so no thread is needed). Faults to inject: ``stuck = 'high'|'low'``,
    ``model.inject_codes(...)`` (spikes, saturation), ``model.drift_mv_per_s``,
    and ``stall_pulse(n, seconds)`` / ``slow_clock_s``, which hold the driver
    inside a rising clock edge as a pre-empted thread would be held.
    ``powerdown_s`` is the chip's 60 us; a simulation on a busy desktop uses
    a longer one, and the driver's ``max_pulse_s`` must then match it.
    """

    def __init__(self, data_pin: int, clock_pin: int, *, pin_factory, model: Optional[LoadCellModel] = None,
                 rate_hz: float = 10.0, powerdown_s: float = CHIP_POWER_DOWN_S):
        from kiosk.devices.simpins import driven_input, watched_output

        self.model = model or LoadCellModel()
        self.period = 1.0 / rate_hz
        self.powerdown_s = powerdown_s
        self._lock = threading.RLock()
        self._stuck: Optional[str] = None
        self._stalls: dict[int, float] = {}
        self.slow_clock_s = 0.0  # hold the driver this long inside *every* rising edge
        self.gain = 128
        self._pulses = 0
        self._shifting = False
        self._ready = False
        self._word = 0
        self._settling = True  # power-up counts as a reset
        self._clock_high_since: Optional[float] = None
        self._next_ready = time.monotonic() + self.period
        self.resets = 0
        self.reads = 0  # complete reads (>= 25 pulses)
        self.conversions: deque[tuple[int, int]] = deque(maxlen=256)  # (gain, code) latched
        self.data_pin = driven_input(pin_factory, data_pin, reader=self._poll)
        self.clock_pin = watched_output(pin_factory, clock_pin, self._on_clock)
        self.data_pin.drive(True)  # DOUT high: no conversion yet

    def close(self) -> None:
        """Detach from the pins (the line falls back to its pull)."""
        self.data_pin.reader = None
        self.clock_pin.listener = None
        self.data_pin.drive(None)

    # ---- fault injection -------------------------------------------------------
    @property
    def stuck(self) -> Optional[str]:
        return self._stuck

    @stuck.setter
    def stuck(self, level: Optional[str]) -> None:
        if level not in (None, "high", "low"):
            raise ValueError("stuck is None, 'high' or 'low'")
        with self._lock:
            self._stuck = level
            if level is None:
                self._power_cycle(time.monotonic())
            else:
                self.data_pin.drive(level == "high")

    def stall_pulse(self, n: int, seconds: float) -> None:
        """Hold the driver inside its n-th rising clock edge (1-based) of the next read."""
        with self._lock:
            self._stalls[n] = seconds

    def expected_code(self, gain: int = 128, t: Optional[float] = None) -> int:
        """The code a settled, noise-free conversion gives now (for tests)."""
        t = time.monotonic() if t is None else t
        return self.model.code(gain, t, noise=False, injected=False)

    # ---- chip behaviour ----------------------------------------------------------
    def _poll(self) -> None:
        with self._lock:
            self._advance(time.monotonic())

    def _advance(self, now: float) -> None:
        if self._stuck is not None:
            return
        if self._clock_high_since is not None:
            if now - self._clock_high_since > self.powerdown_s:
                self._ready = self._shifting = False
                self.data_pin.drive(True)  # powered down: DOUT high
            return
        if now < self._next_ready:
            return
        behind = int((now - self._next_ready) / self.period)
        if self._shifting and self._pulses < BITS:
            # a read is half done: the chip does not overwrite the output register
            self._next_ready += (behind + 1) * self.period
            return
        if self._shifting:
            self._finish_read()
        self._next_ready += (behind + 1) * self.period
        code = self.model.code(self.gain, now)
        if self._settling:
            code, self._settling = unsettled(code), False
        self.conversions.append((self.gain, code))
        self._word = encode(code)
        self._ready, self._pulses = True, 0
        self.data_pin.drive(False)  # data ready

    def _finish_read(self) -> None:
        n = self._pulses
        self._shifting, self._pulses = False, 0
        if n > BITS:
            self.reads += 1
            gain = GAIN_FOR_PULSES[min(n - BITS, 3)]
            if gain != self.gain:
                self.gain, self._settling = gain, True

    def _power_cycle(self, now: float) -> None:
        self.resets += 1
        self.gain = 128
        self._settling = True
        self._ready = self._shifting = False
        self._pulses = 0
        self._next_ready = now + self.period
        if self._stuck is None:
            self.data_pin.drive(True)

    def _on_clock(self, level) -> None:
        now = time.monotonic()
        stall = 0.0
        with self._lock:
            if level:
                self._advance(now)
                self._clock_high_since = now
                if self._stuck is not None or not (self._ready or self._shifting):
                    return  # pulses with no data pending do nothing
                self._ready, self._shifting = False, True
                self._pulses += 1
                n = self._pulses
                if n <= BITS:
                    self.data_pin.drive(bool((self._word >> (BITS - n)) & 1))
                elif n == BITS + 1:
                    self.data_pin.drive(True)  # high until the next conversion
                stall = self._stalls.pop(n, 0.0) or self.slow_clock_s
            else:
                since, self._clock_high_since = self._clock_high_since, None
                if since is not None and now - since > self.powerdown_s and self._stuck is None:
                    self._power_cycle(now)  # clock low again after a power-down: the chip resets
        if stall:
            time.sleep(stall)


__all__ = ["LoadCellModel", "SimulatedADC", "SimulatedHX711", "unsettled"]
