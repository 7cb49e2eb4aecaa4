"""Replays of the attack pass (issue "Hardening round 2"), one section per finding.

Each test is the attack as it was made, run against the kiosk as it is now:
it failed before the fix. Findings replayed elsewhere are named where they
live (``ATTACKS`` at the bottom), so ``pytest tests/test_attacks.py`` plus
those files re-measures the whole list.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from kiosk.cli import main as cli_main
from tests.conftest_hardware import minimal_config_dict
from tests.fakes import dump_yaml

# ---------------------------------------------------------------------------
# 2. The crash guard depended on the config validating
# ---------------------------------------------------------------------------
FLAP_BINS = [
    {"id": "paper", "name": {"en": "Paper"}, "colour": "#0000ff", "flap": {"type": "servo", "pin": 12}},
    {"id": "glass", "name": {"en": "Glass"}, "colour": "#00ff00", "flap": {"type": "output", "pin": 6}},
]
CLOSED_DUTY = 1.0 / 20.0  # a 1.0 ms pulse every 20 ms: the servo's closed position
OPEN_DUTY = 2.0 / 20.0


@pytest.fixture
def mock_pins(monkeypatch):
    """Every MockFactory close-all makes, kept so the test can read what its pins were driven to."""
    from kiosk.devices import pins

    made, real = [], pins._mock_factory

    def keep():
        made.append(real())
        return made[-1]

    monkeypatch.setattr(pins, "_mock_factory", keep)
    return made


def driven(factories, bcm: int) -> list:
    """Every state GPIO``bcm`` was set to, by any factory, in order."""
    return [s.state for f in factories for info, pin in f.pins.items() if bcm in info.names for s in pin.states]


def kiosk_config(tmp_path, monkeypatch, bins=FLAP_BINS):
    """A valid config that the unit's commands find by themselves (KIOSK_CONFIG, no --config)."""
    path = tmp_path / "kiosk.yaml"
    path.write_text(dump_yaml(minimal_config_dict(str(tmp_path / "data"), bins)))
    monkeypatch.setenv("KIOSK_CONFIG", str(path))
    return path


def last_good_start(tmp_path, path):
    """What `kiosk run` does with a valid config before it drives a pin: keep the flap pins in /run/kiosk."""
    from kiosk.config import load_config
    from kiosk.devices.pinmap import save_last_good

    (tmp_path / "run").mkdir(exist_ok=True)  # systemd's RuntimeDirectory= (conftest points $RUNTIME_DIRECTORY here)
    assert save_last_good(load_config(path, check_model=False)) == tmp_path / "run" / "flap-pins.json"


