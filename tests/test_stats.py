"""kiosk stats: counts per day, bin and class, rates, kilograms, CSV, CLI errors."""

import argparse
import csv
import datetime as dt
import io
import os
from pathlib import Path

import pytest
import yaml

from kiosk.appliance import stats_cli as appliance_cli
from kiosk.datatypes import Decision
from kiosk.appliance.eventdb import eventlog_path, read_connection
from kiosk.appliance.eventlog import EventLog
from kiosk.appliance.stats import CSV_COLUMNS, compute, render, write_csv

REPO = Path(__file__).resolve().parents[1]
DAY1, DAY2 = dt.date(2024, 5, 1), dt.date(2024, 5, 2)


def at(day, hour):
    return dt.datetime.combine(day, dt.time(hour)).timestamp()  # local time, as the kiosk sees it


class Clock:
    t = 0.0

    def __call__(self):
        return self.t


def fill(data_dir):
    clock = Clock()
    with EventLog(eventlog_path(data_dir), clock=clock) as log:
        def item(day, hour, bin_id, label, grams=None, unsure=False, corrected=False):
            clock.t = at(day, hour)
            log.record_decision(Decision(t=0, bin_id=bin_id, label=label, score=0.9, weight_g=grams, unsure=unsure,
                                         corrected=corrected, drop_confirmed=grams is not None))

        item(DAY1, 0, "glass", "glass", 300)  # just after local midnight: still day 1
        item(DAY1, 9, "glass", "glass", 250)
        item(DAY1, 10, "packaging", "plastic", 20)
        item(DAY1, 11, "paper", "cardboard", 150, unsure=True, corrected=True)
        item(DAY1, 23, None, None, unsure=True)  # unsure, nobody chose: no bin
        item(DAY2, 8, "packaging", "metal", 15)
        item(DAY2, 9, "packaging", "plastic", None)  # no weight
        clock.t = at(DAY2, 12)
        log.record_fault("E200", "camera", "no frames")
        log.record_service("tare", {"bin": "glass"})


def test_counts_rates_and_kilograms(tmp_path):
    fill(tmp_path)
    s = compute(eventlog_path(tmp_path))
    assert s.days == [DAY1, DAY2]
    assert s.items == 7
    assert s.count(day=DAY1) == 5 and s.count(day=DAY2) == 2
    assert s.count(day=DAY1, bin_id="glass") == 2
    assert s.count(bin_id="(none)") == 1
    assert s.count(label="plastic") == 2
    assert s.unsure(DAY1) == 2 and s.corrected(DAY1) == 1 and s.unsure(DAY2) == 0
    assert s.kg(bin_id="glass") == pytest.approx(0.55)
    assert s.kg(bin_id="packaging") == pytest.approx(0.035)
    assert s.kg() == pytest.approx(0.735)
    assert s.faults == {DAY2: 1}

    text = render(s, bin_order=["paper", "packaging", "glass", "residual"])
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("date") and "paper" in line)
    assert lines[head].split() == ["date", "items", "unsure", "corrected", "faults", "paper", "packaging", "glass", "residual", "(none)"]
    assert lines[head + 1].split() == ["2024-05-01", "5", "40.0%", "20.0%", "0", "1", "1", "2", "0", "1"]
    assert lines[head + 2].split() == ["2024-05-02", "2", "0.0%", "0.0%", "1", "0", "2", "0", "0", "0"]
    assert lines[head + 3].split() == ["total", "7", "28.6%", "14.3%", "1", "1", "3", "2", "0", "1"]
    kg_table = [line.split() for line in text.split("Kilograms per bin")[1].splitlines()]
    assert ["glass", "0.550"] in kg_table and ["packaging", "0.035"] in kg_table and ["total", "0.735"] in kg_table
    assert any(line.split() == ["2024-05-01", "1", "2", "0", "1", "1"] for line in lines)  # per class: cardboard glass metal plastic (none)


def test_since_keeps_later_days_only(tmp_path):
    fill(tmp_path)
    s = compute(eventlog_path(tmp_path), since=DAY2)
    assert s.days == [DAY2] and s.items == 2
    assert "since 2024-05-02" in render(s)


