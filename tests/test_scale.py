"""Weighing: pure filter / drop / fill logic with plain data, then the reader thread on a simulated HX711."""

from __future__ import annotations

import math
import time

import pytest

from kiosk.weighing.calibration import BinCalibration, Calibration, CalibrationError
from kiosk.datatypes import Reading
from kiosk.weighing.hx711 import CODE_MAX, HX711, DataReadyTimeout, ScaleError
from kiosk.weighing.hx711_sim import LoadCellModel, SimulatedHX711
from kiosk.weighing.fill import DropDetector, FillLevel, WeightFilter
from kiosk.weighing.bank import ScaleBank
from kiosk.weighing.scale import Scale

from tests.conftest_hardware import make_bin, wait_for  # noqa: E402

pytest_plugins = ["tests.conftest_hardware"]

LIMIT = 0.05


def R(grams, t, stable=True, fault=None):
    return Reading(grams=grams, stable=stable, t=t, fault=fault)


# ------------------------------------------------------------------ WeightFilter
def test_median_ignores_spikes_and_stability_uses_medians():
    f = WeightFilter(median_window=5, stable_s=0.5)
    t = iter(i * 0.1 for i in range(100))  # 10 samples/s
    for raw in [100, 101, 99, 100]:
        assert f.add(raw, next(t)) is None  # window not full yet
    assert f.add(100, next(t)) == 100
    for raw in [8_000_000, 100, -8_000_000, 101, 99]:  # two spike codes in five
        f.add(raw, next(t))
        assert 99 <= f.median <= 101
    assert f.stable(2) and f.spread <= 1
    for raw in [200] * 3:
        f.add(raw, next(t))
    assert f.median == 200 and not f.stable(2)  # a real step moves the median: unsettled
    for raw in [200] * 3:
        f.add(raw, next(t))
    assert not f.stable(2), "settled for 0.3 s only"
    for raw in [200] * 3:
        f.add(raw, next(t))
    assert f.stable(2)


def test_stability_is_judged_over_time_not_samples():
    """At 200 samples/s a 0.12 s impact fills whole median windows; it must still not look settled."""
    f = WeightFilter(median_window=5, stable_s=0.5)
    t = 0.0
    for _ in range(200):
        f.add(0, t)
        t += 0.005
    for _ in range(24):  # the impact: 2.5x the item
        f.add(750, t)
        t += 0.005
    for _ in range(40):  # 0.2 s at 300
        f.add(300, t)
        t += 0.005
        assert not f.stable(2)
    for _ in range(80):
        f.add(300, t)
        t += 0.005
    assert f.stable(2) and f.median == 300


# ------------------------------------------------------------------ DropDetector
def test_drop_confirmed_after_rise_and_settle():
    d = DropDetector(min_rise_g=5.0, settled_readings=2)
    assert d.arm(10.0, R(1000.0, 9.9))
    assert d.update(R(1000.0, 9.95)) is None  # from before the flap opened
    assert d.update(R(1900.0, 10.2, stable=False)) is None  # impact spike, unsettled
    assert d.update(R(1250.0, 10.4)) is None  # settled once
    assert d.update(R(1250.0, 10.5)) == pytest.approx(250.0)  # settled twice: confirmed
    assert not d.armed and d.update(R(1300.0, 10.6)) is None  # one confirmation per arm


def test_small_rise_or_fault_never_confirms():
    d = DropDetector(min_rise_g=20.0)
    d.arm(0.0, R(500.0, 0.0))
    for i in range(1, 10):
        assert d.update(R(515.0, i * 0.1)) is None  # below the configured rise
    assert d.update(R(900.0, 1.1, fault="bin x: saturated")) is None
    assert d.update(R(math.nan, 1.2)) is None
    assert d.armed


def test_unusable_baseline_does_not_arm():
    d = DropDetector(5.0)
    assert not d.arm(0.0, R(math.nan, 0.0, fault="not calibrated"))
    assert not d.armed and d.update(R(900.0, 1.0)) is None


def test_slow_drift_is_not_a_drop():
    d = DropDetector(5.0)
    d.arm(0.0, R(1000.0, 0.0))
    for i in range(1, 81):  # 8 s of 0.5 g/s creep, settled all the way
        assert d.update(R(1000.0 + 0.05 * i, i * 0.1)) is None


# ------------------------------------------------------------------ FillLevel
def test_near_full_with_hysteresis():
    f = FillLevel(10_000, near_full=0.85, full_hold_s=2.0)
    assert not f.update(R(8400, 0)).near_full
    assert f.update(R(8500, 1)).near_full
    assert f.update(R(8400, 2)).near_full  # within the hysteresis band
    assert not f.update(R(8200, 3)).near_full
    assert f.state.fraction == pytest.approx(0.82) and not f.state.full


