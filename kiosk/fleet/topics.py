"""The fleet's topics and payloads, as plain data: what a city's dashboards read.

Names are ``<prefix>/<site_id>/<topic>``; payloads are JSON objects with
``"schema": 1``. Pure: no network, no clock of its own (times are passed in),
so every payload is tested with plain data. The README's topic table
is this module's ``TOPICS``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Iterable, Optional

SCHEMA = 1

# topic -> (retained, QoS, what it carries): the README's table
TOPICS = {
    "status": (True, 1, "online/offline (offline is the broker's Last Will), software and model version, uptime, "
                        "outbox backlog, time of the last item sent"),
    "health": (True, 1, "current fault codes with part, message and next step (empty list: all well)"),
    "fill": (True, 1, "per bin: fill %, kg and the alert flag at fleet.fill_alert (plan the pickups)"),
    "events": (False, 1, "one message per item: id, time, class, score (the decided bin's: its classes' scores summed; unsure: the class's), bin, corrected, unsure, weight"),
    "daily": (True, 1, "items per bin and per class for one local day, sent after midnight"),
}


def topic(prefix: str, site_id: str, name: str) -> str:
    if name not in TOPICS:
        raise KeyError(name)
    return f"{prefix}/{site_id}/{name}"


def encode(payload: dict) -> bytes:
    return json.dumps({"schema": SCHEMA, **payload}, sort_keys=True, separators=(",", ":")).encode()


def _iso(t: float, timespec: str = "seconds") -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec=timespec)


def status(online: bool, *, now: float, started: float, software: str, model: Optional[str],
           backlog: Optional[int], last_item: Optional[float] = None) -> dict:
    return {"online": bool(online), "time": _iso(now), "software": software, "model": model,
            "uptime_s": int(max(0.0, now - started)), "backlog": backlog,
            "last_item": _iso(last_item) if last_item else None}


def offline_will(software: str) -> dict:
    """What the broker publishes on ``status`` if the kiosk vanishes without a word."""
    return {"online": False, "software": software, "reason": "connection lost"}


def health(faults: Iterable, *, now: float, next_steps: dict[str, str]) -> dict:
    """``faults``: ``kiosk.faults.Fault``s; ``next_steps``: code -> what a technician does (README's table)."""
    return {"time": _iso(now), "faults": [
        {"code": f.code, "part": f.part, "message": f.message[:300], "blocking": bool(f.blocking),
         "next_step": next_steps.get(f.code, "")} for f in faults]}


def fill(levels: dict[str, float], *, now: float, alert_at: float, refused: Iterable[str] = (),
         capacity_kg: Optional[dict[str, float]] = None) -> dict:
    """``levels``: bin -> fill fraction (the scales'); kg from each bin's ``capacity_kg``."""
    refused, capacity_kg = set(refused), capacity_kg or {}

    def one(b, v):
        v = max(0.0, min(1.0, v))
        kg = round(v * capacity_kg[b], 2) if b in capacity_kg else None
        return {"fill_pct": round(100.0 * v, 1), "kg": kg, "alert": v >= alert_at, "refusing": b in refused}

    return {"time": _iso(now), "alert_at": alert_at, "bins": {b: one(b, v) for b, v in sorted(levels.items())}}


def event(row: dict, site_id: str) -> dict:
    """One decision from the event log's outbox (``EventLog.unpublished``)."""
    return {"id": row["uid"], "site": site_id, "time": _iso(row["t"], "milliseconds"), "class": row["label"],
            "bin": row["bin_id"],
            "score": round(float(row["score"] or 0.0), 4), "corrected": bool(row["corrected"]),
            "unsure": bool(row["unsure"]), "weight_g": row["weight_g"],
            "drop_confirmed": None if row["drop_confirmed"] is None else bool(row["drop_confirmed"])}


def daily(day: dt.date, per_bin: dict[str, int], per_class: dict[str, int]) -> dict:
    return {"day": day.isoformat(), "items": sum(per_bin.values()), "bins": dict(sorted(per_bin.items())),
            "classes": dict(sorted(per_class.items()))}


__all__ = ["SCHEMA", "TOPICS", "topic", "encode", "status", "offline_will", "health", "fill", "event", "daily"]
