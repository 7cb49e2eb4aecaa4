"""Event log: what is stored, what is not, pruning, failures, and SIGKILL mid-write."""

import json
import sqlite3

import numpy as np
import pytest

from kiosk.datatypes import Decision
from kiosk.appliance.eventdb import EVENTLOG_FILE, eventlog_path
from kiosk.appliance.eventlog import EventLog, EventLogError


class Clock:
    def __init__(self, t=1_760_000_000.0):  # 2025-10: a clock that has been set
        self.t = t

    def __call__(self):
        return self.t


def rows(path, sql):
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_decision_round_trip(tmp_path):
    path = tmp_path / "data" / EVENTLOG_FILE  # the folder is made on open
    clock = Clock()
    with EventLog(path, clock=clock) as log:
        a = log.record_decision(
            Decision(t=12.5, bin_id="glass", label="glass", score=0.91, scores={"glass": 0.91, "plastic": 0.05},
                     weight_g=312.0, drop_confirmed=True)
        )
        clock.t += 60
        b = log.record_decision(
            Decision(t=99.0, bin_id="paper", label="cardboard", score=0.41, scores={"cardboard": 0.41}, corrected=True,
                     unsure=True, weight_g=None, drop_confirmed=None)
        )
        c = log.record_decision(Decision(t=100.0, bin_id=None, label=None, score=float("nan"), unsure=True, drop_confirmed=False))
    assert (a, b, c) == (1, 2, 3)
    got = rows(path, "SELECT t, label, bin_id, score, scores, corrected, unsure, weight_g, drop_confirmed FROM decisions ORDER BY id")
    assert got[0] == (Clock().t, "glass", "glass", 0.91, json.dumps({"glass": 0.91, "plastic": 0.05}, sort_keys=True), 0, 0, 312.0, 1)
    assert got[1] == (Clock().t + 60, "cardboard", "paper", 0.41, '{"cardboard": 0.41}', 1, 1, None, None)
    assert got[2] == (Clock().t + 60, None, None, 0.0, "{}", 0, 1, None, 0)
    assert eventlog_path(tmp_path / "data") == path


def test_faults_and_service_actions(tmp_path):
    with EventLog(tmp_path / "e.db", clock=Clock()) as log:
        assert log.record_fault("E200", "camera", "no frames for 5 s") == 1
        assert log.record_service("tare", {"bin": "glass", "grams": 0.4}) == 1
        assert log.record_service("flap_test") == 2
    assert rows(tmp_path / "e.db", "SELECT code, part, message FROM faults") == [("E200", "camera", "no frames for 5 s")]
    assert rows(tmp_path / "e.db", "SELECT action, detail FROM service ORDER BY id") == [
        ("tare", '{"bin": "glass", "grams": 0.4}'),
        ("flap_test", None),
    ]


def test_wal_and_full_sync(tmp_path):
    with EventLog(tmp_path / "e.db") as log:
        log.record_service("start")
        assert log._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert log.integrity_check() == "ok"
    assert rows(tmp_path / "e.db", "PRAGMA journal_mode") == [("wal",)]  # persistent, seen by every opener


IMAGE = np.zeros((24, 32, 3), np.uint8)


def test_no_images_unless_turned_on(tmp_path):
    with EventLog(tmp_path / "off.db") as log:
        log.record_decision(Decision(t=0, bin_id="paper", label="paper"), image=IMAGE)
    assert rows(tmp_path / "off.db", "SELECT COUNT(*) FROM images") == [(0,)]

    with EventLog(tmp_path / "on.db", capture_images=True) as log:
        rid = log.record_decision(Decision(t=0, bin_id="paper", label="paper"), image=IMAGE)
        log.record_decision(Decision(t=0, bin_id="paper", label="paper"))  # no image given: none stored
    (decision_id, fmt, size), = rows(tmp_path / "on.db", "SELECT decision_id, format, length(data) FROM images")
    assert decision_id == rid and fmt in ("jpeg", "npy") and size > 0


def test_prune_by_retention(tmp_path):
    clock = Clock()
    day = 86400.0
    with EventLog(tmp_path / "e.db", capture_images=True, clock=clock) as log:
        log.record_decision(Decision(t=0, bin_id="paper", label="paper"), image=IMAGE)
        log.record_fault("E400", "flap:paper", "stuck")
        log.record_service("tare")
        clock.t += 10 * day
        log.record_decision(Decision(t=0, bin_id="glass", label="glass"))
        log.record_service("calibrate")
        clock.t += 25 * day
        assert log.prune(30) == 3  # the three 35-day-old events
        assert log.prune(30) == 0
        with pytest.raises(ValueError):
            log.prune(0)
    db = tmp_path / "e.db"
    assert rows(db, "SELECT label FROM decisions") == [("glass",)]
    assert rows(db, "SELECT COUNT(*) FROM faults") == [(0,)]
    assert rows(db, "SELECT action FROM service") == [("calibrate",)]
    assert rows(db, "SELECT COUNT(*) FROM images") == [(0,)]  # went with its decision