def test_csv(tmp_path):
    fill(tmp_path)
    buf = io.StringIO()
    n = write_csv(compute(eventlog_path(tmp_path)), buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows[0] == list(CSV_COLUMNS)
    assert n == len(rows) - 1 == 6
    assert ["2024-05-01", "glass", "glass", "2", "0", "0", "0.0000", "0.0000", "0.550"] in rows
    assert ["2024-05-01", "paper", "cardboard", "1", "1", "1", "1.0000", "1.0000", "0.150"] in rows
    assert ["2024-05-01", "(none)", "(none)", "1", "1", "0", "1.0000", "0.0000", "0.000"] in rows


def test_empty_log(tmp_path):
    EventLog(eventlog_path(tmp_path)).close()
    s = compute(eventlog_path(tmp_path))
    assert s.items == 0 and "No decisions recorded" in render(s)


# --- the CLI ------------------------------------------------------------------


def make_config(tmp_path, data_dir, **storage):
    data = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    data["storage"] = {"data_dir": str(data_dir), **storage}
    path = tmp_path / "kiosk.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="kiosk")
    parser.add_argument("--config", default="config.yaml")  # as the top-level parser does
    sub = parser.add_subparsers(dest="command", required=True)
    appliance_cli.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_table_and_csv(tmp_path, capsys):
    fill(tmp_path / "data")
    cfg = make_config(tmp_path, tmp_path / "data")
    out_csv = tmp_path / "stats.csv"
    assert run_cli(["--config", str(cfg), "stats", "--since", "2024-05-01", "--csv", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "2024-05-01" in out and "Wrote 6 rows" in out
    assert out_csv.read_text().splitlines()[0] == ",".join(CSV_COLUMNS)

    assert run_cli(["--config", str(cfg), "stats", "--csv", "-"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == ",".join(CSV_COLUMNS)  # CSV only, no table


def test_cli_bad_date(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli(["stats", "--since", "1/5/2024"])
    assert e.value.code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_cli_bad_config_names_the_key(tmp_path, capsys):
    cfg = make_config(tmp_path, tmp_path / "data", retention_days=0)
    assert run_cli(["--config", str(cfg), "stats"]) == 2
    err = capsys.readouterr().err
    assert "storage.retention_days" in err and "Traceback" not in err


def test_cli_no_log_yet_is_zeros_not_an_error(tmp_path, capsys):
    cfg = make_config(tmp_path, tmp_path / "nothing-here")
    assert run_cli(["--config", str(cfg), "stats"]) == 0  # a fresh kiosk: nothing recorded is not a failure
    out = capsys.readouterr()
    assert "0 items, 0 faults" in out.out and "No event log yet" in out.out and out.err == ""
    assert not (tmp_path / "nothing-here").exists()  # reading statistics creates nothing


def test_bin_events_are_counted_per_bin(tmp_path):
    clock = Clock()
    with EventLog(eventlog_path(tmp_path), clock=clock) as log:
        for hour, bin_id, event in [(9, "glass", "near_full"), (10, "glass", "full"), (11, "glass", "emptied"),
                                    (15, "glass", "emptied"), (12, "paper", "full_reset")]:
            clock.t = at(DAY1, hour)
            log.record_bin_event(bin_id, event, f"bin {bin_id}: {event}")
    s = compute(eventlog_path(tmp_path))
    assert s.bin_events == {("glass", "near_full"): 1, ("glass", "full"): 1, ("glass", "emptied"): 2,
                            ("paper", "full_reset"): 1}
    assert s.last_emptied["glass"].hour == 15 and "paper" not in s.last_emptied
    text = render(s, bin_order=["paper", "glass"])
    table = text.split("Bin events")[1].splitlines()
    assert table[1].split() == ["bin", "near_full", "full", "emptied", "full_reset", "last", "emptied"]
    assert table[2].split()[:2] == ["paper", "0"] and table[3].split()[:5] == ["glass", "1", "1", "2", "0"]


def test_a_version_1_log_gains_bin_events_when_opened(tmp_path):
    import sqlite3

    db = eventlog_path(tmp_path)
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE decisions (id INTEGER PRIMARY KEY, t REAL NOT NULL, label TEXT, bin_id TEXT,"
                       " score REAL NOT NULL, scores TEXT NOT NULL, corrected INTEGER NOT NULL, unsure INTEGER NOT NULL,"
                       " weight_g REAL, drop_confirmed INTEGER);"
                       "CREATE TABLE faults (id INTEGER PRIMARY KEY, t REAL NOT NULL, code TEXT NOT NULL,"
                       " part TEXT NOT NULL, message TEXT NOT NULL); PRAGMA user_version = 1;")
    conn.close()
    assert compute(db).bin_events == {}  # an old file reads without the table
    with EventLog(db) as log:
        assert log.record_bin_event("glass", "full", "bin glass is full") is not None
    assert compute(db).bin_events == {("glass", "full"): 1}


def test_cli_unwritable_csv(tmp_path, capsys):
    fill(tmp_path / "data")
    cfg = make_config(tmp_path, tmp_path / "data")
    assert run_cli(["--config", str(cfg), "stats", "--csv", str(tmp_path / "no" / "such" / "dir.csv")]) == 1
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as another user")
def test_reading_as_root_leaves_the_log_usable_by_its_owner(tmp_path):
    """`sudo kiosk stats` must not leave root-owned -wal/-shm files the kiosk cannot open."""
    db = eventlog_path(tmp_path)
    EventLog(db).close()
    os.chown(db, 4321, 4321)
    for side in ("-wal", "-shm"):
        assert not Path(str(db) + side).exists()
    with read_connection(db) as conn:
        conn.execute("SELECT COUNT(*) FROM decisions").fetchone()
    for side in ("-wal", "-shm"):
        p = Path(str(db) + side)
        if p.exists():
            assert (p.stat().st_uid, p.stat().st_gid) == (4321, 4321)


def test_wired_into_the_kiosk_command(tmp_path, capsys):
    """`kiosk stats` through the real top-level parser (kiosk.cli)."""
    from kiosk import cli

    fill(tmp_path / "data")
    cfg = make_config(tmp_path, tmp_path / "data")
    assert cli.main(["stats", "--config", str(cfg), "--since", "2024-05-02"]) == 0
    out = capsys.readouterr().out
    assert "since 2024-05-02" in out and "2024-05-01" not in out
