"""HX711 load-cell ADC: pure decoding, a bit-banged driver on gpiozero pins,
and (``kiosk.weighing.iio``) the kernel IIO backend. The simulated chip that speaks the protocol on
gpiozero's MockFactory pins bit for bit is a backend of its own
(``kiosk.weighing.hx711_sim``), not a branch in the driver.

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

from typing import Optional

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


__all__ = [
    "BITS", "CODE_MAX", "CODE_MIN", "EXTRA_PULSES", "CHIP_POWER_DOWN_S",
    "ScaleError", "DataReadyTimeout", "Saturated", "DataLineStuckLow", "ReadTooSlow",
    "extra_pulses", "bits_to_word", "word_to_bits", "decode", "encode", "from_iio_raw", "check_code",
    "HX711",
]
