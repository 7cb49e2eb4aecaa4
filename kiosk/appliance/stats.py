"""Counts from the event log, for ``kiosk stats``: per day, per bin, per class.

Days are local calendar days of the kiosk. The rates a technician asks about:

- unsure rate: items the kiosk was not sure about, out of all items;
- correction rate: items whose bin the person chose on the screen, out of
  all items (the kiosk's own call was not used).

Kilograms come from the load cells (items with no weight add nothing).
"""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, TextIO

from kiosk.errors import KioskError
from kiosk.appliance.eventdb import read_connection
from kiosk.weighing.bank import FILL_EVENTS

NO_BIN = "(none)"  # unsure items nobody placed
NO_CLASS = "(none)"

CSV_COLUMNS = ("date", "bin", "class", "items", "unsure", "corrected", "unsure_rate", "correction_rate", "kg")


class StatsError(KioskError):
    """The event log cannot be read for statistics."""

    code = "E510"


@dataclass(frozen=True)
class Group:
    """Items of one class that went to one bin on one day."""

    day: dt.date
    bin_id: str
    label: str
    items: int
    unsure: int
    corrected: int
    grams: float


@dataclass
class Stats:
    source: Path
    since: Optional[dt.date]
    groups: list[Group] = field(default_factory=list)
    faults: dict[dt.date, int] = field(default_factory=dict)
    bin_events: dict[tuple[str, str], int] = field(default_factory=dict)  # (bin, event) -> count
    last_emptied: dict[str, dt.datetime] = field(default_factory=dict)  # bin -> local time it was last emptied
    wrong_pins: dict[dt.date, int] = field(default_factory=dict)  # wrong service PINs per day (someone guessing?)
    pin_lockouts: int = 0
    exists: bool = True  # False: no event log yet (a fresh kiosk), every count is zero

    @property
    def days(self) -> list[dt.date]:
        return sorted({g.day for g in self.groups} | set(self.faults))

    @property
    def items(self) -> int:
        return sum(g.items for g in self.groups)

    def _sum(self, attr: str, day=None, bin_id=None, label=None) -> float:
        return sum(
            getattr(g, attr)
            for g in self.groups
            if (day is None or g.day == day) and (bin_id is None or g.bin_id == bin_id) and (label is None or g.label == label)
        )

    def count(self, day=None, bin_id=None, label=None) -> int:
        return int(self._sum("items", day, bin_id, label))

    def unsure(self, day=None) -> int:
        return int(self._sum("unsure", day))

    def corrected(self, day=None) -> int:
        return int(self._sum("corrected", day))

    def kg(self, bin_id=None, day=None) -> float:
        return self._sum("grams", day, bin_id) / 1000.0

    def bins(self, order: Sequence[str] = ()) -> list[str]:
        seen = {g.bin_id for g in self.groups}
        return list(order) + sorted(seen - set(order) - {NO_BIN}) + ([NO_BIN] if NO_BIN in seen else [])

    def labels(self) -> list[str]:
        seen = {g.label for g in self.groups}
        return sorted(seen - {NO_CLASS}) + ([NO_CLASS] if NO_CLASS in seen else [])


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _day_start(day: dt.date) -> float:
    """Local midnight at the start of ``day``, as epoch seconds."""
    return dt.datetime.combine(day, dt.time()).timestamp()


def compute(db_path: str | Path, since: Optional[dt.date] = None) -> Stats:
    """Read the event log at ``db_path``; only days from ``since`` on."""
    db_path = Path(db_path)
    stats = Stats(source=db_path, since=since)
    if not db_path.exists():  # a fresh kiosk: nothing recorded yet is zero of everything, not an error
        stats.exists = False
        return stats
    if not db_path.is_file():
        raise StatsError(f"the event log {db_path} is not a file")
    start = _day_start(since) if since else float("-inf")
    try:
        with read_connection(db_path) as conn:
            for day, bin_id, label, items, unsure, corrected, grams in conn.execute(
                "SELECT date(t, 'unixepoch', 'localtime') AS day, bin_id, label, COUNT(*),"
                " SUM(unsure), SUM(corrected), TOTAL(weight_g)"
                " FROM decisions WHERE t >= ? GROUP BY day, bin_id, label ORDER BY day",
                (start,),
            ):
                stats.groups.append(
                    Group(dt.date.fromisoformat(day), bin_id or NO_BIN, label or NO_CLASS, items, unsure, corrected, grams)
                )
            for day, n in conn.execute(
                "SELECT date(t, 'unixepoch', 'localtime') AS day, COUNT(*) FROM faults WHERE t >= ? GROUP BY day", (start,)
            ):
                stats.faults[dt.date.fromisoformat(day)] = n
            has = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for day, n, locks in conn.execute(
                "SELECT date(t, 'unixepoch', 'localtime') AS day, COUNT(*), SUM(detail LIKE '%pad locked%')"
                " FROM service WHERE action = 'pin_wrong' AND t >= ? GROUP BY day", (start,)
            ) if "service" in has else ():
                stats.wrong_pins[dt.date.fromisoformat(day)] = n
                stats.pin_lockouts += locks or 0
            if "bin_events" in has:  # schema 2 on
                for bin_id, event, n, last in conn.execute(
                    "SELECT bin_id, event, COUNT(*), MAX(t) FROM bin_events WHERE t >= ? GROUP BY bin_id, event",
                    (start,),
                ):
                    stats.bin_events[(bin_id, event)] = n
                    if event == "emptied":
                        stats.last_emptied[bin_id] = dt.datetime.fromtimestamp(last)
    except sqlite3.Error as e:
        hint = ""
        if "unable to open" in str(e) or "readonly" in str(e) or "permission" in str(e).lower():
            hint = " (it belongs to the kiosk user: try sudo kiosk stats)"
        raise StatsError(f"cannot read the event log {db_path}: {e}{hint}") from None
    return stats


