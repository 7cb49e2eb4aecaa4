"""HX711 load-cell ADC: pure decoding, a bit-banged driver on gpiozero pins,
the kernel IIO backend, and a simulated chip that speaks the protocol on
gpiozero's MockFactory pins bit for bit.

Protocol (HX711 datasheet): DOUT goes low when a conversion is ready. Each
rising edge of PD_SCK shifts out one bit, MSB first, 24 bits of two's
complement. 1, 2 or 3 further pulses choose channel A gain 128, channel B
gain 32, or channel A gain 64 for the *next* conversion; DOUT then stays high
until that conversion is ready. PD_SCK held high for more than 60 us powers
the chip down; taking it low again resets it to channel A, gain 128. The
first conversion after a reset or a gain change has not settled.

Why so defensive: a Python bit-banger can be pre-empted with the clock high,
the chip then resets mid-read and the bits that follow are garbage that
*looks* like a weight. Every read is timed and thrown away if any pulse ran
long; a stuck data line is a fault within a timeout, never a hang.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Optional

from kiosk.errors import HardwareError

log = logging.getLogger(__name__)

BITS = 24
CODE_MAX = 0x7FFFFF  # positive saturation: input above full scale
CODE_MIN = -0x800000  # negative saturation: input below -full scale
EXTRA_PULSES = {128: 1, 32: 2, 64: 3}  # gain -> pulses after the 24 data bits
GAIN_FOR_PULSES = {v: k for k, v in EXTRA_PULSES.items()}
CHIP_POWER_DOWN_S = 60e-6  # datasheet: PD_SCK high longer than this powers down


# --------------------------------------------------------------------------
# Errors (codes for the out-of-service screen and the README)
# --------------------------------------------------------------------------
class ScaleError(HardwareError):
    """A load cell or its ADC gave no usable reading."""

    code = "E420"


class DataReadyTimeout(ScaleError):
    """DOUT never went low: chip unpowered, unwired, or the data line stuck high."""

    code = "E421"


class Saturated(ScaleError):
    """The ADC returned a saturation code: overload, or a load-cell wire is off."""

    code = "E422"


class DataLineStuckLow(ScaleError):
    """DOUT stayed low after a full read: the data line is shorted low."""

    code = "E423"


class ReadTooSlow(ScaleError):
    """Clock pulses kept running past the chip's power-down limit."""

    code = "E424"


# --------------------------------------------------------------------------
# Pure decoding
# --------------------------------------------------------------------------
def extra_pulses(gain: int) -> int:
    """Pulses after the 24 data bits that select ``gain`` for the next conversion."""
    try:
        return EXTRA_PULSES[gain]
    except KeyError:
        raise ValueError(f"HX711 gain must be 128 or 64 (channel A) or 32 (channel B), got {gain!r}") from None


def bits_to_word(bits) -> int:
    """24 bits, MSB first, to an unsigned word."""
    bits = list(bits)
    if len(bits) != BITS:
        raise ValueError(f"an HX711 word has {BITS} bits, got {len(bits)}")
    word = 0
    for b in bits:
        word = (word << 1) | (1 if b else 0)
    return word


def word_to_bits(word: int) -> list[int]:
    """An unsigned 24-bit word as bits, MSB first (what DOUT shows)."""
    if not 0 <= word <= 0xFFFFFF:
        raise ValueError(f"not a 24-bit word: {word:#x}")
    return [(word >> (BITS - 1 - i)) & 1 for i in range(BITS)]


def decode(word: int) -> int:
    """Unsigned 24-bit word -> signed code (two's complement)."""
    if not 0 <= word <= 0xFFFFFF:
        raise ValueError(f"not a 24-bit word: {word:#x}")
    return word - (1 << BITS) if word & 0x800000 else word


def encode(code: int) -> int:
    """Signed code -> unsigned 24-bit word (what the chip shifts out)."""
    if not CODE_MIN <= code <= CODE_MAX:
        raise ValueError(f"code {code} is outside the HX711 range {CODE_MIN}..{CODE_MAX}")
    return code & 0xFFFFFF


