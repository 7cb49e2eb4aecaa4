"""Re-measure the attack pass: crafted inputs and SIGKILLs, with the figures the README quotes.

1. Crafted inputs: every file a technician or the kiosk user can put in the
   kiosk's way (config YAML, model card and file, calibration, bin holds,
   the kept flap pins, the PIN hash file, the event log), each handed to the
   reader the kiosk uses, in a forked child with a time limit. Expected: a
   clear refusal (the reader's own error, with a code), or a recovery where
   that is the design (a damaged event log is kept aside and a fresh one
   started). Never an uncaught exception, a signal (SIGFPE) or a hang.
2. Kills: event-log writers SIGKILLed mid-write, again and again; every
   event a writer was told was committed must be in the file afterwards.

    python benchmarks/attacks.py [--kills 300] [--timeout 30]

The replays that check each finding one by one are tests/test_attacks.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")

REFUSED, RECOVERED = "refused", "recovered"


# ---------------------------------------------------------------------------
# the corpus: (reader, what, expected, make(dir) -> callable)
# ---------------------------------------------------------------------------
def _base_config(d: Path) -> dict:
    import yaml

    return yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8")) | {
        "storage": {"data_dir": str(d / "data")}}


def _yaml(d: Path, data) -> Path:
    from tests.fakes import dump_yaml

    p = d / "kiosk.yaml"
    p.write_text(data if isinstance(data, str) else dump_yaml(data), encoding="utf-8")
    return p


def _config_cases():
    from kiosk.config import hash_pin, load_config

    def edit(fn):
        def make(d):
            data = _base_config(d)
            fn(data)
            return lambda: load_config(_yaml(d, data), check_model=False)
        return make

    def text(t):
        return lambda d: (lambda: load_config(_yaml(d, t), check_model=False))

    good_hash = hash_pin("246813", iterations=1000)
    yield "alias bomb", text("a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")))
    yield "1000 nested [", text("bins: " + "[" * 1000)
    yield "2 MB file", text("# " + "x" * (2 << 20))
    yield "second storage: section", text((REPO / "config.yaml").read_text() + "\nstorage: {capture_images: true}\n")
    yield "binary garbage", lambda d: (lambda: load_config(_write(d / "kiosk.yaml", os.urandom(4096)),
                                                           check_model=False))
    yield "empty file", text("")
    yield "a list, not sections", text("- 1\n- 2\n")
    yield "tab indentation", text("ui:\n\tfps: 30\n")
    yield "unknown key", edit(lambda c: c["ui"].update(langauges=["en"]))
    yield "1 MB string in a number", edit(lambda c: c["ui"].update(fps="9" * (1 << 20)))
    yield "GPIO pin used twice", edit(lambda c: c["bins"][1]["flap"].update(pin=c["bins"][0]["flap"]["pin"]))
    yield "pin 99", edit(lambda c: c["bins"][0]["flap"].update(pin=99))
    yield "PIN hash, 20-digit iterations", edit(lambda c: c["service"].update(
        pin_hash=good_hash.replace("$1000$", "$99999999999999999999$")))
    yield "PIN hash, 2e9 iterations", edit(lambda c: c["service"].update(pin_hash=good_hash.replace("$1000$", "$2000000000$")))
    yield "plain PIN as the hash", edit(lambda c: c["service"].update(pin_hash="1234"))
    yield "CLAHE tile_grid 0", edit(lambda c: c.setdefault("enhance", {}).setdefault("clahe", {}).update(tile_grid=0))
    yield "negative retention", edit(lambda c: c["storage"].update(retention_days=-1))
    yield "model missing (checked)", lambda d: (lambda: load_config(_yaml(d, _base_config(d) | {
        "model": {"path": str(d / "none.onnx")}})))


def _write(path: Path, content) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _model_cases():
    from kiosk.classifier import OnnxClassifier, card_path, sha256_file
    from tests.conftest import build_tiny_model

    def card_edit(fn):
        def make(d):
            m = build_tiny_model(d / "m.onnx")
            c = json.loads(card_path(m).read_text())
            fn(c)
            card_path(m).write_text(json.dumps(c))
            return lambda: OnnxClassifier(m, threads=1)
        return make

    def card_text(t):
        def make(d):
            m = build_tiny_model(d / "m.onnx")
            _write(card_path(m), t)
            return lambda: OnnxClassifier(m, threads=1)
        return make

    def model_bytes(fn, rehash=False):
        def make(d):
            m = build_tiny_model(d / "m.onnx")
            m.write_bytes(fn(m.read_bytes()))
            if rehash:  # a matching card: the graph itself must be refused
                c = json.loads(card_path(m).read_text())
                c["sha256"] = sha256_file(m)
                card_path(m).write_text(json.dumps(c))
            return lambda: OnnxClassifier(m, threads=1)
        return make

    yield "card: two classes swapped", card_edit(lambda c: c["classes"].__setitem__(slice(0, 2), c["classes"][1::-1]))
    yield "card: normalisation changed", card_edit(lambda c: c["input"].update(mean=[0, 0, 0]))
    yield "card: CLAHE off", card_edit(lambda c: c["clahe"].update(enabled=False))
    yield "card: CLAHE tile_grid 0", card_edit(lambda c: c["clahe"].update(tile_grid=0))
    yield "card: output kind changed", card_edit(lambda c: c.update(output="probabilities"))
    yield "card: a class fewer", card_edit(lambda c: c.update(classes=c["classes"][:-1]))
    yield "card: no sha256", card_edit(lambda c: c.pop("sha256"))
    yield "card: input size 0", card_edit(lambda c: c["input"].update(size=[0, 0]))
    yield "card: 100k nested [", card_text("[" * 100_000)
    yield "card: 2 MB", card_text(" " * (2 << 20))
    yield "card: not JSON", card_text("{classes: glass")
    yield "model: one flipped bit", model_bytes(lambda b: b[:len(b) // 2] + bytes([b[len(b) // 2] ^ 1]) + b[len(b) // 2 + 1:])
    yield "model: truncated, card rehashed", model_bytes(lambda b: b[:60], rehash=True)
    yield "model: empty, card rehashed", model_bytes(lambda b: b"", rehash=True)
    yield "model: random bytes, card rehashed", model_bytes(lambda b: os.urandom(len(b)), rehash=True)


CRAFTED_JSON = {"100k nested [": "[" * 100_000, "100k nested {": '{"a":' * 100_000, "2 MB": " " * (2 << 20),
                "not UTF-8": b"\xff\xfe{}", "not JSON": "{bins: 1"}


def _data_file_cases():
    from kiosk.devices.holds import HoldStore
    from kiosk.devices.pinmap import load_last_good
    from kiosk.weighing.calibration import Calibration

    for what, content in CRAFTED_JSON.items():
        yield (f"calibration.json: {what}", REFUSED,
               lambda d, c=content: (lambda: Calibration.load(_write(d / "calibration.json", c))))
        yield (f"flap-pins.json: {what}", REFUSED,
               lambda d, c=content: (lambda: load_last_good(_write(d / "flap-pins.json", c))))
        # bin holds: logged, started with none (the start-up switch check still finds a jam)
        yield (f"bin-holds.json: {what}", RECOVERED,
               lambda d, c=content: (lambda: HoldStore(_write(d / "bin-holds.json", c)).load()))
    for what, doc in {"NaN offset": '{"version": 1, "bins": {"a": {"offset": NaN}}}',
                      "zero scale": '{"version": 1, "bins": {"a": {"offset": 1, "scale": 0}}}',
                      "1 MB gain": json.dumps({"version": 1, "bins": {"a": {"offset": 1, "gain": "x" * (1 << 20)}}}),
                      "version 99": '{"version": 99, "bins": {}}'}.items():
        yield (f"calibration.json: {what}", REFUSED, lambda d, c=doc: (lambda: Calibration.load(_write(d / "c.json", c))))


def _pin_cases():
    from kiosk.config import hash_pin, read_pin_hash, verify_pin

    good = hash_pin("246813", iterations=1000)
    for what, content in {"20-digit iterations": good.replace("$1000$", "$99999999999999999999$"),
                          "2e9 iterations": good.replace("$1000$", "$2000000000$"),
                          "a plain PIN": "1234\n", "binary": os.urandom(64), "1 MB": "x" * (1 << 20)}.items():
        yield f"pin hash file: {what}", REFUSED, lambda d, c=content: (lambda: read_pin_hash(_write(d / "pin", c)))
        if isinstance(content, str):
            # the pad's own check: a wrong PIN (False), never an exception or minutes of hashing
            yield (f"PIN pad, stored hash: {what}", RECOVERED,
                   lambda d, c=content: (lambda: _must(verify_pin("246813", c) is False)))


def _eventlog_cases():
    from kiosk.appliance.eventlog import EventLog

    def damaged(d):
        p = d / "events.db"
        with EventLog(p) as log:
            for i in range(300):
                log.record_service("x", "y" * 300)
        with open(p, "r+b") as f:
            f.seek(8192)
            f.write(os.urandom(16384))
        return lambda: _must(EventLog(p).faults()[0].code == "E502")

    def newer(d):
        conn = sqlite3.connect(str(d / "events.db"))
        conn.execute("PRAGMA user_version = 99")
        conn.close()
        return lambda: EventLog(d / "events.db")

    yield "event log: not a database", RECOVERED, lambda d: (lambda: _must(
        EventLog(_write(d / "events.db", b"shopping list\n" * 500)).faults()[0].code == "E502"))
    yield "event log: damaged pages", RECOVERED, damaged
    yield "event log: a folder in its place", REFUSED, lambda d: (lambda: ((d / "events.db").mkdir(), EventLog(d / "events.db")))
    yield "event log: newer schema", REFUSED, newer


def _must(ok: bool) -> None:
    if not ok:
        raise AssertionError("the recovery did not happen")


def cases():
    """Every (name, expected, make) in the corpus."""
    out = [(f"config: {w}", REFUSED, m) for w, m in _config_cases()]
    out += [(w, REFUSED, m) for w, m in _model_cases()]
    out += list(_data_file_cases()) + list(_pin_cases()) + list(_eventlog_cases())
    return out


# ---------------------------------------------------------------------------
# running one input in a forked child
# ---------------------------------------------------------------------------
def run_case(make, expected: str, timeout_s: float) -> tuple[str, float, str]:
    """(outcome, seconds, detail). Outcomes: refused, recovered, accepted, crash, signal, hang."""
    from kiosk.errors import KioskError

    rfd, wfd = os.pipe()
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        code, detail = 0, ""
        try:
            with tempfile.TemporaryDirectory() as d:
                call = make(Path(d))
                try:
                    call()
                    code = 11 if expected == RECOVERED else 12  # recovered as designed / taken as good
                except (KioskError, ValueError) as e:  # the readers' own refusals (a PIN file: ValueError)
                    code, detail = 10, f"[{getattr(e, 'code', 'ValueError')}] {str(e)[:150]}"
        except BaseException:
            code, detail = 20, traceback.format_exc()[-600:]
        os.write(wfd, detail.encode()[:4000])
        os._exit(code)
    os.close(wfd)
    deadline = time.monotonic() + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(rfd)
            return "hang", time.perf_counter() - t, f"no answer in {timeout_s:.0f} s"
        time.sleep(0.01)
    seconds = time.perf_counter() - t
    detail = os.read(rfd, 8192).decode(errors="replace")
    os.close(rfd)
    if os.WIFSIGNALED(status):
        return "signal", seconds, signal.Signals(os.WTERMSIG(status)).name
    outcome = {10: REFUSED, 11: RECOVERED, 12: "accepted", 20: "crash"}.get(os.WEXITSTATUS(status), "crash")
    return outcome, seconds, detail


# ---------------------------------------------------------------------------
# kills
# ---------------------------------------------------------------------------
def _writer(db: Path, wfd: int, tag: str) -> None:
    """Child: record decisions, faults and service actions forever; report each only after its commit returned."""
    from kiosk.appliance.eventlog import EventLog
    from kiosk.datatypes import Decision

    try:
        log = EventLog(db)
        i = 0
        while True:
            key, kind = f"{tag}:{i}", i % 3
            if kind == 0:
                rid = log.record_decision(Decision(t=0, bin_id="paper", label=key, score=0.9, scores={"paper": 0.9},
                                                   weight_g=float(i)))
            elif kind == 1:
                rid = log.record_fault("E200", "camera", key)
            else:
                rid = log.record_service("tare", key)
            if rid is None:
                os._exit(3)
            os.write(wfd, f"{kind} {key}\n".encode())
            i += 1
    except BaseException:
        os._exit(4)


STORED = ("SELECT label FROM decisions", "SELECT message FROM faults", "SELECT detail FROM service")


def kill_writers(rounds: int, writers: int = 2, seed: int = 6) -> dict:
    """Fork ``writers`` writers on one log, SIGKILL them after a random few ms, ``rounds`` times; then compare.

    ``stopped``: writers that ended by themselves (a failed write) instead of by the kill.
    """
    from kiosk.appliance.eventlog import EventLog

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "events.db"
        EventLog(db).close()
        acknowledged: set[str] = set()
        kills = stopped = 0
        for r in range(rounds):
            rfd, wfd = os.pipe()
            pids = []
            for w in range(writers):
                pid = os.fork()
                if pid == 0:
                    os.close(rfd)
                    _writer(db, wfd, f"{r}.{w}")
                pids.append(pid)
            os.close(wfd)
            time.sleep(rng.uniform(0.002, 0.03))
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            for pid in pids:
                _, status = os.waitpid(pid, 0)
                kills += os.WIFSIGNALED(status)
                stopped += not os.WIFSIGNALED(status)
            data = b""
            while chunk := os.read(rfd, 65536):
                data += chunk
            os.close(rfd)
            acknowledged |= {line for line in data.decode().splitlines() if line.count(" ") == 1}  # whole lines
        with sqlite3.connect(str(db)) as conn:
            stored = {f"{kind} {key}" for kind, sql in enumerate(STORED) for (key,) in conn.execute(sql)}
            integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    lost = sorted(acknowledged - stored)
    return {"kills": kills, "stopped": stopped, "acknowledged": len(acknowledged), "lost": len(lost),
            "lost_examples": lost[:5], "integrity": integrity}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=300, help="rounds of two writers SIGKILLed mid-write")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds an input may take before it counts as a hang")
    args = ap.parse_args(argv)
    import logging

    from kiosk.model.cpuinfo import cpu_info

    logging.disable(logging.CRITICAL)  # the readers log what they refuse; the tally says it here

    corpus = cases()
    tally: dict[str, int] = {}
    unexpected = []
    slowest = (0.0, "")
    for name, expected, make in corpus:
        outcome, seconds, detail = run_case(make, expected, args.timeout)
        tally[outcome] = tally.get(outcome, 0) + 1
        slowest = max(slowest, (seconds, name))
        if outcome != expected:
            unexpected.append((name, expected, outcome, detail))
    for name, expected, outcome, detail in unexpected:
        print(f"UNEXPECTED {name}: expected {expected}, got {outcome}: {detail.strip()[:300]}")
    print(f"crafted inputs: {len(corpus)} tried, {len(corpus) - len(unexpected)} as designed "
          f"({tally.get(REFUSED, 0)} refused with a clear error, {tally.get(RECOVERED, 0)} recovered), "
          f"{tally.get('crash', 0)} uncaught exceptions, {tally.get('signal', 0)} killed by a signal, "
          f"{tally.get('hang', 0)} hangs, {tally.get('accepted', 0)} taken as good; "
          f"slowest {slowest[0]:.2f} s ({slowest[1]})")
    k = kill_writers(args.kills)
    print(f"event log: {k['kills']} SIGKILLs of writers mid-write, {k['acknowledged']} acknowledged events, "
          f"{k['lost']} lost, integrity {k['integrity']}")
    print(f"measured on: {cpu_info().describe()}, python {sys.version.split()[0]}")
    return 1 if unexpected or k["lost"] or k["integrity"] != "ok" else 0


if __name__ == "__main__":
    sys.exit(main())