def csv_rows(stats: Stats) -> Iterable[tuple]:
    """One row per day, bin and class (what a spreadsheet wants)."""
    for g in sorted(stats.groups, key=lambda g: (g.day, g.bin_id, g.label)):
        yield (
            g.day.isoformat(),
            g.bin_id,
            g.label,
            g.items,
            g.unsure,
            g.corrected,
            f"{_rate(g.unsure, g.items):.4f}",
            f"{_rate(g.corrected, g.items):.4f}",
            f"{g.grams / 1000.0:.3f}",
        )


def write_csv(stats: Stats, out: TextIO) -> int:
    """Write :data:`CSV_COLUMNS` rows to ``out``; returns the number of data rows."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    n = 0
    for row in csv_rows(stats):
        w.writerow(row)
        n += 1
    return n


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = lambda r: "  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(r, widths)))  # noqa: E731
    return [fmt(header)] + [fmt(r) for r in rows]


def _pct(part: int, whole: int) -> str:
    return f"{100 * _rate(part, whole):.1f}%" if whole else "-"


def render(stats: Stats, bin_order: Sequence[str] = ()) -> str:
    """The report ``kiosk stats`` prints."""
    since = f"since {stats.since.isoformat()}" if stats.since else "all days"
    out = [f"Event log {stats.source}, {since}"]
    if not stats.exists:
        out.append("No event log yet: the kiosk has not recorded anything. 0 items, 0 faults.")
        return "\n".join(out) + "\n"
    if not stats.groups and not stats.faults and not stats.bin_events and not stats.wrong_pins:
        out.append("No decisions recorded. 0 items, 0 faults.")
        return "\n".join(out) + "\n"
    out.append("unsure = the kiosk was not sure; corrected = the person chose the bin (both out of all items)")
    bins = stats.bins(bin_order)
    labels = stats.labels()
    days = stats.days

    out += ["", "Items per bin and day"]
    rows = []
    for d in days:
        n = stats.count(day=d)
        rows.append(
            [d.isoformat(), n, _pct(stats.unsure(d), n), _pct(stats.corrected(d), n), stats.faults.get(d, 0)]
            + [stats.count(day=d, bin_id=b) for b in bins]
        )
    n = stats.items
    rows.append(["total", n, _pct(stats.unsure(), n), _pct(stats.corrected(), n), sum(stats.faults.values())]
                + [stats.count(bin_id=b) for b in bins])
    out += _table(["date", "items", "unsure", "corrected", "faults"] + bins, rows)

    out += ["", "Items per class and day"]
    rows = [[d.isoformat()] + [stats.count(day=d, label=c) for c in labels] for d in days]
    rows.append(["total"] + [stats.count(label=c) for c in labels])
    out += _table(["date"] + labels, rows)

    out += ["", "Kilograms per bin"]
    out += _table(["bin", "kg"], [[b, f"{stats.kg(bin_id=b):.3f}"] for b in bins] + [["total", f"{stats.kg():.3f}"]])

    if stats.bin_events:
        out += ["", "Bin events (from the scales)"]
        scaled = [b for b in bin_order if any(k[0] == b for k in stats.bin_events)]
        scaled += sorted({k[0] for k in stats.bin_events} - set(scaled))
        out += _table(["bin"] + list(FILL_EVENTS) + ["last emptied"],
                      [[b] + [stats.bin_events.get((b, e), 0) for e in FILL_EVENTS]
                       + [stats.last_emptied[b].strftime("%Y-%m-%d %H:%M") if b in stats.last_emptied else "-"]
                       for b in scaled])
    if stats.wrong_pins:
        out += ["", f"Wrong service PINs ({stats.pin_lockouts} lockouts): many on one day means someone is guessing"]
        out += _table(["date", "wrong PINs"], [[d.isoformat(), n] for d, n in sorted(stats.wrong_pins.items())])
    return "\n".join(out) + "\n"
