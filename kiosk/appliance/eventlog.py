"""The kiosk's event log: every decision, fault and service action, in SQLite.

Why SQLite in WAL mode with ``synchronous=FULL``: the kiosk is switched off
at the wall and killed by the watchdog; every committed event must survive
that, and the file must never be left half-written. Each ``record_*`` call is
its own transaction, so an event is either fully there or not at all.

Privacy: camera images are stored only when the config turns
``storage.capture_images`` on; otherwise an image handed in is dropped.

Threads: an :class:`EventLog` may be used from any thread (the kiosk's
worker records, the main thread closes); calls are serialised by a lock.
Several *processes* (the kiosk, ``kiosk stats``, ``kiosk doctor``) may use the
same file at once. Every write waits for the SD card (fsync): a few to tens
of milliseconds, once per item.

Time: events carry the wall-clock time when they are recorded (UTC epoch
seconds), not ``Decision.t``, which is the engine's monotonic clock.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from kiosk.appliance.eventdb import SCHEMA_VERSION, connect, upgrade
from kiosk.datatypes import Decision
from kiosk.errors import KioskError
from kiosk.faults import Fault, PartKind

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 6 * 3600
WRITES_FAILING = "E501"  # warning: events are not being recorded (disk full, card failing)
STARTED_AFRESH = "E502"  # warning: the file was damaged, deleted or replaced; a fresh one took its place
AFRESH_NOTICE_S = 24 * 3600  # how long the screen keeps saying so (the fault is in the fresh log for good)
PLAUSIBLE_AFTER = 1735689600.0  # 2025-01-01 UTC: a clock before this has not been set
TIMESYNC_DIR = Path("/run/systemd/timesync")  # systemd-timesyncd; "synchronized" appears once NTP answered


class EventLogError(KioskError):
    """The event log cannot be opened or is not a kiosk event log."""

    code = "E500"


class _Damaged(Exception):
    """PRAGMA quick_check found damage."""


def _is_damage(e: BaseException) -> bool:
    """SQLite says the file is corrupt or not a database (what moving it aside cures)."""
    if isinstance(e, _Damaged):
        return True
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    text = str(e).lower()
    return "malformed" in text or "not a database" in text


def clock_is_plausible(now: float, newest_event: Optional[float], retention_days: int,
                       timesync_dir: Path = TIMESYNC_DIR) -> tuple[bool, str]:
    """May pruning trust ``now``? A clock far ahead would delete the whole log as "old".

    Before 2025 the clock has not been set. A clock within the retention
    period of the log's newest event follows the log (the image's
    fake-hwclock resumes from the last saved time, so an offline kiosk stays
    here). A larger gap is a jump or a long time switched off: trusted only
    once systemd-timesyncd says NTP answered; until then nothing is deleted.
    """
    if now < PLAUSIBLE_AFTER:
        return False, "the clock has not been set (it says before 2025)"
    if newest_event is None or now - newest_event <= retention_days * 86400.0:
        return True, "the clock follows the log"
    if (timesync_dir / "synchronized").exists():
        return True, "NTP-synchronised"
    return False, (f"the clock is {(now - newest_event) / 86400:.0f} days past the newest event, more than the "
                   f"{retention_days}-day retention, and not NTP-synchronised: nothing is deleted until it is")


def _encode_image(image) -> tuple[str, bytes]:
    """JPEG through OpenCV when it is there, else the raw array (.npy)."""
    import numpy as np

    arr = np.asarray(image)
    try:
        import cv2

        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR) if arr.ndim == 3 else arr)
        if ok:
            return "jpeg", buf.tobytes()
    except Exception:  # no OpenCV, or an odd array: keep the pixels anyway
        pass
    out = io.BytesIO()
    np.save(out, arr, allow_pickle=False)
    return "npy", out.getvalue()


def _finite(x: Optional[float]) -> Optional[float]:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


class EventLog:
    """Append-only record of what the kiosk did. Safe to share between threads.

    Writing never raises into the main loop: a failed write (disk full, card
    gone) is logged, counted in :attr:`errors`, kept in :attr:`last_error`,
    and the call returns None. Opening does raise :class:`EventLogError`,
    with a message that names the file and what is wrong.

    With ``retention_days`` the log prunes itself: when opened, then at most
    every :data:`PRUNE_EVERY_S` while recording.
    """

    def __init__(
        self,
        path: str | Path,
        capture_images: bool = False,
        retention_days: Optional[int] = None,
        clock: Callable[[], float] = time.time,
        timesync_dir: Path = TIMESYNC_DIR,
    ):
        self.path = Path(path).expanduser()
        self.capture_images = bool(capture_images)
        self.retention_days = retention_days
        self.clock = clock
        self.timesync_dir = Path(timesync_dir)
        self.errors = 0
        self.last_error: Optional[str] = None
        self._not_logged = 0  # events lost since writing last worked
        self._failing_since: Optional[float] = None
        self._afresh: Optional[tuple[float, str]] = None  # (when, why) the file was started again
        self._conn: Optional[sqlite3.Connection] = None
        self._identity: Optional[tuple[int, int]] = None  # (st_dev, st_ino) of the file we write
        self._closed = False
        self.on_decision: list[Callable[[], None]] = []  # called after a decision is committed (the fleet's nudge)
        self._lock = threading.RLock()
        self._next_prune = float("-inf")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EventLogError(f"event log folder {self.path.parent} cannot be created: {e.strerror or e}") from None
        try:
            self._open()
        except (sqlite3.Error, OSError) as e:
            raise EventLogError(f"event log {self.path} cannot be opened: {e}") from None
        self._maybe_prune()

    # -- the file ------------------------------------------------------------

    def _open(self) -> None:
        """Connect and check (``PRAGMA quick_check``); a damaged file is moved aside and a fresh one started."""
        try:
            self._connect(check=True)
        except (sqlite3.DatabaseError, _Damaged) as e:
            if not _is_damage(e):
                raise
            self._start_afresh(str(e))

    def _connect(self, check: bool) -> None:
        conn = connect(self.path, any_thread=True)
        try:
            self._conn = conn
            if check:
                rows = conn.execute("PRAGMA quick_check").fetchall()
                if [r[0] for r in rows] != ["ok"]:
                    raise _Damaged("quick_check: " + "; ".join(str(r[0]) for r in rows[:3]))
            self._init_schema()
            st = os.stat(self.path)
            self._identity = (st.st_dev, st.st_ino)
        except BaseException:
            self._conn = None
            conn.close()
            raise

    def _start_afresh(self, why: str) -> None:
        """Keep the damaged file (and its WAL) under another name for a technician; start an empty log."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self.clock()))
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        n = 1
        while aside.exists():  # twice in one second: never overwrite the first one kept
            aside, n = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{n}"), n + 1
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, f"{aside}{suffix}")
        self._connect(check=False)
        self._note_afresh(f"the event log was damaged ({why[:120]}): kept as {aside.name}, a fresh one started")

    def _note_afresh(self, why: str) -> None:
        log.error("event log %s: %s", self.path, why)
        self._afresh = (self.clock(), why)

    def _same_file(self) -> bool:
        """Is the file at ``path`` still the one we write? (a deleted file takes every event with it, silently)"""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == self._identity

    def _reopen_if_moved(self) -> None:
        if self._conn is not None and self._same_file():
            return
        gone = not self.path.exists()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._note_afresh("the event log file was deleted while the kiosk ran: a fresh one was started "
                              "(what the deleted file held is gone)" if gone else
                              "the event log file was replaced while the kiosk ran: writing to the new file")
        self._open()

    def _init_schema(self) -> None:
        conn = self._conn
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise EventLogError(
                f"event log {self.path} was written by a newer kiosk (schema {version}, this one knows {SCHEMA_VERSION})"
            )
        # auto_vacuum only takes effect on a new, empty file: pruned space goes back to the card.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise EventLogError(f"event log {self.path}: the file system does not allow WAL mode (got {mode})")
        if version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                upgrade(conn)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # -- writing -----------------------------------------------------------

    def _write(self, what: str, fn) -> Optional[int]:
        with self._lock:
            return self._write_locked(what, fn)

    def _write_locked(self, what: str, fn) -> Optional[int]:
        if self._closed:
            self._failed(what, "the event log is closed")
            return None
        try:
            self._reopen_if_moved()
            try:
                rowid = self._transaction(fn)
            except sqlite3.DatabaseError as e:
                if not _is_damage(e):
                    raise
                self._start_afresh(str(e))
                rowid = self._transaction(fn)
        except (sqlite3.Error, OSError, _Damaged) as e:
            self._failed(what, str(e))
            return None
        if self._failing_since is not None:
            log.warning("event log %s: writing again (%d events were not recorded)", self.path, self._not_logged)
            self._failing_since, self._not_logged = None, 0
        return rowid

    def _transaction(self, fn):
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            rowid = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return rowid

    def _failed(self, what: str, why: str) -> None:
        self.errors += 1
        self._not_logged += 1
        if self._failing_since is None:
            self._failing_since = self.clock()
        self.last_error = f"{what} not logged: {why}"
        log.error("event log %s: %s", self.path, self.last_error)

    def faults(self) -> list[Fault]:
        """What the screen, STATUS and the fault log should say about the log now (at most one: one part)."""
        with self._lock:
            if self._failing_since is not None and not self._closed:
                since = time.strftime("%Y-%m-%d %H:%M", time.localtime(self._failing_since))
                return [Fault(WRITES_FAILING, PartKind.EVENTLOG,
                              f"{self._not_logged} events not recorded since {since}: {self.last_error}")]
            if self._afresh is not None and self.clock() - self._afresh[0] < AFRESH_NOTICE_S:
                return [Fault(STARTED_AFRESH, PartKind.EVENTLOG, self._afresh[1])]
        return []

    def record_decision(self, decision: Decision, image=None) -> Optional[int]:
        """Log one item: what was seen, where it went, weight, correction.

        ``image`` (RGB array) is stored only when ``capture_images`` is on.
        Returns the row id, or None if the write failed.
        """
        image_blob = None
        if image is not None and self.capture_images:
            try:
                image_blob = _encode_image(image)
            except Exception as e:  # a bad image must not lose the decision
                log.warning("event log: image not stored: %s", e)

        scores = {str(k): _finite(v) for k, v in (decision.scores or {}).items()}
        drop = None if decision.drop_confirmed is None else int(bool(decision.drop_confirmed))

        def insert(conn):
            cur = conn.execute(
                "INSERT INTO decisions (t, label, bin_id, score, scores, corrected, unsure, weight_g, drop_confirmed, uid)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, lower(hex(randomblob(16))))",
                (
                    self.clock(),
                    decision.label,
                    decision.bin_id,
                    _finite(decision.score) or 0.0,
                    json.dumps(scores, sort_keys=True),
                    int(bool(decision.corrected)),
                    int(bool(decision.unsure)),
                    _finite(decision.weight_g),
                    drop,
                ),
            )
            if image_blob is not None:
                conn.execute("INSERT INTO images (decision_id, format, data) VALUES (?, ?, ?)", (cur.lastrowid, *image_blob))
            return cur.lastrowid

        rowid = self._write("decision", insert)
        self._maybe_prune()
        if rowid is not None:
            for notify in self.on_decision:
                notify()
        return rowid

    def _insert_row(self, what: str, table: str, **values) -> Optional[int]:
        """One timestamped row in ``table`` (a fixed table name, never from input), its own transaction."""
        cols = ", ".join(["t", *values])
        marks = ", ".join("?" * (len(values) + 1))

        def insert(conn):
            return conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})",
                                (self.clock(), *values.values())).lastrowid

        return self._write(what, insert)

    def record_fault(self, code: str, part: str, message: str) -> Optional[int]:
        """Log a fault (e.g. ``"E200", "camera", "no frames for 5 s"``)."""
        return self._insert_row("fault", "faults", code=str(code), part=str(part), message=str(message))

    def record_service(self, action: str, detail: Any = None) -> Optional[int]:
        """Log a service action (``"tare"``, ``"flap_test"``, ``"start"``...).

        ``detail`` may be text or anything JSON can hold. Never pass the PIN.
        """
        if detail is not None and not isinstance(detail, str):
            detail = json.dumps(detail, sort_keys=True, default=str)
        return self._insert_row("service action", "service", action=str(action), detail=detail)

    def record_bin_event(self, bin_id: str, event: str, message: str) -> Optional[int]:
        """Log what a bin's scale noticed: full, nearly full, emptied, full flag reset."""
        return self._insert_row("bin event", "bin_events", bin_id=str(bin_id), event=str(event), message=str(message))

    # -- reading -------------------------------------------------------------

    def counts_today(self) -> dict[str, int]:
        """Items per bin since local midnight (so a restart keeps the day's counts)."""
        now = dt.datetime.fromtimestamp(self.clock())
        midnight = dt.datetime.combine(now.date(), dt.time()).timestamp()
        with self._lock:
            if self._conn is None:
                return {}
            try:
                rows = self._conn.execute(
                    "SELECT bin_id, COUNT(*) FROM decisions WHERE t >= ? AND bin_id IS NOT NULL GROUP BY bin_id", (midnight,)
                ).fetchall()
            except sqlite3.Error as e:
                log.warning("event log %s: counts not read: %s", self.path, e)
                return {}
        return {bin_id: n for bin_id, n in rows}

    # -- the fleet outbox ------------------------------------------------------

    def unpublished(self, limit: int = 100) -> list[dict]:
        """The oldest decisions the fleet broker has not acknowledged yet (the outbox), oldest first."""
        with self._lock:
            if self._conn is None:
                return []
            try:
                rows = self._conn.execute(
                    "SELECT id, uid, t, label, bin_id, score, corrected, unsure, weight_g, drop_confirmed"
                    " FROM decisions WHERE published = 0 ORDER BY id LIMIT ?", (int(limit),)).fetchall()
            except sqlite3.Error as e:
                log.warning("event log %s: outbox not read: %s", self.path, e)
                return []
        keys = ("id", "uid", "t", "label", "bin_id", "score", "corrected", "unsure", "weight_g", "drop_confirmed")
        return [dict(zip(keys, r)) for r in rows]

    def mark_published(self, ids) -> Optional[int]:
        """The broker acknowledged these decisions (PUBACK): they leave the outbox."""
        ids = [int(i) for i in ids]
        if not ids:
            return 0

        def mark(conn):
            return conn.executemany("UPDATE decisions SET published = 1 WHERE id = ?", [(i,) for i in ids]).rowcount

        return self._write("published mark", mark)

    def backlog(self) -> Optional[int]:
        """How many decisions wait for the broker (None: unknown)."""
        with self._lock:
            if self._conn is None:
                return None
            try:
                return self._conn.execute("SELECT COUNT(*) FROM decisions WHERE published = 0").fetchone()[0]
            except sqlite3.Error:
                return None

    def counts_for_day(self, day: dt.date) -> Optional[tuple[dict[str, int], dict[str, int]]]:
        """(items per bin, items per class) on local ``day``; None when the log cannot be read."""
        start = dt.datetime.combine(day, dt.time()).timestamp()
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time()).timestamp()
        with self._lock:
            if self._conn is None:
                return None
            try:
                bins = self._conn.execute("SELECT bin_id, COUNT(*) FROM decisions WHERE t >= ? AND t < ? AND bin_id"
                                          " IS NOT NULL GROUP BY bin_id", (start, end)).fetchall()
                classes = self._conn.execute("SELECT label, COUNT(*) FROM decisions WHERE t >= ? AND t < ? AND label"
                                             " IS NOT NULL GROUP BY label", (start, end)).fetchall()
            except sqlite3.Error:
                return None
        return dict(bins), dict(classes)

    # -- housekeeping ------------------------------------------------------

    def _maybe_prune(self) -> None:
        if not self.retention_days or self.clock() < self._next_prune:
            return
        self._next_prune = self.clock() + PRUNE_EVERY_S
        ok, why = clock_is_plausible(self.clock(), self._newest_event(), self.retention_days, self.timesync_dir)
        if not ok:
            log.warning("event log %s: not pruned: %s", self.path, why)
            return
        self.prune(self.retention_days)

    def _newest_event(self) -> Optional[float]:
        with self._lock:
            if self._conn is None:
                return None
            try:
                return self._conn.execute(
                    "SELECT MAX(t) FROM (SELECT MAX(t) AS t FROM decisions UNION ALL SELECT MAX(t) FROM faults"
                    " UNION ALL SELECT MAX(t) FROM service UNION ALL SELECT MAX(t) FROM bin_events)").fetchone()[0]
            except sqlite3.Error:
                return None

    def prune(self, retention_days: int) -> int:
        """Delete events older than ``retention_days``; returns how many went."""
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        cutoff = self.clock() - retention_days * 86400.0

        def delete(conn):
            n = 0
            for table in ("decisions", "faults", "service", "bin_events"):  # images go with their decision (cascade)
                n += conn.execute(f"DELETE FROM {table} WHERE t < ?", (cutoff,)).rowcount
            return n

        with self._lock:
            removed = self._write_locked("prune", delete) or 0
            if removed and self._conn is not None:
                try:
                    self._conn.execute("PRAGMA incremental_vacuum")
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as e:
                    log.warning("event log: space not reclaimed after prune: %s", e)
        if removed:
            log.info("event log %s: pruned %d events older than %d days", self.path, removed, retention_days)
        return removed

    def integrity_check(self) -> str:
        """``"ok"`` or SQLite's description of the damage (for ``kiosk doctor``)."""
        with self._lock:
            if self._conn is None:
                return "closed"
            try:
                rows = self._conn.execute("PRAGMA integrity_check").fetchall()
            except sqlite3.Error as e:
                return str(e)
        return "; ".join(r[0] for r in rows)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def __enter__(self) -> "EventLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NullEventLog:
    """Records nothing: a worker built without a log (tests, ``kiosk bench``), or in place of one that
    did not open (``failed``: its fault, shown for as long as the kiosk runs without a log)."""

    def __init__(self, failed: Optional[Fault] = None):
        self._faults = (failed,) if failed is not None else ()
        self.on_decision: list[Callable[[], None]] = []  # nothing is recorded, so never called

    def record_decision(self, decision: Decision, image=None) -> None:
        pass

    def record_fault(self, code: str, part: str, message: str) -> None:
        pass

    def record_service(self, action: str, detail: Any = None) -> None:
        pass

    def record_bin_event(self, bin_id: str, event: str, message: str) -> None:
        pass

    def counts_today(self) -> dict[str, int]:
        return {}

    def faults(self) -> list[Fault]:
        return list(self._faults)

    def unpublished(self, limit: int = 100) -> list[dict]:
        return []

    def mark_published(self, ids) -> int:
        return 0

    def backlog(self) -> Optional[int]:
        return None

    def counts_for_day(self, day) -> None:
        return None

    def close(self) -> None:
        pass
