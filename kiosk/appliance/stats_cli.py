"""Technician sub-commands of the appliance: ``kiosk stats``.

The top-level parser (kiosk/cli.py) owns ``--config`` and calls
:func:`register`. Every failure a technician can cause (bad config, no log
yet, unreadable file, bad date) ends in one clear line on stderr and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from kiosk.config import load_config
from kiosk.appliance.configpath import CONFIG_HELP, resolve_config_arg
from kiosk.errors import ConfigError
from kiosk.appliance.eventdb import eventlog_path
from kiosk.appliance.stats import StatsError, compute, render, write_csv


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date; write it as YYYY-MM-DD, e.g. 2024-05-01") from None


def register(subparsers) -> None:
    """Add ``stats`` to the top-level parser's sub-commands."""
    p = subparsers.add_parser(
        "stats",
        help="counts per bin and class per day, unsure and correction rates, kilograms per bin",
        description="Summarise the event log: items per bin and class per day, unsure rate, "
        "correction rate (the person chose the bin) and kilograms per bin.",
    )
    # SUPPRESS: a --config given to a parent parser is not overwritten by this one's default.
    p.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE", help=CONFIG_HELP)
    p.add_argument("--since", type=_date, metavar="YYYY-MM-DD", help="only days from this date on")
    p.add_argument("--csv", metavar="FILE", help="also write one row per day, bin and class to FILE ('-' for stdout only)")
    p.set_defaults(func=stats_command)


def _fail(msg: str, code: int = 1) -> int:
    print(f"kiosk stats: {msg}", file=sys.stderr)
    return code


def stats_command(args) -> int:
    """Handler for ``kiosk stats``; returns the exit status."""
    try:
        config_path = resolve_config_arg(getattr(args, "config", None))
        cfg = load_config(config_path, check_model=False)
    except ConfigError as e:
        where = f" in {e.path}" if e.path else ""
        lines = [f"the config has problems{where}:"] + [f"  {p}" for p in e.problems]
        return _fail("\n".join(lines), 2)

    try:
        stats = compute(eventlog_path(cfg.data_dir), since=args.since)
    except StatsError as e:
        return _fail(str(e))

    if args.csv == "-":
        write_csv(stats, sys.stdout)
        return 0
    print(render(stats, bin_order=[b.id for b in cfg.bins]), end="")
    if args.csv:
        target = Path(args.csv).expanduser()
        try:
            with open(target, "w", newline="", encoding="utf-8") as f:
                n = write_csv(stats, f)
        except OSError as e:
            return _fail(f"cannot write {target}: {e.strerror or e}")
        print(f"\nWrote {n} rows to {target}")
    return 0
