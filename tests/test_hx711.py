"""HX711: pure decoding, then the driver against a simulated chip on MockFactory pins, bit for bit."""

from __future__ import annotations

import time

import pytest
from gpiozero import DigitalOutputDevice, InputDevice

from kiosk.weighing.hx711 import (CODE_MAX, CODE_MIN, HX711, DataLineStuckLow, DataReadyTimeout, ReadTooSlow, Saturated,
                                  ScaleError, bits_to_word, check_code, decode, encode, extra_pulses, from_iio_raw,
                                  word_to_bits)
from kiosk.weighing.iio import IIOHX711
from kiosk.weighing.hx711_sim import LoadCellModel, SimulatedHX711, unsettled

from tests.conftest_hardware import wait_for  # noqa: E402

pytest_plugins = ["tests.conftest_hardware"]

DOUT, SCK = 17, 27
# Mock pins on a busy desktop: a Python pulse can be pre-empted for milliseconds,
# so the simulated chip's power-down limit and the driver's trust limit are both 50 ms.
LIMIT = 0.05


def chip(factory, rate_hz=200.0, **model):
    return SimulatedHX711(DOUT, SCK, pin_factory=factory, model=LoadCellModel(**model), rate_hz=rate_hz,
                          powerdown_s=LIMIT)


def driver(factory, gain=128, **kw):
    kw.setdefault("ready_timeout_s", 0.2)
    return HX711(DOUT, SCK, gain, pin_factory=factory, max_pulse_s=LIMIT, **kw)


# ---------------------------------------------------------------------------- pure
@pytest.mark.parametrize("word, code", [
    (0x000000, 0), (0x000001, 1), (0x7FFFFF, 8388607), (0x800000, -8388608),
    (0xFFFFFF, -1), (0x800001, -8388607), (0x123456, 0x123456), (0xFEDCBA, 0xFEDCBA - 0x1000000),
])
def test_decode_known_words(word, code):
    assert decode(word) == code
    assert encode(code) == word


def test_bits_are_msb_first():
    bits = word_to_bits(0xA00001)
    assert bits[:4] == [1, 0, 1, 0] and bits[-1] == 1 and sum(bits) == 3
    assert bits_to_word(bits) == 0xA00001
    with pytest.raises(ValueError, match="24 bits"):
        bits_to_word([1] * 23)


def test_out_of_range_words_are_refused():
    with pytest.raises(ValueError):
        decode(0x1000000)
    with pytest.raises(ValueError):
        encode(CODE_MAX + 1)


def test_extra_pulses_select_channel_and_gain():
    assert (extra_pulses(128), extra_pulses(32), extra_pulses(64)) == (1, 2, 3)
    with pytest.raises(ValueError, match="128 or 64"):
        extra_pulses(100)


@pytest.mark.parametrize("code, side", [(CODE_MAX, "high"), (CODE_MIN, "low")])
def test_saturation_codes_are_rejected(code, side):
    with pytest.raises(Saturated, match=f"saturated {side}"):
        check_code(code, "bin x")
    assert check_code(CODE_MAX - 1) == CODE_MAX - 1


def test_iio_offset_binary():
    assert from_iio_raw(0x800000) == 0
    assert from_iio_raw(0x800000 + 100) == 100
    assert from_iio_raw(0x7FFFFF) == -1
    assert from_iio_raw(0xFFFFFF) == CODE_MAX
    assert from_iio_raw(0) == CODE_MIN


