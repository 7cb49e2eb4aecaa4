"""The event log's file: its SQLite schema, where it lives, and how every process connects to it.

One definition of the file for the writer (``kiosk.appliance.eventlog``)
and the readers (``kiosk stats``, ``kiosk doctor``): the schema, the
connection settings every user must share (WAL, ``synchronous=FULL``, busy
timeout) and the ownership fix-up for reports run as root. Imports nothing
of the kiosk's.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from kiosk.files import give_to, owner_of

EVENTLOG_FILE = "events.db"
SCHEMA_VERSION = 3  # 2: bin_events; 3: decisions.uid/published (the fleet outbox). Older files gain them at open.

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id             INTEGER PRIMARY KEY,
    t              REAL    NOT NULL,  -- wall clock, UTC epoch seconds
    label          TEXT,              -- the class the kiosk saw (NULL: none)
    bin_id         TEXT,              -- the bin that opened (NULL: none)
    score          REAL    NOT NULL,
    scores         TEXT    NOT NULL,  -- JSON {class: score}
    corrected      INTEGER NOT NULL,  -- 1: the person chose the bin
    unsure         INTEGER NOT NULL,
    weight_g       REAL,
    drop_confirmed INTEGER,           -- NULL: no scale to tell
    uid            TEXT,              -- stable event id for the fleet (consumers de-duplicate on it)
    published      INTEGER NOT NULL DEFAULT 0  -- 1: the fleet broker acknowledged it (PUBACK)
);
CREATE INDEX IF NOT EXISTS decisions_t ON decisions(t);
CREATE TABLE IF NOT EXISTS images (
    decision_id INTEGER PRIMARY KEY REFERENCES decisions(id) ON DELETE CASCADE,
    format      TEXT NOT NULL,  -- 'jpeg' or 'npy'
    data        BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS faults (
    id      INTEGER PRIMARY KEY,
    t       REAL NOT NULL,
    code    TEXT NOT NULL,
    part    TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS faults_t ON faults(t);
CREATE TABLE IF NOT EXISTS service (
    id     INTEGER PRIMARY KEY,
    t      REAL NOT NULL,
    action TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS service_t ON service(t);
CREATE TABLE IF NOT EXISTS bin_events (
    id      INTEGER PRIMARY KEY,
    t       REAL NOT NULL,
    bin_id  TEXT NOT NULL,
    event   TEXT NOT NULL,  -- full, near_full, emptied, full_reset (kiosk.weighing.bank)
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bin_events_t ON bin_events(t);
"""


# Columns a file from an older kiosk lacks, added when it is opened (ALTER TABLE keeps every row).
ADDED_COLUMNS = {("decisions", "uid"): "TEXT", ("decisions", "published"): "INTEGER NOT NULL DEFAULT 0"}
AFTER_COLUMNS = """
UPDATE decisions SET uid = lower(hex(randomblob(16))) WHERE uid IS NULL;
CREATE INDEX IF NOT EXISTS decisions_outbox ON decisions(published, id);
"""


def upgrade(conn: sqlite3.Connection) -> None:
    """Make an older file's tables what SCHEMA makes (inside the caller's transaction)."""
    for stmt in SCHEMA.split(";"):
        if stmt.strip():
            conn.execute(stmt)
    for (table, column), kind in ADDED_COLUMNS.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    for stmt in AFTER_COLUMNS.split(";"):
        if stmt.strip():
            conn.execute(stmt)


def eventlog_path(data_dir: str | Path) -> Path:
    """Where the event log lives inside ``storage.data_dir``."""
    return Path(data_dir).expanduser() / EVENTLOG_FILE


def connect(path: str | Path, readonly: bool = False, timeout_s: float = 5.0, any_thread: bool = False) -> sqlite3.Connection:
    """A connection with the settings every user of the file must share."""
    path = Path(path)
    kw = dict(timeout=timeout_s, isolation_level=None, check_same_thread=not any_thread)
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, **kw)
    else:
        conn = sqlite3.connect(str(path), **kw)
    conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
    if not readonly:
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextmanager
def read_connection(path: str | Path, timeout_s: float = 5.0) -> Iterator[sqlite3.Connection]:
    """A read-only connection for reports (``kiosk stats``, ``kiosk doctor``).

    Even a read-only reader of a WAL file creates the ``-wal`` and ``-shm``
    files when they are missing. Run as root (``sudo kiosk stats``) those
    would belong to root, and the kiosk, running as its own user, could no
    longer open its log. So on the way out they are handed back to the log's
    owner.
    """
    path = Path(path)
    conn = connect(path, readonly=True, timeout_s=timeout_s)
    try:
        yield conn
    finally:
        conn.close()
        _match_owner(path)


def _match_owner(path: Path) -> None:
    """The side files to the log's owner: never through a symlink (``kiosk.files.give_to``)."""
    owner = owner_of(path)
    for suffix in ("-wal", "-shm", "-journal"):
        try:
            give_to(path.with_name(path.name + suffix), owner)
        except OSError:
            pass