def from_iio_raw(raw: int) -> int:
    """The kernel hx711 driver reports ``word ^ 0x800000`` (offset binary); back to a signed code."""
    if not 0 <= raw <= 0xFFFFFF:
        raise ValueError(f"iio raw value {raw} is outside 0..{0xFFFFFF}")
    return decode(raw ^ 0x800000)


def check_code(code: int, where: str = "HX711") -> int:
    """Reject the saturation codes: they mean overload or a broken wire, never a weight."""
    if code >= CODE_MAX:
        raise Saturated(f"{where}: reading saturated high ({code:#x}): load cell overloaded, or a signal wire (A+/A-) is off")
    if code <= CODE_MIN:
        raise Saturated(f"{where}: reading saturated low ({code}): load cell wired backwards under load, or a signal wire is off")
    return code


# --------------------------------------------------------------------------
# Bit-banged driver on gpiozero pins
# --------------------------------------------------------------------------
class HX711:
    """One HX711 on two GPIOs (DOUT in, PD_SCK out), any gpiozero pin factory.

    ``read_raw()`` blocks until a validated conversion is in (or raises a
    ``ScaleError`` naming the fault). Not itself a thread: ``scale.Scale``
    runs it on one.

    ``max_pulse_s`` is the longest clock-high time trusted; it defaults to the
    chip's 60 us. A read with a longer pulse is discarded, the chip is reset
    (its state is unknown) and the read retried up to ``retries`` times.
    """

    def __init__(
        self,
        data_pin: int,
        clock_pin: int,
        gain: int = 128,
        *,
        pin_factory,
        name: str = "HX711",
        ready_timeout_s: float = 1.0,
        max_pulse_s: float = CHIP_POWER_DOWN_S,
        retries: int = 3,
        poll_s: float = 0.001,
    ):
        from gpiozero import DigitalOutputDevice, InputDevice

        self.name = name
        self.data_pin, self.clock_pin = data_pin, clock_pin
        self._pulses = extra_pulses(gain)
        self.gain = gain
        self.ready_timeout_s = ready_timeout_s
        self.max_pulse_s = max_pulse_s
        self.reset_s = max(0.01, 2 * max_pulse_s)  # the kernel driver found >= 10 ms reliable
        self.retries = retries
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._discard = 0
        self._last_ready: Optional[float] = None  # when DOUT was last seen going low
        self._intervals: deque[float] = deque(maxlen=8)  # between data-readies: the min is the period
        self.stats = dict(reads=0, discarded=0, long_pulses=0, dout_low=0, saturated=0, resets=0, timeouts=0)
        self._clk = self._dout = None
        try:
            # Clock low from the first instant: high for > 60 us would power the chip down.
            self._clk = DigitalOutputDevice(clock_pin, initial_value=False, pin_factory=pin_factory)
            # Pull-up: an unplugged HX711 reads "not ready" (a clear timeout), never random bits.
            self._dout = InputDevice(data_pin, pull_up=True, pin_factory=pin_factory)
        except Exception as e:
            self.close()
            raise ScaleError(f"{name}: cannot open HX711 pins DOUT=GPIO{data_pin} PD_SCK=GPIO{clock_pin}: {e} "
                             "(if the kiosk is running, stop it first or use the service screen)") from e
        self._clk_pin, self._dout_pin = self._clk.pin, self._dout.pin
        self._reset()

    # ---- lifecycle --------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def closed(self) -> bool:
        return self._clk is None

    def close(self) -> None:
        """Release both pins (clock driven low first). Idempotent."""
        clk, dout = self._clk, self._dout
        self._clk = self._dout = None
        if clk is not None:
            try:
                clk.off()
            except Exception:  # already closed underneath us
                pass
            clk.close()
        if dout is not None:
            dout.close()

    # ---- control ----------------------------------------------------------
    def reset(self) -> None:
        """Power-cycle the chip (clock high > 60 us, then low): known state, channel A x128."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        clk = self._clk_pin
        clk.state = True
        time.sleep(self.reset_s)
        clk.state = False
        self._last_ready = None  # conversions restart with a new phase
        self.stats["resets"] += 1
        # first conversion after reset is unsettled; a gain other than 128
        # then needs one read to select it and one more to settle.
        self._discard = 1 if self.gain == 128 else 2

    def set_gain(self, gain: int) -> None:
        """Select another gain/channel; the readings in between are discarded."""
        pulses = extra_pulses(gain)
        with self._lock:
            if gain != self.gain:
                self.gain, self._pulses = gain, pulses
                # the next read still carries the old gain's data, the one after is unsettled
                self._discard = max(self._discard, 2)

    # ---- reading ----------------------------------------------------------
    def read_raw(self) -> int:
        """One trusted conversion as a signed code. Raises a ScaleError subclass naming the fault."""
        if self.closed:
            raise ScaleError(f"{self.name}: read after close")
        with self._lock:
            failures = 0
            for _ in range(3 * (self.retries + 2) + 2):  # every failure resets, every reset discards <= 2
                self._wait_ready()
                word, longest, status = self._shift_in()
                if status == "long":
                    self.stats["long_pulses"] += 1
                    failures += 1
                    log.debug("%s: clock pulse held %.0f us (> %.0f us): read discarded, chip reset",
                              self.name, longest * 1e6, self.max_pulse_s * 1e6)
                    self._reset()
                    if failures > self.retries:
                        raise ReadTooSlow(
                            f"{self.name}: clock pulses on GPIO{self.clock_pin} ran {longest * 1e6:.0f} us "
                            f"(limit {self.max_pulse_s * 1e6:.0f} us) in {failures} reads running: the system is too "
                            "busy to bit-bang the HX711; use the kernel hx711 IIO driver (scale.type: iio)"
                        )
                    continue
                if status == "dout_low":
                    # DOUT must stay high from the 25th pulse until the next conversion:
                    # low means the line is stuck, or the next conversion overran a slow read.
                    self.stats["dout_low"] += 1
                    failures += 1
                    if failures > self.retries:
                        raise DataLineStuckLow(
                            f"{self.name}: DOUT (GPIO{self.data_pin}) stays low after every read: "
                            "data line shorted to ground or the HX711 is faulty"
                        )
                    self._reset()
                    continue
                if self._discard > 0:
                    self._discard -= 1
                    self.stats["discarded"] += 1
                    continue
                code = decode(word)
                self.stats["reads"] += 1
                try:
                    return check_code(code, self.name)
                except Saturated:
                    self.stats["saturated"] += 1
                    raise
            raise ReadTooSlow(f"{self.name}: no trusted reading after {3 * (self.retries + 2) + 2} attempts")

    def _wait_ready(self) -> None:
        """Wait for DOUT low. A stuck line is a fault within the timeout, not a hang.

        Conversions come at a fixed rate (10 or 80/s, set by a pin we cannot
        read), so once the period is known the thread sleeps through most of
        it instead of waking every millisecond.
        """
        for attempt in (1, 2):
            start = time.monotonic()
            deadline = start + self.ready_timeout_s
            period = min(self._intervals) if self._intervals else None
            poll = self.poll_s
            if period is not None and self._last_ready is not None:
                poll = max(self.poll_s, period / 50)
                pre = self._last_ready + 0.7 * period - start
                if pre > 0:
                    time.sleep(min(pre, self.ready_timeout_s))
            while self._dout_pin.state:
                if time.monotonic() >= deadline:
                    break
                time.sleep(poll)
            else:
                now = time.monotonic()
                if self._last_ready is not None and 0.004 < now - self._last_ready < 1.0:
                    self._intervals.append(now - self._last_ready)
                self._last_ready = now
                return
            self._last_ready = None
            self.stats["timeouts"] += 1
            if attempt == 1:
                self._reset()  # a chip left powered down (clock glitch) comes back after a reset
        raise DataReadyTimeout(
            f"{self.name}: no data-ready from the HX711 within {self.ready_timeout_s:g} s "
            f"(DOUT GPIO{self.data_pin} stays high): check its power, wiring and pin numbers"
        )

    def _shift_in(self):
        """Clock 24 data bits + the gain pulses: (word, longest high time, status).

        status is "ok", "long" (a pulse ran past ``max_pulse_s``: the chip may
        have powered down, the bits are not to be trusted) or "dout_low" (DOUT
        not high from the 25th pulse on). The clock goes low again before DOUT
        is sampled, so a high time is one pin write; DOUT stays valid until
        the next rising edge.
        """
        clk, dout, limit = self._clk_pin, self._dout_pin, self.max_pulse_s
        pc = time.perf_counter
        word = 0
        longest = 0.0
        for i in range(BITS + self._pulses):
            t0 = pc()
            clk.state = True
            clk.state = False
            dt = pc() - t0
            if dt > longest:
                longest = dt
                if dt > limit:
                    return word, longest, "long"  # stop clocking a chip that powered down
            if i < BITS:
                word = (word << 1) | (1 if dout.state else 0)
            elif not dout.state:
                return word, longest, "dout_low"
        return word, longest, "ok"


# --------------------------------------------------------------------------
# Kernel IIO backend
# --------------------------------------------------------------------------
IIO_ROOT = Path("/sys/bus/iio/devices")


class IIOHX711:
    """The Linux ``hx711`` IIO driver (``dtoverlay=hx711``...): the kernel bit-bangs with
    pre-emption off, so no pulse runs long. Gain is set on the kernel side.

    ``device`` is ``iio:deviceN`` (under ``root``) or an absolute directory.
    """

    def __init__(self, device: str, gain: int = 128, *, root: Path = IIO_ROOT, name: str = "HX711 (iio)",
                 period_s: float = 0.1):
        extra_pulses(gain)
        self.name = name
        self.gain = gain
        d = Path(device)
        self.dir = d if d.is_absolute() else Path(root) / device
        channel = 1 if gain == 32 else 0  # channel B is in_voltage1
        self.path = self.dir / f"in_voltage{channel}_raw"
        self.period_s = period_s
        self._last = 0.0
        self._closed = False
        if not self.dir.is_dir():
            raise ScaleError(f"{name}: no IIO device at {self.dir} (is the hx711 overlay enabled? ls {Path(root)})")
        if not self.path.exists():
            raise ScaleError(f"{name}: {self.path} does not exist: is {self.dir} an hx711?")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    def read_raw(self) -> int:
        """One conversion as a signed code; the kernel waits for data-ready itself."""
        if self._closed:
            raise ScaleError(f"{self.name}: read after close")
        wait = self._last + self.period_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # a sysfs read of a fake or cached value must not spin
        self._last = time.monotonic()
        try:
            text = self.path.read_text().strip()
        except OSError as e:
            # the kernel returns EIO when DOUT never went low
            raise DataReadyTimeout(f"{self.name}: reading {self.path} failed: {e.strerror or e}") from e
        try:
            raw = int(text)
            code = from_iio_raw(raw)
        except ValueError as e:
            raise ScaleError(f"{self.name}: {self.path} gave {text!r}, not a 24-bit raw value") from e
        return check_code(code, self.name)


# --------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------
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


__all__ = [
    "BITS", "CODE_MAX", "CODE_MIN", "EXTRA_PULSES", "CHIP_POWER_DOWN_S",
    "ScaleError", "DataReadyTimeout", "Saturated", "DataLineStuckLow", "ReadTooSlow",
    "extra_pulses", "bits_to_word", "word_to_bits", "decode", "encode", "from_iio_raw", "check_code",
    "HX711", "IIOHX711", "LoadCellModel", "SimulatedADC", "SimulatedHX711", "unsettled",
]
