"""A city's fleet against one Mosquitto on loopback: N simulated kiosks, a broker outage, what arrives.

Each simulated kiosk is the kiosk's own telemetry path: an ``EventLog`` (the
outbox, on tmpfs) and a ``FleetPublisher`` with its paho client, fed items
at a realistic rate sped up ``--speed`` times, with fill levels that grow.
Half-way the broker is stopped for ``--outage-s`` seconds (``--speed`` x that
in kiosk time: 30 s at 20x is a 10-minute outage) and started again on the
same port (a restart: SIGTERM, so it keeps its queues). A listener on ``#`` counts what arrives.
Why 20x: 1,000 kiosks at 40 items/h are 11 events/s; 20x is 222 events/s, and
the one machine that simulates every kiosk (2,000 threads of Python) still has
cores to spare. At 60x it has none and the figures measure the simulator, not
the fleet (the per-10 s lines on stderr show the machine's load beside the latency).

Prints: events recorded / received / lost / duplicated; delivery latency
p50/p99 outside the outage (record -> listener, same clock); broker CPU and
peak RSS; bytes per kiosk per day at the given item rate (MQTT payload,
topic and header bytes of every message the kiosk sends, its PUBACKs and
keep-alives; TCP/TLS overhead not counted).

    python benchmarks/fleet_sim.py --kiosks 1000 [--minutes 3] [--speed 20] [--outage-s 30] [--items-per-hour 40]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kiosk.appliance.eventlog import EventLog  # noqa: E402
from kiosk.config import FleetConfig  # noqa: E402
from kiosk.datatypes import Decision  # noqa: E402
from kiosk.fleet.publisher import FleetPublisher, STATUS_EVERY_S, FILL_EVERY_S  # noqa: E402
from tests.broker import Broker, wait_until  # noqa: E402

PREFIX = "city"
BINS = ("glass", "paper", "packaging", "residual")


class Counter:
    """The city's side: every message on ``#``, its size, and each event's delivery latency."""

    def __init__(self, port: int):
        self.lock = threading.Lock()
        self.events: dict[str, int] = {}  # event id -> times received
        self.latency: list[tuple[float, float]] = []  # (received at, seconds)
        self.bytes_by_topic: dict[str, int] = {}
        self.count_by_topic: dict[str, int] = {}
        self.connect(port)

    def connect(self, port: int) -> None:
        """(Again, after the broker restarts, same session.) The tallies go on."""
        import paho.mqtt.client as mqtt

        # a persistent session, like a city's consumer: what arrives while it reconnects is kept for it
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="city-counter", clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{PREFIX}/#", qos=1)
        self.client.on_message = self.on_message
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()

    def on_message(self, client, userdata, msg):
        now = time.time()
        name = msg.topic.rsplit("/", 1)[-1]
        with self.lock:
            # what the kiosk sent: fixed header (2) + topic length (2) + topic + packet id (2) + payload
            self.bytes_by_topic[name] = self.bytes_by_topic.get(name, 0) + 6 + len(msg.topic) + len(msg.payload)
            self.count_by_topic[name] = self.count_by_topic.get(name, 0) + 1
            if name == "events":
                e = json.loads(msg.payload)
                self.events[e["id"]] = self.events.get(e["id"], 0) + 1
                self.latency.append((now, now - dt.datetime.fromisoformat(e["time"]).timestamp()))

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


class MachineLoad:
    """Share of all CPUs busy, per 10 s window (from /proc/stat): tells a slow consumer from a full machine."""

    def __init__(self):
        self.busy: dict[int, float] = {}
        self._stop = threading.Event()
        self._t0 = time.time()
        threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def _sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields), idle

    def _run(self) -> None:
        total0, idle0 = self._sample()
        while not self._stop.wait(10.0):
            total, idle = self._sample()
            if total > total0:
                self.busy[int((time.time() - self._t0 - 10) // 10)] = 1 - (idle - idle0) / (total - total0)
            total0, idle0 = total, idle

    def stop(self) -> None:
        self._stop.set()


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds so far, peak RSS in bytes) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return cpu, peak


def run_group(first: int, count: int, port: int, work: Path, args, t_end: float, conn) -> None:
    """A child process: kiosks ``first..first+count`` sorting until ``t_end`` (wall), then drained and closed.

    Groups, because paho watches its socket with select(), which cannot see a
    file descriptor above 1024: a few hundred kiosks with their SQLite files in
    one process pass that. A real kiosk has one client and a handful of files.
    """
    import logging

    logging.disable(logging.ERROR)  # a thousand kiosks losing their broker at once would fill the screen
    rng = random.Random(args.seed * 100003 + first)
    kiosks = []
    for i in range(first, first + count):
        log = EventLog(work / f"k{i}.db")
        state = SimpleNamespace(faults=(), fill={b: rng.random() * 0.5 for b in BINS}, refused=frozenset())
        cfg = FleetConfig(enabled=True, host="127.0.0.1", port=port, tls=None, site_id=f"kiosk-{i:04d}",
                          topic_prefix=PREFIX, keepalive_s=60)
        pub = FleetPublisher(cfg, log, (lambda s=state: s), software="sim", model="kiosk-lite0@sim", tick_s=2.0,
                             capacity_kg={b: 20.0 for b in BINS})
        log.on_decision.append(pub.nudge)
        kiosks.append((log, state, pub))
    connected = wait_until(lambda: all(p.connected for _, _, p in kiosks), 120, every=0.2)
    conn.send(("connected", connected))
    rate = args.items_per_hour * args.speed / 3600.0  # items per wall second per kiosk
    import heapq

    # the next item of each kiosk, soonest first: the loop sleeps until it is due (a poll of every kiosk
    # every few ms cost the machine more than the kiosks' own telemetry)
    due = [(time.monotonic() + rng.expovariate(rate), i) for i in range(len(kiosks))]
    heapq.heapify(due)
    recorded = 0
    while time.time() < t_end:
        at, i = due[0]
        wait = at - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, 0.5))
            continue
        log, state, _ = kiosks[i]
        b = rng.choice(BINS)
        log.record_decision(Decision(t=0, label=b, bin_id=b, score=0.9, weight_g=rng.uniform(20, 400)))
        state.fill = {**state.fill, b: min(1.0, state.fill[b] + args.fill_step)}
        recorded += 1
        heapq.heapreplace(due, (at + rng.expovariate(rate), i))
    drained = wait_until(lambda: all(log.backlog() == 0 for log, _, _ in kiosks), 300, every=1.0)
    stuck = [(pub.cfg.site_id, pub.connected, log.backlog(), [f.message for f in pub.faults()],
              len(pub._in_flight), pub._client.is_connected(), len(pub._client._out_messages),
              pub._thread.is_alive(), log.unpublished(3))
             for log, _, pub in kiosks if log.backlog()]
    for st in stuck[:3]:
        print("not drained:", st, file=sys.stderr, flush=True)
    for log, _, pub in kiosks:
        pub.close()
        log.close()
    conn.send(("done", recorded, drained))
    conn.close()


def main(argv=None) -> int:
    import multiprocessing as mp

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kiosks", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=3.0, help="wall-clock length of the run")
    ap.add_argument("--speed", type=float, default=20.0, help="kiosk time runs this many times faster")
    ap.add_argument("--items-per-hour", type=float, default=40.0, help="items per kiosk per (kiosk) hour")
    ap.add_argument("--outage-s", type=float, default=30.0, help="wall seconds the broker is down, half-way")
    ap.add_argument("--fill-step", type=float, default=0.004,
                    help="fill fraction one item adds (0.004: a 120 l bin holds some 250 items)")
    ap.add_argument("--per-process", type=int, default=100, help="simulated kiosks per process")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.kiosks * 4 + 256  # the broker's side: a socket per kiosk
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    work = Path(tempfile.mkdtemp(prefix="fleet-sim-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    broker = Broker(work / "broker", persistent=True).start()
    counter = Counter(broker.port)
    t0 = time.monotonic()
    start_wall = time.time()
    load = MachineLoad()
    t_end = start_wall + 60 + args.minutes * 60  # a minute to connect everyone, then the run
    ctx = mp.get_context("fork")
    groups = []
    for first in range(0, args.kiosks, args.per_process):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=run_group, args=(first, min(args.per_process, args.kiosks - first), broker.port, work,
                                                args, t_end, child), daemon=True)
        p.start()
        groups.append((p, parent))
    connected = all(conn.recv() == ("connected", True) for _, conn in groups)
    connected_in = time.monotonic() - t0
    cpu0, _ = proc_stats(broker.proc.pid)
    peak_rss, broker_cpu = 0, 0.0
    outage_at = time.time() + max(0.0, (t_end - time.time()) / 2)
    time.sleep(max(0.0, outage_at - time.time()))
    cpu, rss = proc_stats(broker.proc.pid)
    broker_cpu, peak_rss = broker_cpu + cpu - cpu0, max(peak_rss, rss)
    # A restart, as for an upgrade: SIGTERM, so Mosquitto saves its queues (a SIGKILLed Mosquitto loses what it
    # acknowledged since its last autosave; the kiosk's own side of a kill is tests/test_fleet.py's outage test)
    broker.stop()
    outage = (time.time(), time.time() + args.outage_s)
    time.sleep(args.outage_s)
    broker.start()
    counter.close()
    counter.connect(broker.port)
    cpu0, _ = proc_stats(broker.proc.pid)
    results = [conn.recv() for _, conn in groups]
    for p, _ in groups:
        p.join(timeout=60)
    drained = all(r[2] for r in results)
    ids = set()
    for i in range(args.kiosks):
        with sqlite3.connect(str(work / f"k{i}.db")) as db:
            ids |= {u for (u,) in db.execute("SELECT uid FROM decisions")}
    # Every outbox is drained (the broker acknowledged each event); what the broker still holds for the
    # consumer is on its way, not lost: wait for it (a fixed pause here once counted a lagging consumer as loss).
    t_drained = time.monotonic()

    def caught_up() -> bool:
        with counter.lock:
            return ids.issubset(counter.events)

    wait_until(caught_up, 300, every=0.5)
    catch_up_s = time.monotonic() - t_drained
    cpu, rss = proc_stats(broker.proc.pid)
    broker_cpu, peak_rss = broker_cpu + cpu - cpu0, max(peak_rss, rss)
    run_minutes = (time.time() - start_wall) / 60
    counter.close()
    broker.stop()
    with counter.lock:
        got = counter.events
        lost = len(ids - set(got))
        dup = sum(n - 1 for n in got.values())
        outside = sorted(lat for at, lat in counter.latency
                         if outage is None or not (outage[0] - 1 <= at <= outage[1] + 60))
        sizes = {k: counter.bytes_by_topic[k] / max(1, counter.count_by_topic[k]) for k in counter.bytes_by_topic}
        windows: dict[int, list[float]] = {}
        for at, lat in counter.latency:
            windows.setdefault(int((at - start_wall) // 10), []).append(lat)
    for w, lats in sorted(windows.items()):  # where the slow deliveries were, 10 s windows
        lats.sort()
        print(f"  t={w * 10:4d}s n={len(lats):6d} p50 {lats[len(lats) // 2] * 1000:6.0f} ms"
              f" p99 {lats[int(0.99 * (len(lats) - 1))] * 1000:6.0f} ms"
              f" CPUs busy {100 * load.busy.get(w, float('nan')):3.0f} %", file=sys.stderr)
    load.stop()
    p50 = statistics.median(outside) if outside else float("nan")
    p99 = outside[int(0.99 * (len(outside) - 1))] if outside else float("nan")
    items_per_day = args.items_per_hour * 24
    # Per day from the measured sizes, counted per item and per heartbeat rather than scaled from this run: the
    # heartbeats and the status's last item (to the minute) run on the wall clock, not --speed times faster, so a
    # sped-up run sends fewer of them per item than a real kiosk. Each message + its PUBACK (4 B).
    per_day = (items_per_day * (sizes.get("events", 0) + 4)
               + items_per_day * (sizes.get("status", 0) + 4)  # a status per item at most (its last item's minute)
               + 86400 / STATUS_EVERY_S * (sizes.get("status", 0) + sizes.get("health", 0) + 8)
               + 86400 / FILL_EVERY_S * (sizes.get("fill", 0) + 4)
               + items_per_day * min(1.0, args.fill_step / 0.01) * (sizes.get("fill", 0) + 4)  # sent in 1 % steps
               + 86400 / 60 * 4  # keep-alive ping and answer
               + sizes.get("daily", 0))
    per_event = {k: n / max(1, len(ids)) for k, n in counter.count_by_topic.items()}
    from kiosk.model.cpuinfo import cpu_info

    print(f"kiosks: {args.kiosks} in {len(groups)} processes, "
          f"{'all connected' if connected else 'NOT ALL CONNECTED'} after {connected_in:.0f} s")
    print(f"events: {len(ids)} recorded, {len(got)} received, {lost} lost, {dup} duplicated"
          f"{'' if drained else ' (outboxes not drained!)'}; the consumer had the last "
          f"{catch_up_s:.1f} s after the last outbox drained")
    print(f"latency outside the outage: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms ({len(outside)} events)")
    print(f"outage: broker down {args.outage_s:.0f} s = {args.outage_s * args.speed / 60:.0f} min of kiosk time")
    print(f"broker: {broker_cpu:.1f} CPU s over {run_minutes:.1f} min ({100 * broker_cpu / (run_minutes * 60):.0f} % "
          f"of one core), peak RSS {peak_rss / 1e6:.0f} MB")
    print(f"bytes per kiosk per day at {items_per_day:.0f} items/day: {per_day / 1e6:.2f} MB "
          f"(message sizes: {', '.join(f'{k} {v:.0f} B' for k, v in sorted(sizes.items()))}; received in this run "
          f"per event recorded: {', '.join(f'{k} {v:.2f}' for k, v in sorted(per_event.items()))})")
    print(f"measured on: {cpu_info().describe()}, mosquitto on loopback, python {sys.version.split()[0]}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if lost == 0 and drained and connected else 1


if __name__ == "__main__":
    sys.exit(main())