# ---------------------------------------------------------- the simulated chip alone
def test_simulated_chip_speaks_the_protocol(mock_factory):
    """A hand-written bit-banger (not the driver) reads the simulated chip bit for bit."""
    # 10 conversions/s: the first data-ready must not come before the devices
    # below exist, even on a loaded CI machine (at 200/s it came in 5 ms)
    sim = chip(mock_factory, rate_hz=10.0, offset_mv=0.0)
    code = -123457
    clk = DigitalOutputDevice(SCK, initial_value=False, pin_factory=mock_factory)
    dout = InputDevice(DOUT, pull_up=True, pin_factory=mock_factory)
    try:
        assert dout.pin.state, "DOUT is high until the first conversion"
        assert wait_for(lambda: not dout.pin.state, 0.5), "no data-ready"
        assert sim.conversions[-1] == (128, unsettled(0))  # the first conversion after power-up is unsettled
        sim.model.inject_codes(code)  # the next conversion
        # skip the first one (25 pulses), then read the injected code
        for _ in range(25):
            clk.on()
            clk.off()
        assert dout.pin.state, "DOUT goes high after the 25th pulse"
        assert wait_for(lambda: not dout.pin.state, 0.5)
        bits = []
        for _ in range(24):
            clk.on()
            clk.off()
            bits.append(int(dout.pin.state))
        assert bits == word_to_bits(encode(code))
        for _ in range(3):  # gain 64 for the next conversion
            clk.on()
            clk.off()
            assert dout.pin.state
        assert wait_for(lambda: not dout.pin.state, 0.5)
        assert sim.gain == 64
        assert sim.conversions[-1] == (64, unsettled(sim.expected_code(64)))  # first at a new gain: unsettled
    finally:
        clk.close()
        dout.close()


# ---------------------------------------------------------------- driver vs. chip
def test_driver_decodes_known_codes_off_the_wire(mock_factory):
    sim = chip(mock_factory)
    known = [1, -1, 0, 123456, -123456, CODE_MAX - 1, CODE_MIN + 1, 0x555555, -0x2AAAAA]
    with driver(mock_factory) as hx:
        hx.read_raw()  # settle
        sim.model.inject_codes(*known)
        got = [hx.read_raw() for _ in known]
    assert got == known


def test_clock_pulses_per_read_follow_the_gain(mock_factory):
    sim = chip(mock_factory, channel_b_mv=0.7)
    with driver(mock_factory, gain=128) as hx:
        hx.read_raw()
        for gain, pulses in ((128, 25), (64, 27), (32, 26)):
            hx.set_gain(gain)
            hx.read_raw()
            hx.read_raw()
            long_before = hx.stats["long_pulses"] + hx.stats["dout_low"]
            sim.clock_pin.clear_states()
            hx.read_raw()
            if hx.stats["long_pulses"] + hx.stats["dout_low"] != long_before:
                pytest.skip("the machine pre-empted a pulse; the count would include the retry")
            rising = sum(1 for a, b in zip(sim.clock_pin.states, list(sim.clock_pin.states)[1:]) if not a.state and b.state)
            assert rising == pulses, f"gain {gain}"


def test_gain_selection_and_channels(mock_factory):
    sim = chip(mock_factory, offset_mv=0.25, channel_b_mv=-0.4)
    with driver(mock_factory, gain=64) as hx:
        a64 = [hx.read_raw() for _ in range(3)]
        assert sim.gain == 64
        assert a64 == [sim.expected_code(64)] * 3
        hx.set_gain(32)
        b32 = [hx.read_raw() for _ in range(3)]
        assert b32 == [sim.expected_code(32)] * 3 and b32[0] < 0  # channel B, its own input
        hx.set_gain(128)
        a128 = [hx.read_raw() for _ in range(3)]
        assert a128 == [sim.expected_code(128)] * 3
    assert a128[0] == pytest.approx(2 * a64[0], abs=2)
    # the chip produced unsettled conversions after each change; the driver returned none of them
    assert hx.stats["discarded"] >= 2 + 2 + 2


def test_first_reading_after_reset_is_discarded(mock_factory):
    sim = chip(mock_factory)
    with driver(mock_factory) as hx:
        first = hx.read_raw()
    assert first == sim.expected_code(128)
    assert sim.conversions[0][1] == unsettled(sim.expected_code(128)) != first
    assert hx.stats["discarded"] == 1 and sim.resets >= 1


def test_saturation_is_an_error_not_a_weight(mock_factory):
    sim = chip(mock_factory)
    with driver(mock_factory) as hx:
        hx.read_raw()
        sim.model.grams = 1e6  # far over full scale
        with pytest.raises(Saturated, match="overloaded"):
            hx.read_raw()
        sim.model.grams = 0.0
        sim.model.inject_codes(CODE_MIN)
        with pytest.raises(Saturated, match="saturated low"):
            hx.read_raw()
        assert hx.read_raw() == sim.expected_code()


