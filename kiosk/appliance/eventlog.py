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
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from kiosk.appliance.eventdb import SCHEMA_VERSION, SCHEMA, connect
from kiosk.datatypes import Decision
from kiosk.errors import KioskError

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 6 * 3600


class EventLogError(KioskError):
    """The event log cannot be opened or is not a kiosk event log."""

    code = "E500"


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
    ):
        self.path = Path(path).expanduser()
        self.capture_images = bool(capture_images)
        self.retention_days = retention_days
        self.clock = clock
        self.errors = 0
        self.last_error: Optional[str] = None
        self._conn: Optional[sqlite3.Connection] = None
        self._lock = threading.RLock()
        self._next_prune = float("-inf")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EventLogError(f"event log folder {self.path.parent} cannot be created: {e.strerror or e}") from None
        try:
            self._conn = connect(self.path, any_thread=True)
            self._init_schema()
        except sqlite3.DatabaseError as e:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            raise EventLogError(f"event log {self.path} cannot be opened: {e}") from None
        self._maybe_prune()

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
                for stmt in SCHEMA.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
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
        if self._conn is None:
            self._failed(what, "the event log is closed")
            return None
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                rowid = fn(self._conn)
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            return rowid
        except sqlite3.Error as e:
            self._failed(what, str(e))
            return None

    def _failed(self, what: str, why: str) -> None:
        self.errors += 1
        self.last_error = f"{what} not logged: {why}"
        log.error("event log %s: %s", self.path, self.last_error)

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
                "INSERT INTO decisions (t, label, bin_id, score, scores, corrected, unsure, weight_g, drop_confirmed)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

    # -- housekeeping ------------------------------------------------------

    def _maybe_prune(self) -> None:
        if not self.retention_days or self.clock() < self._next_prune:
            return
        self._next_prune = self.clock() + PRUNE_EVERY_S
        self.prune(self.retention_days)

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
    """Records nothing: a worker built without a log (tests, ``kiosk bench``)."""

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

    def close(self) -> None:
        pass