BREAKAGES = {
    "typo": lambda d: d["ui"].update(langauges=["en"]),
    "duplicate pin": lambda d: d["bins"][1]["flap"].update(pin=12),
    "missing model": lambda d: d.update(model={"path": "/nowhere/model.onnx"}),
    "not YAML any more": None,
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_close_all_drives_the_last_good_pins_whatever_the_config_became(tmp_path, monkeypatch, mock_pins, capsys,
                                                                        breakage):
    path = kiosk_config(tmp_path, monkeypatch)
    last_good_start(tmp_path, path)
    data = minimal_config_dict(str(tmp_path / "data"), json.loads(json.dumps(FLAP_BINS)))
    if BREAKAGES[breakage] is None:
        path.write_text("bins: [\n  - {id: paper,\n")
    else:
        BREAKAGES[breakage](data)
        path.write_text(dump_yaml(data))
    assert cli_main(["flaps", "close-all"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "closed and released: paper, glass (pins from the last good start" in out
    assert driven(mock_pins, 6)[-1] in (0, False)  # glass: the output driven low (closed)
    paper = driven(mock_pins, 12)
    assert any(d == pytest.approx(CLOSED_DUTY, abs=1e-3) for d in paper), paper  # the servo's closed pulse...
    assert not any(d == pytest.approx(OPEN_DUTY, abs=1e-3) for d in paper) and paper[-1] == 0  # ...then released


def test_without_a_kept_map_close_all_reads_only_the_flap_sections(tmp_path, monkeypatch, mock_pins, capsys):
    """No /run/kiosk (first start never got that far): the file's flaps, the rest of the file ignored."""
    path = kiosk_config(tmp_path, monkeypatch)
    data = minimal_config_dict(str(tmp_path / "data"), json.loads(json.dumps(FLAP_BINS)))
    data["ui"]["langauges"] = ["en"]
    data["model"] = {"path": "/nowhere/model.onnx"}
    data["bins"][0]["scale"] = {"type": "hx711", "data_pin": 40}  # a broken scale is not close-all's business
    path.write_text(dump_yaml(data))
    assert cli_main(["flaps", "close-all"]) == 0, capsys.readouterr().err
    assert "closed and released: paper, glass (pins from the flap sections of" in capsys.readouterr().out
    assert driven(mock_pins, 6)[-1] in (0, False)


def test_a_broken_flap_section_does_not_stop_the_others_closing(tmp_path, monkeypatch, mock_pins, capsys):
    bins = json.loads(json.dumps(FLAP_BINS)) + [
        {"id": "metal", "name": {"en": "Metal"}, "colour": "#ff0000", "flap": {"type": "output", "pin": 99}},
        {"id": "trash", "name": {"en": "Trash"}, "colour": "#ff00ff", "flap": {"type": "output", "pin": 6}},
    ]
    kiosk_config(tmp_path, monkeypatch, bins)
    assert cli_main(["flaps", "close-all"]) == 1
    out, err = capsys.readouterr()
    assert "closed and released: paper, glass" in out
    assert "bins[metal].flap: pin: Input should be less than or equal to 27" in err
    assert "bins[trash].flap: GPIO6 is already bin glass's: not driven" in err
    assert driven(mock_pins, 6)[-1] in (0, False)


@pytest.mark.parametrize("damage", [b"{not json", b"[]", b'{"version": 1, "flaps": [{"bin": "x", "flap": {"pin": -1}}]}',
                                    b" " * (70 * 1024)])
def test_a_damaged_pin_map_falls_back_to_the_config_file(tmp_path, monkeypatch, mock_pins, capsys, damage):
    path = kiosk_config(tmp_path, monkeypatch)
    last_good_start(tmp_path, path)
    (tmp_path / "run" / "flap-pins.json").write_bytes(damage)
    assert cli_main(["flaps", "close-all"]) == 0
    out, err = capsys.readouterr()
    assert "the kept flap pins are damaged" in err and "E100" in err
    assert "(pins from the flap sections of" in out


def test_kiosk_run_keeps_the_pin_map_and_close_all_uses_it_after_a_kill(tmp_path, config_dict, scene_model):
    """The whole path as systemd runs it: `kiosk run`, config broken meanwhile, SIGKILL, ExecStopPost."""
    import subprocess
    import sys

    from tests.test_cli import kiosk_env, start, wait_for, write_config

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config_dict["gpio"]["pin_factory"] = "mock"
    path = write_config(tmp_path, config_dict, scene_model)
    env = dict(kiosk_env(tmp_path), RUNTIME_DIRECTORY=str(run_dir), KIOSK_CONFIG=str(path))
    proc = start(tmp_path, "run", "--config", str(path))
    try:
        log = wait_for(proc, "UI 800x480", timeout=60)
        assert "UI 800x480" in log, log
        kept = json.loads((run_dir / "flap-pins.json").read_text())
        assert [f["flap"]["pin"] for f in kept["flaps"]] == [b["flap"]["pin"] for b in config_dict["bins"]]
        path.write_text(path.read_text().replace("bins:", "binz:"))  # a technician's slip while it runs
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    r = subprocess.run([sys.executable, "-m", "kiosk.cli", "flaps", "close-all"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"closed and released: {', '.join(b['id'] for b in config_dict['bins'])} (pins from the last good start" \
        in r.stdout


# ---------------------------------------------------------------------------
# 3. The card was not bound to the model
# ---------------------------------------------------------------------------
def _edit_card(model, edit):
    card_file = model.with_suffix(".json")
    card = json.loads(card_file.read_text())
    edit(card)
    card_file.write_text(json.dumps(card))


CARD_EDITS = {
    "two class names swapped": lambda c: c["classes"].__setitem__(slice(0, 2), c["classes"][1::-1]),
    "normalisation changed": lambda c: c["input"].update(mean=[0.0, 0.0, 0.0]),
    "CLAHE switched off": lambda c: c["clahe"].update(enabled=False),
    "logits called probabilities": lambda c: c.update(output="probabilities"),
}


@pytest.mark.parametrize("edit", list(CARD_EDITS))
def test_a_card_edited_after_export_is_refused_everywhere(tmp_path, tiny_model, config_dict, capsys, edit):
    """Swap glass and cardboard in the card: hashes all match, yet the kiosk must refuse (run, check-config, doctor)."""
    from kiosk.appliance.doctor import check_model
    from kiosk.classifier import OnnxClassifier
    from kiosk.config import load_config
    from kiosk.errors import ModelError
    from tests.test_cli import write_config

    path = write_config(tmp_path, config_dict, tiny_model)
    assert cli_main(["check-config", str(path)]) == 0 and capsys.readouterr().out.strip() == "OK"
    _edit_card(tiny_model, CARD_EDITS[edit])
    with pytest.raises(ModelError, match="does not match tiny.onnx"):
        OnnxClassifier(tiny_model)
    assert cli_main(["check-config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "model.path: [E300] model card tiny.json does not match tiny.onnx" in out and "OK" not in out
    with pytest.raises(ModelError):  # doctor's model row: a FAIL
        check_model(load_config(path))


def test_check_config_checks_the_models_hash_as_run_does(tmp_path, tiny_model, config_dict, capsys):
    from tests.test_cli import write_config

    path = write_config(tmp_path, config_dict, tiny_model)
    data = bytearray(tiny_model.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    tiny_model.write_bytes(bytes(data))
    assert cli_main(["check-config", str(path)]) == 1
    assert "does not match its card: sha256" in capsys.readouterr().out


def test_binding_an_old_model_needs_a_card_that_vouches_for_it(tiny_model, capsys):
    from kiosk.model import binding

    assert binding.main([str(tiny_model)]) == 0  # rebinding a good pair: still loads
    from kiosk.classifier import OnnxClassifier

    OnnxClassifier(tiny_model).close()
    tiny_model.write_bytes(tiny_model.read_bytes() + b"\0")
    assert binding.main([str(tiny_model)]) == 1
    assert "not bound" in capsys.readouterr().err


def test_the_shipped_model_is_bound_to_its_card(repo):
    import onnxruntime as ort

    from kiosk.classifier import ModelCard, card_path
    from kiosk.model.binding import differences

    model = repo / "models" / "kiosk-lite0-int8.onnx"
    meta = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert differences(meta, ModelCard.load(card_path(model)).meaning()) == []


# ---------------------------------------------------------------------------
# 9 (part). A card's CLAHE tile_grid of 0 killed the process with SIGFPE
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("tile_grid", [0, -3, 10**9])
def test_a_cards_clahe_grid_is_bounded_before_opencv_sees_it(tiny_model, tile_grid):
    from kiosk.classifier import ModelCard, card_path
    from kiosk.errors import ModelError

    _edit_card(tiny_model, lambda c: c["clahe"].update(tile_grid=tile_grid))
    with pytest.raises(ModelError, match="clahe.tile_grid"):
        ModelCard.load(card_path(tiny_model))


def test_clahe_with_a_zero_grid_is_an_exception_not_a_dead_process():
    """Settings built around the schema (a script, a future caller) must not reach OpenCV's division by zero."""
    import numpy as np

    from kiosk.preprocess import ClaheSettings, apply_clahe

    with pytest.raises(ValueError, match="tile_grid >= 1"):
        apply_clahe(np.zeros((32, 32, 3), np.uint8), ClaheSettings(tile_grid=0))


# ---------------------------------------------------------------------------
# 4. Event-log failures were invisible and not recovered
# ---------------------------------------------------------------------------
def _log_worker(cfg_with, eventlog):
    from tests.fakes import FakeHardware
    from tests.test_main import unsure_worker

    return unsure_worker(cfg_with, FakeHardware(), eventlog=eventlog)


def _rows(path, table="service"):
    import sqlite3

    with sqlite3.connect(str(path)) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_a_full_disk_is_a_warning_on_screen_and_in_status(tmp_path, cfg_with):
    """Disk full: 389 of 400 decisions went unlogged with nothing shown. Now E501, until writing works again."""
    from kiosk.appliance.eventlog import EventLog
    from kiosk.appliance.sdnotify import describe

    log = EventLog(tmp_path / "events.db")
    w = _log_worker(cfg_with, log)
    w.step()
    assert w.view().faults == ()
    pages = log._conn.execute("PRAGMA page_count").fetchone()[0]
    log._conn.execute(f"PRAGMA max_page_count = {pages}")  # the data partition is full
    for i in range(40):
        log.record_service("tare", "x" * 5000)
    w.step()
    (fault,) = w.view().faults
    assert fault.code == "E501" and fault.message.startswith("40 events not recorded since") and not fault.blocking
    assert "E501 eventlog" in describe(w.view())  # systemctl status's STATUS= line
    assert w.view().screen != "out_of_service"  # it sorts on: only the records suffer
    log._conn.execute("PRAGMA max_page_count = 1000000")  # space freed
    assert log.record_service("tare") is not None
    w.step()
    assert w.view().faults == ()
    log.close()


def test_damaged_pages_are_moved_aside_and_writing_goes_on(tmp_path, cfg_with):
    """Corrupt pages made every write fail "malformed". Now the file is kept aside, a fresh one takes the writes."""
    import os

    from kiosk.appliance.eventlog import EventLog

    path = tmp_path / "events.db"
    log = EventLog(path)
    w = _log_worker(cfg_with, log)
    for i in range(200):
        log.record_service("x", "y" * 200)
    log._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(path, "r+b") as f:
        f.seek(4096)
        f.write(os.urandom(path.stat().st_size - 4096))
    log._conn.execute("PRAGMA shrink_memory")  # what any other reader's write would do: read the pages again
    assert [log.record_service("after", str(i)) for i in range(3)] == [1, 2, 3]  # nothing lost after the damage
    w.step()
    (fault,) = w.view().faults
    assert fault.code == "E502" and "damaged" in fault.message
    assert len(list(tmp_path.glob("events.db.damaged-*"))) == 1
    log.close()
    assert _rows(path) == 3 and _rows(path, "faults") == 1  # the fault is in the fresh log too (kiosk stats)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_deleted_or_replaced_log_is_noticed_and_reopened(tmp_path, how):
    """10 acknowledged events went into an unlinked file and were gone. Now the next write notices and reopens."""
    import os
    import sqlite3

    from kiosk.appliance.eventlog import EventLog

    path = tmp_path / "events.db"
    log = EventLog(path)
    for i in range(10):
        log.record_service("before", str(i))
    if how == "deleted":
        for p in tmp_path.glob("events.db*"):
            p.unlink()
    else:
        other = tmp_path / "other.db"
        sqlite3.connect(str(other)).close()
        os.replace(other, path)
    ids = [log.record_service("after", str(i)) for i in range(10)]
    assert all(ids)
    (fault,) = log.faults()
    assert fault.code == "E502" and how in fault.message
    log.close()
    assert _rows(path) == 10  # every event acknowledged after the deletion is in the file at the path


def test_damage_found_at_start_by_quick_check(tmp_path):
    import os

    from kiosk.appliance.eventlog import EventLog

    path = tmp_path / "events.db"
    with EventLog(path) as log:
        for i in range(300):
            log.record_service("x", "y" * 300)
    with open(path, "r+b") as f:
        f.seek(8192)
        f.write(os.urandom(4096 * 4))
    with EventLog(path) as log:
        (fault,) = log.faults()
        assert fault.code == "E502" and ("quick_check" in fault.message or "malformed" in fault.message)
        assert log.record_service("start") == 1


def test_a_log_that_did_not_open_stays_on_screen(cfg_with):
    from kiosk.appliance.eventlog import NullEventLog
    from kiosk.faults import Fault, PartKind

    w = _log_worker(cfg_with, NullEventLog(failed=Fault("E500", PartKind.EVENTLOG, "event log cannot be opened")))
    for _ in range(3):
        w.step()
    assert [f.code for f in w.view().faults] == ["E500"]


# ---------------------------------------------------------------------------
# 9 (part). Pruning trusted the wall clock
# ---------------------------------------------------------------------------
def test_a_clock_far_ahead_prunes_nothing(tmp_path):
    """A clock 400 days ahead deleted the whole log as "old". Now: kept until NTP confirms the clock."""
    from kiosk.appliance.eventlog import EventLog

    now = [1_760_000_000.0]
    path = tmp_path / "events.db"
    with EventLog(path, retention_days=90, clock=lambda: now[0]) as log:
        for i in range(20):
            log.record_service("x", str(i))
    now[0] += 400 * 86400
    no_ntp = tmp_path / "timesync"
    no_ntp.mkdir()
    with EventLog(path, retention_days=90, clock=lambda: now[0], timesync_dir=no_ntp):
        pass
    assert _rows(path) == 20
    (no_ntp / "synchronized").touch()  # NTP answered: the clock is right, the events are old
    with EventLog(path, retention_days=90, clock=lambda: now[0], timesync_dir=no_ntp):
        pass
    assert _rows(path) == 0


def test_an_unset_clock_prunes_nothing(tmp_path):
    from kiosk.appliance.eventlog import EventLog

    path = tmp_path / "events.db"
    with EventLog(path, clock=lambda: 1_760_000_000.0) as log:
        log.record_service("x")
    with EventLog(path, retention_days=1, clock=lambda: 86400.0 * 3):  # 1970: no RTC, no NTP yet
        pass
    assert _rows(path) == 1


def test_doctor_reads_the_log_back_and_names_damaged_ones_kept_aside(tmp_path, config_dict, tiny_model, capsys):
    import os

    from kiosk.appliance.eventlog import EventLog
    from tests.test_doctor import rows, write

    path = write(tmp_path, config_dict, tiny_model)
    db = tmp_path / "data" / "events.db"
    with EventLog(db) as log:
        for i in range(300):
            log.record_service("x", "y" * 300)
    cli_main(["doctor", "--config", str(path)])
    out = capsys.readouterr().out
    assert rows(out)["eventlog"] == "PASS" and "quick_check ok" in out
    with open(db, "r+b") as f:
        f.seek(8192)
        f.write(os.urandom(4096 * 4))
    assert cli_main(["doctor", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert rows(out)["eventlog"] == "FAIL" and "damaged" in out
    EventLog(db).close()  # the kiosk's next start moves it aside
    cli_main(["doctor", "--config", str(path)])
    out = capsys.readouterr().out
    assert rows(out)["eventlog"] == "PASS" and "E502: 1 damaged log(s) kept aside" in out


# ---------------------------------------------------------------------------
# 9 (part). doctor did not check that /var/lib/kiosk is the data partition
# ---------------------------------------------------------------------------
def test_doctor_checks_the_data_folder_is_its_own_partition(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from kiosk.appliance import doctor

    monkeypatch.setattr(doctor, "DATA_PARTITION", tmp_path / "lib" / "kiosk")
    (tmp_path / "lib" / "kiosk").mkdir(parents=True)
    ok, detail = doctor.check_data_partition(SimpleNamespace(data_dir=tmp_path / "lib" / "kiosk"))
    assert ok is False and "not a mounted partition" in detail  # a folder on the root: lost at reboot
    ok, _ = doctor.check_data_partition(SimpleNamespace(data_dir=tmp_path / "elsewhere"))
    assert ok is None  # a desktop's data folder: not the image's layout
    monkeypatch.setattr(doctor, "DATA_PARTITION", Path("/proc"))  # a mount point every Linux has
    ok, detail = doctor.check_data_partition(SimpleNamespace(data_dir=Path("/proc")))
    assert ok is True, detail


# ---------------------------------------------------------------------------
# 6 (rest). Crafted data files crashed start-up; error excerpts were unbounded
# ---------------------------------------------------------------------------
CRAFTED_JSON = {
    "100k nested [": "[" * 100_000,
    "100k nested {": '{"a":' * 100_000,
    "2 MB of spaces": " " * (2 << 20),
    "not UTF-8": b"\xff\xfe{}",
}


def _write(path, content):
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize("craft", list(CRAFTED_JSON))
def test_crafted_calibration_is_a_calibration_error(tmp_path, craft):
    import time

    from kiosk.weighing.calibration import Calibration, CalibrationError

    path = _write(tmp_path / "calibration.json", CRAFTED_JSON[craft])
    t = time.perf_counter()
    with pytest.raises(CalibrationError) as e:
        Calibration.load(path)
    assert e.value.code == "E430" and len(str(e.value)) < 300
    assert time.perf_counter() - t < 5  # generous: it is milliseconds


@pytest.mark.parametrize("craft", list(CRAFTED_JSON))
def test_crafted_card_pin_map_and_holds_are_refused_not_fatal(tmp_path, tiny_model, craft):
    from kiosk.classifier import ModelCard, card_path
    from kiosk.devices.holds import HoldStore
    from kiosk.devices.pinmap import load_last_good
    from kiosk.errors import ConfigError, ModelError

    _write(card_path(tiny_model), CRAFTED_JSON[craft])
    with pytest.raises(ModelError):
        ModelCard.load(card_path(tiny_model))
    with pytest.raises(ConfigError, match="damaged"):
        load_last_good(_write(tmp_path / "flap-pins.json", CRAFTED_JSON[craft]))
    holds = HoldStore(_write(tmp_path / "bin-holds.json", CRAFTED_JSON[craft])).load()
    assert not holds.locked_out and not holds.full  # logged; the start-up switch check still finds a jam


def test_error_messages_quote_a_bounded_excerpt(tmp_path):
    """A megabyte value in a typed field must not become a megabyte message on the screen and in the journal."""
    from kiosk.config import parse_config
    from kiosk.errors import ConfigError
    from kiosk.weighing.calibration import Calibration, CalibrationError

    huge = "x" * 1_000_000
    data = minimal_config_dict(str(tmp_path), json.loads(json.dumps(FLAP_BINS)))
    data["ui"]["fps"] = huge
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    assert "ui.fps" in str(e.value) and len(str(e.value)) < 300
    for bad in ({"version": huge, "bins": {}}, {"version": 1, "bins": {"a": {"offset": huge}}}, {"version": 1, "bins": {"a": {"offset": 1, "gain": huge}}},
                {"version": 1, "bins": {"a": {"offset": 1, huge: 1}}}):
        with pytest.raises(CalibrationError) as e:
            Calibration.load(_write(tmp_path / "calibration.json", json.dumps(bad)))
        assert len(str(e.value)) < 300, str(e.value)[:200]


# ---------------------------------------------------------------------------
# 7. A bad hash field crashed the pad; 8. the PIN resisted little
# ---------------------------------------------------------------------------
class _Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def _pad(tmp_path, clock, wall, pin="246813", **kw):
    from kiosk.config import hash_pin
    from kiosk.screens.pin import PinPad, PinTries

    pad = PinPad(hash_pin(pin, iterations=1000) if pin else None, clock,
                 tries=PinTries(tmp_path / "pin-tries.json", wall=wall), **kw)
    pad.open()
    return pad


def _enter(pad, digits):
    for d in [*digits, "ok"]:
        ok = pad.press(d)
    return ok


@pytest.mark.parametrize("iterations", ["99999999999999999999", "2000000000"])
def test_a_hash_file_with_absurd_iterations_never_reaches_the_pad(tmp_path, iterations):
    """`$99999999999999999999$` raised OverflowError out of the UI loop; `$2000000000$` froze it for 12 min."""
    import time

    from kiosk.config import hash_pin

    bad = tmp_path / "service-pin"
    bad.write_text(hash_pin("246813", iterations=1000).replace("$1000$", f"${iterations}$"))
    clock = _Clock()
    pad = _pad(tmp_path, clock, clock, pin=None, pin_hash_file=bad)
    t = time.perf_counter()
    assert _enter(pad, "246813") is False and pad.message == "pin_not_set"
    assert time.perf_counter() - t < 1.0


def test_the_lockout_escalates_and_survives_a_restart(tmp_path):
    from kiosk.screens.pin import LOCKOUT_S, MAX_LOCKOUT_S

    mono, wall = _Clock(), _Clock(1_760_000_000.0)
    pad = _pad(tmp_path, mono, wall)
    for _ in range(5):
        _enter(pad, "000000")
    assert pad.lock_left() == LOCKOUT_S
    mono.t += LOCKOUT_S
    wall.t += LOCKOUT_S
    for _ in range(5):
        _enter(pad, "000000")
    assert pad.lock_left() == 2 * LOCKOUT_S  # doubles
    wall.t += 10
    again = _pad(tmp_path, _Clock(5.0), wall)  # a restart (or a power cut): a new process, a new monotonic clock
    assert again.lock_left() == 2 * LOCKOUT_S - 10 and _enter(again, "246813") is False
    wall.t -= 10 ** 6  # a clock set back cannot stretch the lockout past its own length
    assert _pad(tmp_path, _Clock(), wall).lock_left() <= 2 * LOCKOUT_S
    wall.t += 10 ** 6 + 2 * LOCKOUT_S
    last = _pad(tmp_path, _Clock(), wall)
    assert last.lock_left() == 0 and _enter(last, "246813") is True
    assert _pad(tmp_path, _Clock(), wall).tries == 0  # the right PIN clears the count
    # the cap: five guesses an hour at most, however long it goes on
    pad = _pad(tmp_path, mono, wall)
    for _ in range(100):
        _enter(pad, "000000")
        mono.t += pad.lock_left()
    assert pad.lock_left() == 0
    for _ in range(5):
        _enter(pad, "000000")
    assert pad.lock_left() == MAX_LOCKOUT_S


def test_a_damaged_tries_file_starts_the_pad_locked_not_fresh(tmp_path):
    (tmp_path / "pin-tries.json").write_text("[" * 100_000)
    clock = _Clock()
    assert _pad(tmp_path, clock, clock).lock_left() > 0


def test_wrong_pins_are_in_the_event_log_and_in_stats(tmp_path, cfg_with):
    from kiosk.appliance.eventlog import EventLog
    from kiosk.appliance.stats import compute, render
    from kiosk.commands import PinChecked

    db = tmp_path / "events.db"
    log = EventLog(db)
    w = _log_worker(cfg_with, log)
    clock = _Clock()
    pad = _pad(tmp_path, clock, clock)
    for _ in range(7):
        _enter(pad, "000000")
        clock.t += pad.lock_left()
    for a in pad.attempts:
        w.post(PinChecked(a.ok, a.describe()))
    w.step()
    log.close()
    stats = compute(db)
    assert sum(stats.wrong_pins.values()) == 7 and stats.pin_lockouts == 1
    assert "Wrong service PINs (1 lockouts)" in render(stats)


def test_new_pins_have_six_digits_at_least_and_the_hash_can_live_apart(tmp_path, capsys):
    import stat

    from kiosk.config import hash_pin, verify_pin

    for short in ("1234", "12345"):
        with pytest.raises(ValueError):
            hash_pin(short)
    target = tmp_path / "data" / "service-pin"
    assert cli_main(["hash-pin", "--pin", "246813", "--save", str(target)]) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert verify_pin("246813", target.read_text().strip())
    clock = _Clock()
    pad = _pad(tmp_path, clock, clock, pin=None, pin_hash_file=target)
    assert pad.configured and _enter(pad, "246813") is True


def test_check_config_and_doctor_check_the_pin_file(tmp_path, config_dict, tiny_model, capsys):
    from kiosk.appliance.doctor import check_service_pin
    from kiosk.config import load_config
    from tests.test_cli import write_config

    pin_file = tmp_path / "service-pin"
    config_dict["service"] = {"pin_hash_file": str(pin_file)}
    path = write_config(tmp_path, config_dict, tiny_model)
    assert cli_main(["check-config", str(path)]) == 0
    assert f"service.pin_hash_file {pin_file} is not on this machine" in capsys.readouterr().out
    pin_file.write_text("1234\n")  # a plain PIN pasted in
    assert cli_main(["check-config", str(path)]) == 1
    assert "service.pin_hash_file" in capsys.readouterr().out
    assert cli_main(["hash-pin", "--pin", "246813", "--save", str(pin_file)]) == 0
    assert cli_main(["check-config", str(path)]) == 0
    assert check_service_pin(load_config(path))[0] is True
    pin_file.chmod(0o644)
    ok, detail = check_service_pin(load_config(path))
    assert ok is False and "others can read the hash" in detail


# ---------------------------------------------------------------------------
# 9 (part). While the UI hung, the worker kept opening flaps behind a frozen screen
# ---------------------------------------------------------------------------
def test_no_flap_opens_behind_a_screen_that_stopped_drawing(cfg_with, scene_model):
    from kiosk.devices.synthetic_camera import SyntheticScene
    from kiosk.worker import SCREEN_STALL_S
    from tests.fakes import FakeHardware
    from tests.test_main import FPS, make_worker

    cfg = cfg_with({"camera.backend": "synthetic"}, model=scene_model)
    clock = _Clock()
    hw = FakeHardware()
    w = make_worker(cfg, scene_model, hardware=hw, clock=clock)
    scene = SyntheticScene(tuple(cfg.camera.size), seed=cfg.camera.seed)
    w.screen_drawn()
    clock.t += SCREEN_STALL_S + 1  # the UI thread is stuck from here on
    for _ in range(int(scene.period * 2 * FPS)):
        w.step()
        clock.t += 1 / FPS
    assert not [x for x in hw.log if x[0] == "open"], hw.log
    for _ in range(int(scene.period * 2 * FPS)):  # it draws again: sorting goes on
        w.screen_drawn()
        w.step()
        clock.t += 1 / FPS
    assert [x for x in hw.log if x[0] == "open"]


# ---------------------------------------------------------------------------
# Where each finding is replayed (here, or in the file of the part it hit)
# ---------------------------------------------------------------------------
ATTACKS = {
    "1 root chowns through a planted symlink": ["tests/test_files.py::test_root_never_chowns_through_a_planted_symlink",
                                                "tests/test_stats.py::test_reading_as_root_leaves_the_log_usable_by_its_owner"],
    "2 crash guard needs a valid config": ["tests/test_attacks.py::test_close_all_drives_the_last_good_pins_whatever_the_config_became",
                                           "tests/test_attacks.py::test_kiosk_run_keeps_the_pin_map_and_close_all_uses_it_after_a_kill"],
    "3 card not bound to the model": ["tests/test_attacks.py::test_a_card_edited_after_export_is_refused_everywhere",
                                      "tests/test_attacks.py::test_check_config_checks_the_models_hash_as_run_does"],
    "4 event-log failures invisible": ["tests/test_attacks.py::test_a_full_disk_is_a_warning_on_screen_and_in_status",
                                       "tests/test_attacks.py::test_damaged_pages_are_moved_aside_and_writing_goes_on",
                                       "tests/test_attacks.py::test_a_deleted_or_replaced_log_is_noticed_and_reopened",
                                       "tests/test_attacks.py::test_damage_found_at_start_by_quick_check"],
    "5 root-run calibrate breaks the kiosk": ["tests/test_files.py::test_a_rewritten_file_keeps_the_kiosk_users_owner_and_mode",
                                              "tests/test_files.py::test_a_new_file_takes_the_folders_owner_and_is_readable"],
    "6 crafted files stall start-up": ["tests/test_configfile.py::test_an_alias_bomb_is_refused_before_it_expands",
                                       "tests/test_configfile.py::test_a_second_section_of_the_same_name_is_refused",
                                       "tests/test_configfile.py::test_deep_nesting_is_a_config_error_not_a_crash",
                                       "tests/test_configfile.py::test_a_huge_file_is_refused_without_reading_it",
                                       "tests/test_attacks.py::test_crafted_calibration_is_a_calibration_error",
                                       "tests/test_attacks.py::test_error_messages_quote_a_bounded_excerpt"],
    "7 a bad hash field crashes the pad": [
        "tests/test_config.py::test_a_pin_hash_with_an_unbounded_iteration_count_is_a_config_error",
        "tests/test_attacks.py::test_a_hash_file_with_absurd_iterations_never_reaches_the_pad",
        "tests/test_attacks.py::test_a_failing_touch_handler_never_stops_the_kiosk"],
    "8 the PIN resists little": ["tests/test_attacks.py::test_the_lockout_escalates_and_survives_a_restart",
                                 "tests/test_attacks.py::test_wrong_pins_are_in_the_event_log_and_in_stats",
                                 "tests/test_attacks.py::test_new_pins_have_six_digits_at_least_and_the_hash_can_live_apart"],
    "9 lower": ["tests/test_attacks.py::test_a_clock_far_ahead_prunes_nothing",
                "tests/test_attacks.py::test_doctor_checks_the_data_folder_is_its_own_partition",
                "tests/test_deploy.py::test_the_apps_own_hang_exit_comes_before_the_watchdogs_kill",
                "tests/test_attacks.py::test_no_flap_opens_behind_a_screen_that_stopped_drawing",
                "tests/test_attacks.py::test_a_cards_clahe_grid_is_bounded_before_opencv_sees_it"],
}


def test_every_finding_has_replays_that_exist(repo):
    """The map above is how the list is re-measured: a renamed or deleted replay must show here."""
    import ast

    for finding, replays in ATTACKS.items():
        assert replays, finding
        for ref in replays:
            path, name = ref.split("::")
            tree = ast.parse((repo / path).read_text(encoding="utf-8"))
            names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            assert name in names, f"{finding}: {ref} is gone"


def test_a_failing_touch_handler_never_stops_the_kiosk(cfg_with, scene_model, caplog):
    """"Never let a UI action raise out of the loop": a bug behind a button is logged, the loop goes on."""
    import pygame

    from kiosk.appliance.lifecycle import StopFlag
    from kiosk.classifier import OnnxClassifier
    from kiosk.devices.synthetic_camera import SyntheticCamera
    from kiosk.main import App
    from kiosk.ui import KioskUI, open_display
    from kiosk.worker import Worker
    from tests.fakes import FakeHardware

    class BrokenUI(KioskUI):
        def handle(self, event, view):
            raise OverflowError("int too large to convert")  # what the 20-digit iteration count raised

    cfg = cfg_with({"camera.backend": "synthetic"}, model=scene_model)
    w = Worker(cfg, lambda: SyntheticCamera(cfg.camera, realtime=False).open(),
               lambda: OnnxClassifier(scene_model, threads=1), hardware=FakeHardware(), stop=StopFlag())
    surface = open_display(cfg.ui)
    try:
        ui = BrokenUI(cfg, surface.get_size())
        for i in range(5):
            pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=(10 + i, 10), touch=False))
        code = App(cfg, w, ui=ui, max_frames=30).run(surface)
    finally:
        pygame.quit()
    assert code == 0 and w.error is None
    assert caplog.text.count("touch ignored") >= 5  # each tap (and any other event) logged, none fatal