def test_stuck_high_data_line_times_out(mock_factory):
    sim = chip(mock_factory)
    with driver(mock_factory, ready_timeout_s=0.1) as hx:
        hx.read_raw()
        sim.stuck = "high"
        t0 = time.monotonic()
        with pytest.raises(DataReadyTimeout, match=f"DOUT GPIO{DOUT} stays high"):
            hx.read_raw()
        assert time.monotonic() - t0 < 1.0  # a fault, not a hang (one reset and a second wait)
        sim.stuck = None
        assert hx.read_raw() == sim.expected_code()


def test_stuck_low_data_line_is_detected(mock_factory):
    sim = chip(mock_factory)
    with driver(mock_factory) as hx:
        hx.read_raw()
        sim.stuck = "low"  # reads as all-zero bits: code 0 would look like a valid weight
        with pytest.raises(DataLineStuckLow, match=f"GPIO{DOUT}"):
            hx.read_raw()
        sim.stuck = None
        assert hx.read_raw() == sim.expected_code()


def test_overlong_clock_pulse_is_retried_not_trusted(mock_factory):
    sim = chip(mock_factory)
    with driver(mock_factory) as hx:
        hx.read_raw()
        resets = sim.resets
        sim.stall_pulse(12, 2 * LIMIT)  # pre-empted mid-word: the chip powers down, later bits are garbage
        assert hx.read_raw() == sim.expected_code()
        assert hx.stats["long_pulses"] >= 1
        assert sim.resets > resets  # the simulated chip really did power down


def test_always_slow_clock_is_a_clear_fault(mock_factory):
    sim = chip(mock_factory)
    with driver(mock_factory, retries=2) as hx:
        hx.read_raw()
        sim.slow_clock_s = 1.5 * LIMIT
        with pytest.raises(ReadTooSlow, match="too busy to bit-bang"):
            hx.read_raw()


def test_slow_drift_is_followed(mock_factory):
    # 0.25 uV/g: 0.0025 mV/s is 10 g/s of creep
    sim = chip(mock_factory, drift_mv_per_s=0.0025)
    cpg = sim.model.counts_per_gram()
    with driver(mock_factory) as hx:
        first = hx.read_raw()
        time.sleep(0.3)
        later = hx.read_raw()
    assert 1.0 < (later - first) / cpg < 8.0


def test_close_is_idempotent_and_releases_pins(mock_factory):
    chip(mock_factory)
    hx = driver(mock_factory)
    hx.close()
    hx.close()
    with pytest.raises(ScaleError, match="after close"):
        hx.read_raw()
    again = driver(mock_factory)  # pins free again
    again.close()


# ------------------------------------------------------------------------ iio
def _iio(tmp_path, raw0="8388708", raw1=None):
    d = tmp_path / "iio:device0"
    d.mkdir()
    (d / "in_voltage0_raw").write_text(raw0 + "\n")
    if raw1 is not None:
        (d / "in_voltage1_raw").write_text(raw1 + "\n")
    return d


def test_iio_backend_reads_the_kernel_value(tmp_path):
    _iio(tmp_path, raw0=str(0x800000 + 100), raw1=str(0x800000 - 5))
    assert IIOHX711("iio:device0", root=tmp_path, period_s=0).read_raw() == 100
    assert IIOHX711("iio:device0", 32, root=tmp_path, period_s=0).read_raw() == -5


def test_iio_backend_faults(tmp_path):
    with pytest.raises(ScaleError, match="no IIO device"):
        IIOHX711("iio:device9", root=tmp_path)
    d = _iio(tmp_path, raw0="garbage")
    with pytest.raises(ScaleError, match="not a 24-bit raw value"):
        IIOHX711("iio:device0", root=tmp_path, period_s=0).read_raw()
    (d / "in_voltage0_raw").write_text(str(0xFFFFFF))
    with pytest.raises(Saturated):
        IIOHX711("iio:device0", root=tmp_path, period_s=0).read_raw()
    with pytest.raises(ScaleError, match="in_voltage1_raw does not exist"):
        IIOHX711(str(d), 32)