def test_full_latches_and_clears_only_when_emptied():
    f = FillLevel(10_000, near_full=0.85, full_hold_s=2.0, emptied_below=0.2)
    assert not f.update(R(10_100, 0.0)).full
    assert not f.update(R(10_100, 1.9)).full  # not for long enough yet
    assert not f.update(R(10_100, 2.0, stable=False)).full  # unsettled readings change nothing
    assert f.update(R(10_100, 2.0)).full
    assert f.update(R(9_000, 3.0)).full  # taking an item out is not emptying
    assert f.update(R(math.nan, 4.0, fault="no data-ready")).full  # a fault never makes a bin look empty
    assert f.update(R(2_100, 5.0)).full
    s = f.update(R(300, 6.0))
    assert not s.full and not s.near_full


def test_person_leaning_on_the_bin_is_not_full():
    f = FillLevel(10_000, full_hold_s=2.0)
    for t in (0.0, 0.5, 1.0, 1.5):
        f.update(R(12_000, t))
    assert not f.update(R(6_000, 1.9)).full
    assert not f.update(R(12_000, 2.5)).full  # the hold time starts again


def test_manual_reset_and_rearm():
    f = FillLevel(10_000, full_hold_s=0.0)
    assert f.update(R(10_200, 0)).full
    assert not f.reset().full
    assert not f.update(R(10_300, 1)).full  # not clearly heavier than at the reset
    assert f.update(R(10_800, 2)).full  # 5 % of capacity more: full again
    f.update(R(500, 3))  # emptied
    assert not f.state.full and f.update(R(10_000, 4)).full  # re-armed at capacity


# ------------------------------------------------------------------ the reader thread
DOUT, SCK = 17, 27


@pytest.fixture
def sim_scale(mock_factory):
    """A Scale thread on the driver on a simulated chip at 200 samples/s, calibrated to the model."""
    made = []

    def make(*, calibrated=True, noise=0.0, rate_hz=200.0, **kw):
        model = LoadCellModel(noise_counts=noise)
        sim = SimulatedHX711(DOUT, SCK, pin_factory=mock_factory, model=model, rate_hz=rate_hz, powerdown_s=LIMIT)
        hx = HX711(DOUT, SCK, pin_factory=mock_factory, max_pulse_s=LIMIT, ready_timeout_s=0.1)
        cal = BinCalibration(offset=model.zero_code(), scale=model.counts_per_gram()) if calibrated else None
        s = Scale("paper", hx, cal, **kw)
        made.append(s)
        return s, sim

    yield make
    for s in made:
        s.close()


def test_reader_reports_calibrated_stable_grams(sim_scale):
    s, sim = sim_scale()
    sim.model.grams = 1234.0
    assert wait_for(lambda: s.reading.stable, 3.0)
    r = s.reading
    assert r.fault is None and r.grams == pytest.approx(1234.0, abs=0.5)


def test_uncalibrated_scale_gives_no_grams(sim_scale):
    s, sim = sim_scale(calibrated=False)
    assert wait_for(lambda: s.samples > 10, 3.0)
    r = s.reading
    assert math.isnan(r.grams) and not r.stable and "not calibrated" in r.fault


def test_spike_codes_do_not_move_the_weight(sim_scale):
    s, sim = sim_scale()
    sim.model.grams = 500.0
    assert wait_for(lambda: s.reading.stable, 3.0)
    for _ in range(5):
        start = s.samples
        sim.model.inject_codes(0x400000)  # a glitch worth ~39 kg
        assert wait_for(lambda: s.samples >= start + 3, 2.0)
        r = s.reading
        # rejected by the median: neither the weight nor its stability moved
        assert r.grams == pytest.approx(500.0, abs=0.5) and r.stable and r.fault is None


def test_stuck_line_becomes_a_fault_then_recovers(sim_scale):
    s, sim = sim_scale()
    assert wait_for(lambda: s.reading.stable, 3.0)
    sim.stuck = "high"
    assert wait_for(lambda: s.reading.fault is not None, 3.0)
    r, code = s.status()
    assert "stays high" in r.fault and code == DataReadyTimeout.code and math.isnan(r.grams)
    sim.stuck = None
    assert wait_for(lambda: s.reading.fault is None and s.reading.stable, 3.0)


def test_sustained_saturation_is_a_fault(sim_scale):
    s, sim = sim_scale()
    assert wait_for(lambda: s.reading.stable, 3.0)
    sim.model.grams = 1e6
    assert wait_for(lambda: s.reading.fault is not None, 3.0)
    assert "saturated" in s.reading.fault


