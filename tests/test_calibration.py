"""Calibration file: atomic, validated, survives restarts; the tare/calibrate CLI; Hardware wiring."""

from __future__ import annotations

import argparse
import json
import math
import os

import pytest
import yaml

from kiosk.appliance import hardware_cli as hardware_cli
from tests.fakes import run_hardware_cli
from kiosk.weighing.calibration import (
    BinCalibration,
    Calibration,
    CalibrationError,
    atomic_write_text,
    calibration_path,
)
from kiosk.config import parse_config
from kiosk.errors import KioskError
from kiosk.devices.hardware import Hardware
from kiosk.devices.simulation import Simulation, sim_model

from tests.conftest_hardware import minimal_config_dict, wait_for  # noqa: E402

pytest_plugins = ["tests.conftest_hardware"]


# ------------------------------------------------------------------ the file
def test_calibration_survives_a_restart(tmp_path):
    path = tmp_path / "data" / "calibration.json"
    c = Calibration.load(path)
    assert c.bins == {}  # no file yet: nothing calibrated
    c.set_tare("paper", 107_000.0, 128, "hx711")
    c.set_known_mass("paper", 107_000.0 + 500 * 107.37, 500.0)
    c.save()
    again = Calibration.load(path)
    got = again.get("paper")
    assert got == c.get("paper")
    assert got.scale == pytest.approx(107.37) and got.grams(107_000.0 + 107.37 * 250) == pytest.approx(250.0)
    assert json.loads(path.read_text())["version"] == 1


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "calibration.json"
    atomic_write_text(path, "old\n")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["calibration.json"]  # no temp file left behind


def test_atomic_write_fsyncs_before_rename(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    atomic_write_text(tmp_path / "c.json", "{}")
    assert calls[:2] == ["fsync", "replace"]


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"version": 1}', "expected"),
    ('{"version": 7, "bins": {}}', "unknown calibration file version 7"),
    ('{"version": 1, "bins": {"paper": {"scale": 100}}}', "offset is missing"),
    ('{"version": 1, "bins": {"paper": {"offset": 1, "scale": 0}}}', "scale 0.0 is zero"),
    ('{"version": 1, "bins": {"paper": {"offset": "x"}}}', "offset must be a finite number"),
    ('{"version": 1, "bins": {"paper": {"offset": 1, "gain": 100}}}', "gain must be 128, 64 or 32"),
    ('{"version": 1, "bins": {"paper": {"offset": 1, "extra": 1}}}', "unknown keys"),
])
def test_broken_file_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "calibration.json"
    path.write_text(text)
    with pytest.raises(CalibrationError, match=message) as e:
        Calibration.load(path)
    assert str(path) in str(e.value) and e.value.code == "E430"


def test_calibration_must_match_gain_and_source(tmp_path):
    c = Calibration(tmp_path / "c.json")
    assert "not calibrated" in c.for_scale("paper", 128, "hx711")[1]
    c.set_tare("paper", 1000.0, 128, "hx711")
    assert "tared but not calibrated" in c.for_scale("paper", 128, "hx711")[1]
    c.set_known_mass("paper", 11_000.0, 100.0)
    assert c.for_scale("paper", 128, "hx711")[0].scale == 100.0
    cal, why = c.for_scale("paper", 64, "hx711")
    assert cal is None and "gain 128" in why and "gain 64" in why
    # a new tare at another gain drops the old counts per gram
    assert c.set_tare("paper", 500.0, 64, "hx711").scale is None
    # at the same gain it keeps them
    c.set_known_mass("paper", 5500.0, 100.0)
    assert c.set_tare("paper", 600.0, 64, "hx711").scale == 50.0