def test_retention_prunes_by_itself(tmp_path):
    clock = Clock()
    day = 86400.0
    with EventLog(tmp_path / "e.db", clock=clock) as log:
        log.record_decision(Decision(t=0, bin_id="paper", label="paper"))
    clock.t += 40 * day  # off for longer than the retention: pruned once NTP confirms the clock
    (tmp_path / "timesync").mkdir()
    (tmp_path / "timesync" / "synchronized").touch()
    with EventLog(tmp_path / "e.db", retention_days=30, clock=clock,
                  timesync_dir=tmp_path / "timesync") as log:  # pruned when opened
        assert rows(tmp_path / "e.db", "SELECT COUNT(*) FROM decisions") == [(0,)]
        log.record_decision(Decision(t=0, bin_id="glass", label="glass"))
        clock.t += 31 * day  # a kiosk that runs for a month without a restart
        log.record_decision(Decision(t=0, bin_id="paper", label="paper"))  # prunes while recording
        assert rows(tmp_path / "e.db", "SELECT label FROM decisions") == [("paper",)]


def test_counts_today(tmp_path):
    import datetime as dt

    noon = dt.datetime(2024, 5, 2, 12).timestamp()
    clock = Clock(noon - 86400)  # yesterday
    with EventLog(tmp_path / "e.db", clock=clock) as log:
        log.record_decision(Decision(t=0, bin_id="paper", label="paper"))
        clock.t = noon
        log.record_decision(Decision(t=0, bin_id="glass", label="glass"))
        log.record_decision(Decision(t=0, bin_id="glass", label="glass"))
        log.record_decision(Decision(t=0, bin_id=None, label=None, unsure=True))
        assert log.counts_today() == {"glass": 2}
    assert log.counts_today() == {}  # closed


def test_usable_from_another_thread(tmp_path):
    """The kiosk opens the log in the main thread and records from its worker thread."""
    import threading

    log = EventLog(tmp_path / "e.db")
    got = []
    workers = [threading.Thread(target=lambda: got.append(log.record_fault("E200", "camera", "x"))) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    log.close()
    assert sorted(got) == [1, 2, 3, 4] and log.errors == 0


def test_full_disk_is_counted_not_raised(tmp_path):
    log = EventLog(tmp_path / "e.db")
    log.record_service("start")
    pages = log._conn.execute("PRAGMA page_count").fetchone()[0]
    log._conn.execute(f"PRAGMA max_page_count = {pages}")  # the "disk" is now full
    big = "x" * 100_000
    assert log.record_fault("E500", "storage", big) is None
    assert log.errors == 1 and "full" in log.last_error
    log.close()
    assert log.record_service("stop") is None  # closed: counted, not raised
    assert log.errors == 2 and "closed" in log.last_error
    log.close()  # twice is fine


def test_a_file_that_is_not_a_log_is_kept_aside_and_a_fresh_log_started(tmp_path):
    bad = tmp_path / "e.db"
    junk = b"this is not a database, it is a shopping list\n" * 200
    bad.write_bytes(junk)
    with EventLog(bad) as log:
        assert log.record_service("start") == 1
        (fault,) = log.faults()
    assert fault.code == "E502" and "kept as e.db.damaged-" in fault.message and not fault.blocking
    (aside,) = tmp_path.glob("e.db.damaged-*")
    assert aside.read_bytes() == junk  # nothing of it is lost either


def test_a_log_that_cannot_be_opened_names_the_file(tmp_path):
    (tmp_path / "e.db").mkdir()  # a folder where the file should be
    with pytest.raises(EventLogError) as e:
        EventLog(tmp_path / "e.db")
    assert str(tmp_path / "e.db") in str(e.value) and e.value.code == "E500"


def test_newer_schema_refused(tmp_path):
    conn = sqlite3.connect(str(tmp_path / "e.db"))
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(EventLogError, match="newer kiosk"):
        EventLog(tmp_path / "e.db")


def test_folder_that_cannot_be_made(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(EventLogError, match="cannot be created"):
        EventLog(tmp_path / "file" / "sub" / "e.db")


# --- crash safety -----------------------------------------------------------

def test_sigkill_mid_write_loses_no_committed_event():
    """300 rounds of two writers SIGKILLed mid-write (benchmarks/attacks.py prints the same figures)."""
    from benchmarks.attacks import kill_writers

    k = kill_writers(rounds=300, writers=2)
    assert k["stopped"] == 0, "a writer stopped by itself: a write failed"
    assert k["kills"] == 600
    assert k["acknowledged"] > 300  # the writers really were writing
    assert k["integrity"] == "ok"
    assert k["lost"] == 0, f"{k['lost']} committed events lost, e.g. {k['lost_examples']}"