def test_slow_drift_is_tracked_and_stays_stable(sim_scale):
    s, sim = sim_scale()
    assert wait_for(lambda: s.reading.stable, 3.0)
    g0 = s.reading.grams
    sim.model.drift_mv_per_s = 0.0025 * 0.2  # 2 g/s of creep
    stable_seen = []
    t_end = time.monotonic() + 1.0
    while time.monotonic() < t_end:
        stable_seen.append(s.reading.stable)
        time.sleep(0.02)
    assert s.reading.grams - g0 == pytest.approx(2.0, abs=1.0)
    assert sum(stable_seen) > 0.8 * len(stable_seen)  # creep does not read as a disturbance


def test_stale_reader_is_a_fault(fake_clock):
    class Silent:
        closed = False

        def read_raw(self):
            time.sleep(0.01)
            raise ScaleError("nothing")

        def close(self):
            pass

    s = Scale("paper", Silent(), None, clock=fake_clock, fault_after=1000, stale_s=3.0)
    try:
        fake_clock.advance(3.5)
        assert "no reading from the scale for 3.5 s" in s.reading.fault
    finally:
        s.close()
        s.close()


def test_wait_stable_refuses_unstable_and_faulty(sim_scale):
    s, sim = sim_scale(noise=2000.0)  # ~20 g of noise: never settles within 2 g
    with pytest.raises(ScaleError, match="not stable"):
        s.wait_stable(timeout_s=1.0)
    sim.model.noise_counts = 0.0
    assert s.wait_stable(timeout_s=2.0) == pytest.approx(sim.expected_code(), abs=2)
    sim.stuck = "high"
    assert wait_for(lambda: s.reading.fault is not None, 3.0)
    with pytest.raises(ScaleError, match="scale fault") as e:
        s.wait_stable(timeout_s=0.2)
    assert e.value.code == "E421"  # the fault's own code, not the family's E420


# ------------------------------------------------------------------ ScaleBank
def test_bank_confirms_a_drop_and_tracks_fill(sim_scale, tmp_path):
    s, sim = sim_scale()
    bins = [make_bin("paper", scale=dict(type="hx711", data_pin=DOUT, clock_pin=SCK, drop_min_g=5), capacity_kg=1.0)]
    events = []
    bank = ScaleBank({"paper": s}, bins, on_event=lambda *e: events.append(e[0]))
    sim.model.grams = 100.0
    assert wait_for(lambda: s.reading.stable, 3.0)
    bank.update()
    assert bank.arm_drop("paper")
    sim.model.add_load(300.0, delay_s=0.05)
    drops = []
    assert wait_for(lambda: drops.extend(bank.update()) or drops, 3.0)
    assert drops[0].bin_id == "paper" and drops[0].grams == pytest.approx(300.0, abs=1.0)
    sim.model.grams += 700.0  # now 1.1 kg in a 1 kg bin
    bank.fills["paper"].full_hold_s = 0.1
    assert wait_for(lambda: bank.update() is not None and bank.full_bins() == {"paper"}, 3.0)
    assert "near_full" in events or "full" in events
    assert "full" in events
    bank.reset_full("paper")
    assert bank.full_bins() == set()
    bank.close()
    bank.close()


def test_bank_tare_and_calibrate(sim_scale, tmp_path):
    s, sim = sim_scale(calibrated=False)
    bins = [make_bin("paper", scale=dict(type="hx711", data_pin=DOUT, clock_pin=SCK))]
    cal = Calibration(tmp_path / "calibration.json")
    bank = ScaleBank({"paper": s}, bins, calibration=cal)
    with pytest.raises(CalibrationError, match="tare it first"):
        bank.calibrate("paper", 500.0, timeout_s=0.5)
    sim.model.grams = 0.0
    c = bank.tare("paper", timeout_s=3.0)
    assert c.offset == pytest.approx(sim.model.zero_code(), abs=2) and c.scale is None
    assert "tared but not calibrated" in s.reading.fault
    sim.model.grams = 500.0
    c = bank.calibrate("paper", 500.0, timeout_s=3.0)
    assert c.scale == pytest.approx(sim.model.counts_per_gram(), rel=1e-3)
    assert Calibration.load(tmp_path / "calibration.json").get("paper") == c  # saved
    assert wait_for(lambda: s.reading.stable, 3.0)
    assert s.reading.grams == pytest.approx(500.0, abs=0.5)
    with pytest.raises(CalibrationError, match="no scale"):
        ScaleBank({}, [make_bin("x")], calibration=cal).tare("x")
    bank.close()


def test_saturation_code_is_never_a_reading(sim_scale):
    s, sim = sim_scale()
    assert wait_for(lambda: s.reading.stable, 3.0)
    start = s.samples
    sim.model.inject_codes(CODE_MAX)  # one overload (an impact): rejected, not averaged in
    assert wait_for(lambda: s.samples >= start + 5, 2.0)
    assert s.reading.grams == pytest.approx(0.0, abs=0.5) and s.reading.fault is None