def test_known_mass_step_refuses_nonsense(tmp_path):
    c = Calibration(tmp_path / "c.json")
    with pytest.raises(CalibrationError, match="tare it first"):
        c.set_known_mass("paper", 5000.0, 100.0)
    c.set_tare("paper", 1000.0, 128, "hx711")
    with pytest.raises(CalibrationError, match="only 20 counts"):
        c.set_known_mass("paper", 1020.0, 100.0)
    for bad in (0.0, -5.0, math.nan):
        with pytest.raises(CalibrationError, match="positive number"):
            c.set_known_mass("paper", 9000.0, bad)
    assert c.get("paper").scale is None


def test_negative_scale_is_allowed_for_swapped_wires():
    cal = BinCalibration(offset=1000.0, scale=-50.0)
    assert cal.grams(-4000.0) == pytest.approx(100.0)


# ------------------------------------------------------------------ Hardware + CLI
BINS = [
    {"id": "paper", "name": {"en": "Paper"}, "colour": "#0000ff",
     "flap": {"type": "servo", "pin": 12},
     "scale": {"type": "hx711", "data_pin": 17, "clock_pin": 27, "drop_min_g": 5}, "capacity_kg": 1.0},
    {"id": "glass", "name": {"en": "Glass"}, "colour": "#00ff00",
     "flap": {"type": "servo", "pin": 13, "closed_switch_pin": 5}},
]


def config(tmp_path):
    return parse_config(minimal_config_dict(str(tmp_path / "data"), BINS), base_dir=tmp_path, check_model=False)


def cli(tmp_path, *argv):
    return run_hardware_cli(tmp_path, list(argv), BINS)


def test_cli_tare_then_calibrate_writes_the_simulated_file_only(tmp_path, capsys):
    assert cli(tmp_path, "scale", "tare", "paper", "--simulate") == 0
    out = capsys.readouterr().out
    assert "paper: tared" in out
    sim_file = calibration_path(tmp_path / "data", simulate=True)
    assert sim_file.exists() and not calibration_path(tmp_path / "data").exists()
    tared = Calibration.load(sim_file).get("paper")
    model = sim_model(0)
    assert tared.offset == pytest.approx(model.zero_code(), abs=30)
    assert cli(tmp_path, "scale", "calibrate", "paper", "--known-mass", "500", "--simulate") == 0
    cal = Calibration.load(sim_file).get("paper")
    assert cal.offset == tared.offset and cal.scale == pytest.approx(model.counts_per_gram(), rel=0.01)
    with pytest.raises(KioskError, match="no scale"):
        cli(tmp_path, "scale", "tare", "glass", "--simulate")
    with pytest.raises(KioskError, match="unknown bin 'nope'"):
        cli(tmp_path, "scale", "calibrate", "nope", "--known-mass", "5", "--simulate")


def test_hardware_loads_stored_calibration_at_start(tmp_path):
    cfg = config(tmp_path)
    model = sim_model(0)
    c = Calibration(calibration_path(cfg.data_dir, simulate=True))
    c.set_tare("paper", model.zero_code() - 100 * model.counts_per_gram(), 128, "hx711")  # "zero" 100 g low
    c.set_known_mass("paper", model.zero_code(), 100.0)
    c.save()
    with Hardware.from_config(cfg, simulation=Simulation(rate_hz=50), release_delay_s=0.05) as hw:
        assert wait_for(lambda: hw.scales.reading("paper").stable, 5.0)
        assert hw.scales.reading("paper").grams == pytest.approx(100.0, abs=2.0)


def test_uncalibrated_real_scale_is_a_fault_with_its_code(tmp_path, mock_factory):
    cfg = config(tmp_path)
    with Hardware.from_config(cfg, simulation=Simulation(mock_factory, rate_hz=50), release_delay_s=0.05) as hw:
        # simulated cells come "factory calibrated"; take that away to see the fault
        hw.scales.scales["paper"].set_calibration(None, "bin paper: scale not calibrated")
        assert wait_for(lambda: any(f.part == "scale:paper" for f in hw.faults()), 5.0)
        f = [f for f in hw.faults() if f.part == "scale:paper"][0]
        assert f.code == "E425" and "not calibrated" in f.message


def test_simulated_hardware_confirms_a_drop_with_weight(tmp_path, mock_factory):
    cfg = config(tmp_path)
    pin = mock_factory.pin(12)
    with Hardware.from_config(cfg, simulation=Simulation(mock_factory, rate_hz=50), release_delay_s=0.05) as hw:
        assert wait_for(lambda: hw.scales.reading("paper").stable, 5.0)
        assert hw.open_flap("paper")
        assert not hw.open_flap("glass")
        drops = []
        assert wait_for(lambda: (hw.poll(), drops.extend(hw.drops()))[1] or drops, 6.0)
        (bin_id, grams), = drops
        assert bin_id == "paper" and 100 <= grams <= 460
        hw.close_flap("paper")
        assert hw.fill_levels()["paper"] == pytest.approx(grams / 1000, abs=0.01)
        assert hw.refused_bins() == set() and hw.faults() == []
    # Hardware.close(): flaps closed first, then released
    assert [round(float(s.state), 3) for s in pin.states][-2:] == [0.05, 0.0]


def test_demo_config_builds_and_closes(tmp_path, repo):
    data = yaml.safe_load((repo / "config.yaml").read_text())
    data["storage"]["data_dir"] = str(tmp_path)
    cfg = parse_config(data, base_dir=repo, check_model=False)
    hw = Hardware.from_config(cfg, simulation=Simulation(), release_delay_s=0.05)
    assert set(hw.flaps.flaps) == {"paper", "packaging", "glass", "residual"}
    assert hw.scales.bins == {"paper", "packaging", "glass", "residual"}
    hw.close()
    hw.close()
    assert hw.flaps.closed and hw.scales.closed


def test_self_test_rows_for_doctor(tmp_path, mock_factory):
    cfg = config(tmp_path)
    with Hardware.from_config(cfg, simulation=Simulation(mock_factory, rate_hz=50), release_delay_s=0.05) as hw:
        rows = {name: (ok, detail) for name, ok, detail in hw.self_test()}
        assert rows["scale paper"][0] and rows["scale paper"][1].endswith(" g")
        assert rows["flap glass"] == (True, "closed (servo on GPIO13, switch reads closed)")
        assert rows["flap paper"][0]
        hw.simulation.models["paper"].grams = 1e6  # overload: saturated
        assert wait_for(lambda: hw.scales.reading("paper").fault is not None, 5.0)
        ok, detail = {n: (o, d) for n, o, d in hw.self_test(wait_s=0)}["scale paper"]
        assert not ok and "E422" in detail and "saturated" in detail


def test_service_reset_clears_the_bins_flags_and_names_what_it_did(tmp_path, mock_factory):
    from kiosk.commands import ServiceAction
    from kiosk.errors import HardwareError

    cfg = config(tmp_path)
    with Hardware.from_config(cfg, simulation=Simulation(mock_factory, rate_hz=50), release_delay_s=0.05) as hw:
        done = hw.service(ServiceAction.RESET, "paper")
        assert done.startswith("paper: ") and "full flag cleared" in done and "lockout cleared" in done
        with pytest.raises(HardwareError, match="choose a bin first"):
            hw.service(ServiceAction.RESET, None)


def test_a_full_bin_reaches_the_event_log_and_stats(tmp_path, mock_factory):
    """ScaleBank events (full, emptied...) go through main's recorder into the log ``kiosk stats`` reads."""
    from kiosk.appliance.eventdb import eventlog_path
    from kiosk.appliance.eventlog import EventLog
    from kiosk.appliance.stats import compute
    from kiosk.main import bin_event_recorder

    cfg = config(tmp_path)
    with EventLog(eventlog_path(cfg.data_dir)) as log, Hardware.from_config(
            cfg, simulation=Simulation(mock_factory, rate_hz=50), release_delay_s=0.05,
            on_event=bin_event_recorder(log)) as hw:
        assert wait_for(lambda: hw.scales.reading("paper").stable, 5.0)
        hw.simulation.models["paper"].grams = 1100.0  # over capacity_kg 1.0
        assert wait_for(lambda: (hw.poll(), "paper" in hw.refused_bins())[1], 6.0)
    events = compute(eventlog_path(cfg.data_dir)).bin_events
    assert events[("paper", "full")] == 1 and set(events) <= {("paper", "full"), ("paper", "near_full")}


def test_tare_on_a_chip_that_never_answers_fails_fast_under_its_own_code(tmp_path, capsys):
    """Mock pins, no simulated chip: the reader declares E421 and tare says so, not after the whole wait."""
    import time

    from tests.fakes import dump_yaml

    bins = [BINS[0], dict(BINS[0], id="glass", flap=None,
                          scale={"type": "hx711", "data_pin": 22, "clock_pin": 23, "drop_min_g": 5})]
    cfg = tmp_path / "config.yaml"
    cfg.write_text(dump_yaml(minimal_config_dict(str(tmp_path / "data"), bins)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--config")
    hardware_cli.register(ap.add_subparsers(dest="command"))
    args = ap.parse_args(["--config", str(cfg), "scale", "tare", "--timeout", "60"])
    t0 = time.monotonic()
    with pytest.raises(KioskError) as e:
        args.func(args)
    assert time.monotonic() - t0 < 30  # not the 60 s wait per bin
    assert e.value.code == "E421" and "not tared: paper, glass" in str(e.value)
    lines = [x for x in capsys.readouterr().err.splitlines() if "not tared" in x]
    assert [x.split()[:4] for x in lines] == [["paper:", "not", "tared", "[E421]"], ["glass:", "not", "tared", "[E421]"]]
    assert all(len(x) < 250 for x in lines), lines


def test_lockouts_and_full_flags_survive_a_restart_and_kiosk_flaps_reset_clears_them_live(tmp_path, capsys):
    from kiosk.devices.holds import HoldStore, holds_path

    cfg = config(tmp_path)
    store_path = holds_path(cfg.data_dir, simulated=True)
    with Hardware.from_config(cfg, simulation=Simulation(rate_hz=50), release_delay_s=0.05) as hw:
        assert wait_for(lambda: hw.scales.reading("paper").stable, 5.0)
        hw.flaps.lock_out("glass", "flap jammed (test)")
        hw.simulation.models["paper"].grams = 1100.0  # over capacity_kg 1.0
        assert wait_for(lambda: (hw.poll(), HoldStore(store_path).load().bins() == {"glass", "paper"})[1], 8.0)
    with Hardware.from_config(cfg, simulation=Simulation(rate_hz=50), release_delay_s=0.05) as hw:  # a restart
        assert {"glass", "paper"} <= hw.refused_bins()  # at once, before the scale has weighed anything
        (f,) = [f for f in hw.faults() if f.part == "flap:glass"]
        assert f.code == "E410" and "before the restart" in f.message
        assert cli(tmp_path, "flaps", "reset", "glass", "--simulate") == 0  # while the kiosk runs
        assert "glass: flap lockout cleared" in capsys.readouterr().out
        assert cli(tmp_path, "flaps", "reset", "paper", "--simulate") == 0
        assert "paper: full flag cleared" in capsys.readouterr().out
        assert wait_for(lambda: (hw.poll(), not {"glass", "paper"} & hw.refused_bins())[1], 5.0)
    assert HoldStore(store_path).load().bins() == set()
    assert cli(tmp_path, "flaps", "reset", "glass", "--simulate") == 0
    assert "glass: nothing to reset" in capsys.readouterr().out
    assert not holds_path(cfg.data_dir).exists()  # the simulated kiosk never touched the real file
