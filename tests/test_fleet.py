"""Fleet telemetry against a real Mosquitto on loopback: topics, the outbox, outages, kills, bad credentials."""

from __future__ import annotations

import os
import signal
import time
from types import SimpleNamespace

import pytest

from kiosk.appliance.eventlog import EventLog
from kiosk.config import FleetConfig, FleetTlsConfig
from kiosk.datatypes import Decision
from kiosk.faults import Fault, PartKind
from tests.broker import Broker, Listener, make_certs, needs_mosquitto, wait_until


@pytest.fixture(autouse=True)
def _mosquitto():
    """Every test here, as before: skipped without mosquitto on a desktop; in CI that fails instead."""
    needs_mosquitto()

PREFIX, SITE = "city", "kiosk-7"


def fleet(port, **kw) -> FleetConfig:
    return FleetConfig(**{"enabled": True, "host": "127.0.0.1", "port": port, "tls": None, "site_id": SITE,
                          "topic_prefix": PREFIX, "keepalive_s": 10, **kw})


def view(faults=(), fill=None):
    return SimpleNamespace(faults=tuple(faults), fill=fill if fill is not None else {"glass": 0.9, "paper": 0.2},
                           refused=frozenset())


def record(log: EventLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        log.record_decision(Decision(t=0, label="glass", bin_id="glass", score=0.9, weight_g=100.0 + i))


def uids(log_path) -> set[str]:
    import sqlite3

    with sqlite3.connect(str(log_path)) as conn:
        return {u for (u,) in conn.execute("SELECT uid FROM decisions")}


def publisher(cfg, log, state=None, **kw):
    from kiosk.fleet.publisher import FleetPublisher

    current = state if state is not None else view()
    return FleetPublisher(cfg, log, lambda: current if not callable(current) else current(), software="0.1.0",
                          model="kiosk-lite0@abc", next_steps={"E200": "check the camera cable"},
                          capacity_kg={"glass": 30.0}, **kw)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


def test_events_and_retained_state_reach_the_broker(tmp_path, broker):
    log = EventLog(tmp_path / "events.db")
    record(log, 20)
    listener = Listener(broker)
    state = {"v": view()}
    pub = publisher(fleet(broker.port), log, state=lambda: state["v"])
    try:
        assert wait_until(lambda: len({e["id"] for e in listener.on("events")}) == 20, 20), listener.messages[-5:]
        assert wait_until(lambda: log.backlog() == 0, 10)  # marked only once the broker acknowledged them
        event = listener.on("events")[0]
        assert event["schema"] == 1 and event["site"] == SITE and event["class"] == "glass" and event["bin"] == "glass"
        assert event["id"] in uids(tmp_path / "events.db")
        (status,) = listener.on("status")[-1:]
        assert status["online"] is True and status["model"] == "kiosk-lite0@abc" and status["software"] == "0.1.0"
        fill = listener.on("fill")[-1]
        assert fill["bins"]["glass"] == {"fill_pct": 90.0, "kg": 27.0, "alert": True, "refusing": False}
        assert fill["bins"]["paper"]["alert"] is False
        assert listener.on("health")[-1]["faults"] == []
        state["v"] = view(faults=[Fault("E200", PartKind.CAMERA, "no frames for 5 s")])
        assert wait_until(lambda: listener.on("health")[-1]["faults"] != [], 10)
        (f,) = listener.on("health")[-1]["faults"]
        assert f == {"code": "E200", "part": "camera", "message": "no frames for 5 s", "blocking": True,
                     "next_step": "check the camera cable"}
        assert pub.faults() == []
    finally:
        pub.close()
    assert wait_until(lambda: listener.on("status")[-1]["online"] is False, 5)
    assert listener.on("status")[-1]["reason"] == "stopped"
    late = Listener(broker)  # retained: a dashboard that connects later sees the last state at once
    try:
        assert wait_until(lambda: late.on("status") and late.on("fill") and late.on("health"), 5)
    finally:
        late.close()
        listener.close()
        log.close()


def test_status_is_not_sent_again_for_every_item(tmp_path, broker):
    """An item in flight is no backlog worth a status: 1,000 kiosks x 960 items a day would double their traffic."""
    log = EventLog(tmp_path / "events.db")
    listener = Listener(broker)
    pub = publisher(fleet(broker.port), log)
    log.on_decision.append(pub.nudge)
    try:
        assert wait_until(lambda: listener.on("status"), 10)
        record(log, 1)
        assert wait_until(lambda: log.backlog() == 0, 10)
        before = len(listener.on("status"))
        for i in range(10):
            record(log, 1, start=1 + i)
            assert wait_until(lambda: log.backlog() == 0, 10)
            time.sleep(0.3)
        assert len(listener.on("status")) - before <= 2  # the last item's minute may turn once
        assert listener.on("status")[-1]["backlog"] in (0, 1)
    finally:
        pub.close()
        listener.close()
        log.close()


def test_daily_counts_are_for_the_local_day_and_sent_after_local_midnight(tmp_path, broker, monkeypatch):
    """UTC+10: 23:59 and 00:01 local are the same UTC day; the city's daily counts follow the kiosk's own midnight."""
    import datetime as dt

    monkeypatch.setenv("TZ", "XXX-10")  # POSIX: 10 hours east of UTC, no tz database needed
    time.tzset()
    try:
        day = dt.date(2026, 3, 4)

        def local(d, hh, mm):
            return dt.datetime.combine(d, dt.time(hh, mm)).timestamp()

        now = {"t": local(day, 23, 59)}
        log = EventLog(tmp_path / "events.db", clock=lambda: now["t"])
        record(log, 2)  # day: 23:59
        now["t"] = local(day + dt.timedelta(days=1), 0, 1)
        record(log, 1)  # the next day: 00:01
        listener = Listener(broker)
        pub = publisher(fleet(broker.port), log, clock=lambda: now["t"])
        try:
            assert wait_until(lambda: listener.on("daily"), 10)
            first = listener.on("daily")[-1]
            assert first["day"] == "2026-03-04" and first["items"] == 2 and first["bins"] == {"glass": 2}
            assert first["classes"] == {"glass": 2}
            time.sleep(0.5)
            assert len(listener.on("daily")) == 1  # once a day, not every tick
            now["t"] = local(day + dt.timedelta(days=2), 0, 0) + 1  # just past the next midnight
            assert wait_until(lambda: listener.on("daily")[-1]["day"] == "2026-03-05", 10)
            assert listener.on("daily")[-1]["items"] == 1
        finally:
            pub.close()
            listener.close()
            log.close()
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_the_fill_alert_level_is_the_config_s(tmp_path, broker, config_dict):
    from kiosk.config import parse_config

    config_dict["fleet"] = {"enabled": True, "host": "127.0.0.1", "site_id": SITE, "fill_alert": 0.5}
    cfg = parse_config(config_dict, base_dir=tmp_path, check_model=False)
    assert cfg.fleet.fill_alert == 0.5
    log = EventLog(tmp_path / "events.db")
    listener = Listener(broker)
    pub = publisher(cfg.fleet.model_copy(update={"port": broker.port, "tls": None}), log,
                    state=view(fill={"glass": 0.55, "paper": 0.45}))
    try:
        assert wait_until(lambda: listener.on("fill"), 10)
        fill = listener.on("fill")[-1]
        assert fill["alert_at"] == 0.5 and fill["bins"]["glass"]["alert"] is True
        assert fill["bins"]["paper"]["alert"] is False
    finally:
        pub.close()
        listener.close()
        log.close()


def test_an_old_acknowledgement_never_marks_a_new_event_sent(tmp_path, broker):
    """Message ids wrap at 65,535 and status/fill acknowledgements are not events': one left over from before an
    event was sent must not mark it sent. The broker is paused (SIGSTOP): no PUBACK can come for the new event."""
    log = EventLog(tmp_path / "events.db")
    pub = publisher(fleet(broker.port), log)
    log.on_decision.append(pub.nudge)
    try:
        record(log, 1)
        assert wait_until(lambda: log.backlog() == 0, 10)
        time.sleep(0.5)
        broker.proc.send_signal(signal.SIGSTOP)
        try:
            nxt = pub._client._last_mid + 1
            for mid in range(nxt, nxt + 5):  # acknowledgements of older messages that had the ids coming next
                pub._on_publish(pub._client, None, mid, None, None)
            record(log, 1, start=1)
            assert wait_until(lambda: pub.sent == 2, 5)
            time.sleep(0.5)
            assert log.backlog() == 1  # sent, not acknowledged: still in the outbox
        finally:
            broker.proc.send_signal(signal.SIGCONT)
        assert wait_until(lambda: log.backlog() == 0, 20)  # its own PUBACK
    finally:
        pub.close()
        log.close()


def test_a_broker_outage_loses_nothing(tmp_path):
    """Killed mid-stream and started again: every event reaches the consumer. The consumer keeps a persistent
    session, as a city's does, so what the kiosk resends before the consumer is back is queued for it, not
    dropped; a consumer that subscribed afterwards could not see it, whatever the kiosk did."""
    broker = Broker(tmp_path / "broker", persistent=True).start()
    log = EventLog(tmp_path / "events.db")
    consumer = Listener(broker, session="city-consumer")
    saved = tmp_path / "broker" / "mosquitto.db"  # the broker saves every second: the subscription must be in it
    assert wait_until(lambda: saved.exists() and saved.stat().st_mtime > consumer.subscribed_at, 10)
    pub = publisher(fleet(broker.port), log)
    try:
        record(log, 10)
        assert wait_until(lambda: log.backlog() == 0, 20)
        # delivered before the kill: what a killed broker held only in memory is the broker's loss, not the kiosk's
        assert wait_until(lambda: len(consumer.on("events")) >= 10, 20)
        broker.kill()  # the network goes away mid-stream
        record(log, 30, start=10)
        assert wait_until(lambda: pub.faults() and pub.faults()[0].code == "E602", 20), pub.faults()
        assert log.backlog() == 30  # nothing marked while nobody acknowledged
        broker.start()
        assert wait_until(lambda: log.backlog() == 0, 60)
        logged = uids(tmp_path / "events.db")
        # every logged event arrived at least once
        assert wait_until(lambda: {e["id"] for e in consumer.on("events")} == logged, 30), \
            len(logged - {e["id"] for e in consumer.on("events")})
        assert wait_until(lambda: pub.faults() == [], 5)
    finally:
        pub.close()
        consumer.close()
        log.close()
        broker.stop()


def test_a_sigkill_mid_publish_loses_nothing_and_says_offline(tmp_path, broker):
    path = tmp_path / "events.db"
    with EventLog(path) as log:
        record(log, 300)
    listener = Listener(broker)
    pid = os.fork()
    if pid == 0:  # the kiosk: publishing its backlog while it goes on sorting
        try:
            child_log = EventLog(path)
            pub = publisher(fleet(broker.port), child_log)
            child_log.on_decision.append(pub.nudge)
            for i in range(6000):
                record(child_log, 1, start=300 + i)
                time.sleep(0.005)
        finally:
            os._exit(0)
    try:
        assert wait_until(lambda: len(listener.on("events")) >= 50, 30)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert wait_until(lambda: listener.on("status") and listener.on("status")[-1]["online"] is False, 20)
    assert listener.on("status")[-1]["reason"] == "connection lost"  # the broker's Last Will
    with EventLog(path) as log:
        left = log.backlog()
        pub = publisher(fleet(broker.port), log)  # the restart
        try:
            assert wait_until(lambda: log.backlog() == 0, 60)
        finally:
            pub.close()
    got = [e["id"] for e in listener.on("events")]
    assert set(got) == uids(path) and len(got) >= 300  # all of them; some maybe twice (at least once)
    assert left > 0  # the kill left events unsent (or sent and not yet marked): the restart sent them


def test_the_kiosk_connects_out_and_listens_on_no_port(tmp_path, broker, monkeypatch):
    """No listen() on any socket, no bind() but paho's to an ephemeral source port before it connects.

    paho's own wake-up pair would listen on 127.0.0.1 (kiosk.fleet.client); kiosk.service refuses listen().
    """
    import socket

    calls = []
    for name in ("bind", "listen"):
        real = getattr(socket.socket, name)
        monkeypatch.setattr(socket.socket, name, lambda self, *a, _n=name, _r=real: (calls.append((_n, a)), _r(self, *a))[1])
    log = EventLog(tmp_path / "events.db")
    record(log, 3)
    pub = publisher(fleet(broker.port), log)
    try:
        assert wait_until(lambda: log.backlog() == 0, 20), pub.faults()  # connected, sent, acknowledged
        pub._client.disconnect()  # and a reconnection makes its sockets again
        assert wait_until(lambda: pub.connected, 20)
        record(log, 2, start=3)
        pub.nudge()
        assert wait_until(lambda: log.backlog() == 0, 20), pub.faults()
    finally:
        pub.close()
        log.close()
    assert [c for c in calls if c[0] == "listen" or c[1][0][1] != 0] == []


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


def test_tls_with_a_password_and_what_wrong_credentials_do(tmp_path, certs):
    broker = Broker(tmp_path / "broker", tls=certs, users={"kiosk-7": "right horse"}).start()
    (tmp_path / "pw").write_text("right horse\n")
    (tmp_path / "wrong").write_text("wrong horse\n")
    for name in ("pw", "wrong"):  # the kiosk's alone, or kiosk doctor fails them before it asks the broker
        (tmp_path / name).chmod(0o600)
    log = EventLog(tmp_path / "events.db")
    record(log, 5)
    tls = FleetTlsConfig(ca_file=str(certs["ca"]))
    try:
        bad = publisher(fleet(broker.port, host="localhost", tls=tls, username="kiosk-7",
                              password_file=str(tmp_path / "wrong")), log)
        try:
            assert wait_until(lambda: bad.faults() and bad.faults()[0].code == "E601", 20), bad.faults()
            assert "refused" in bad.faults()[0].message
        finally:
            bad.close()
        other = publisher(fleet(broker.port, host="localhost", tls=FleetTlsConfig(ca_file=str(certs["other_ca"])),
                                username="kiosk-7", password_file=str(tmp_path / "pw")), log)
        try:
            assert wait_until(lambda: other.faults() and other.faults()[0].code == "E602", 20), other.faults()
            assert "certificate does not verify" in other.faults()[0].message
        finally:
            other.close()
        missing = publisher(fleet(broker.port, host="localhost", tls=tls, username="kiosk-7",
                                  password_file=str(tmp_path / "none")), log)
        try:
            assert missing.faults()[0].code == "E603" and "password_file" in missing.faults()[0].message
        finally:
            missing.close()
        assert log.backlog() == 5  # nothing marked by the failed ones
        from types import SimpleNamespace as NS

        from kiosk.appliance.doctor import check_fleet

        def doctor(password_file, ca=certs["ca"]):
            return check_fleet(NS(fleet=fleet(broker.port, host="localhost", tls=FleetTlsConfig(ca_file=str(ca)),
                                              username="kiosk-7", password_file=str(password_file)),
                                  data_dir=tmp_path, resolve=lambda p: tmp_path / p))

        assert doctor(tmp_path / "pw")[0] is True  # the same faults in kiosk doctor, with the same codes
        assert doctor(tmp_path / "wrong")[1].startswith("[E601] ") and "refused" in doctor(tmp_path / "wrong")[1]
        assert doctor(tmp_path / "pw", ca=certs["other_ca"])[1].startswith("[E602] ")
        assert doctor(tmp_path / "none")[1].startswith("[E603] fleet.password_file")
        listener = Listener(broker, user="kiosk-7", password="right horse", ca=certs["ca"])
        good = publisher(fleet(broker.port, host="localhost", tls=tls, username="kiosk-7",
                               password_file=str(tmp_path / "pw")), log)
        try:
            assert wait_until(lambda: log.backlog() == 0, 20), good.faults()
            assert len({e["id"] for e in listener.on("events")}) == 5 and good.faults() == []
        finally:
            good.close()
            listener.close()
    finally:
        log.close()
        broker.stop()


def test_a_client_certificate_for_the_kiosk_and_for_doctor(tmp_path, certs):
    """fleet.tls.cert_file/key_file: the broker asks for a client certificate; the kiosk and kiosk doctor give it."""
    from types import SimpleNamespace as NS

    from kiosk.appliance.doctor import check_fleet

    broker = Broker(tmp_path / "broker", tls=certs, client_certificates=True).start()
    log = EventLog(tmp_path / "events.db")
    record(log, 3)
    tls = FleetTlsConfig(ca_file=str(certs["ca"]), cert_file=str(certs["client_cert"]), key_file=str(certs["client_key"]))
    cfg = fleet(broker.port, host="localhost", tls=tls)
    try:
        pub = publisher(cfg, log)
        try:
            assert wait_until(lambda: log.backlog() == 0, 20), pub.faults()
        finally:
            pub.close()
        doctor_cfg = NS(fleet=cfg, data_dir=tmp_path, resolve=lambda p: tmp_path / p)
        ok, detail = check_fleet(doctor_cfg)
        assert ok is True and "answers" in detail
        without = NS(fleet=fleet(broker.port, host="localhost", tls=FleetTlsConfig(ca_file=str(certs["ca"]))),
                     data_dir=tmp_path, resolve=lambda p: tmp_path / p)
        assert check_fleet(without)[0] is False  # and the broker does refuse one without
        from kiosk.cli import main as cli_main

        assert cli_main(["fleet", "status", "--broker", f"localhost:{broker.port}", "--prefix", PREFIX, "--wait", "0.5",
                         "--ca", str(certs["ca"]), "--cert", str(certs["client_cert"]),
                         "--key", str(certs["client_key"])]) == 0
    finally:
        log.close()
        broker.stop()


def test_fleet_faults_are_warnings_on_the_kiosk(cfg_with):
    """A broker problem is shown (service screen, STATUS) and the kiosk sorts on."""
    from tests.fakes import FakeHardware
    from tests.test_main import unsure_worker

    w = unsure_worker(cfg_with, FakeHardware())
    current = [Fault("E602", PartKind.FLEET, "fleet broker 10.0.0.1:8883 not reachable")]
    w.watch(frozenset({PartKind.FLEET}), lambda: current)
    w.step()
    assert [f.code for f in w.view().faults] == ["E602"] and w.view().screen != "out_of_service"
    current.clear()
    w.step()
    assert w.view().faults == ()


def test_fleet_config_is_checked(tmp_path, config_dict):
    from kiosk.config import ConfigError, parse_config

    config_dict["fleet"] = {"enabled": True}
    with pytest.raises(ConfigError) as e:
        parse_config(config_dict, base_dir=tmp_path, check_model=False)
    assert {"fleet.host: required when fleet.enabled is true", "fleet.site_id: required when fleet.enabled is true"} <= \
        set(e.value.problems)
    config_dict["fleet"] = {"enabled": True, "host": "mqtt.city.example"}  # the kiosk's one name: site.id
    config_dict["site"] = {"id": "kiosk-0042"}
    assert parse_config(config_dict, base_dir=tmp_path, check_model=False).fleet.site_id == "kiosk-0042"
    config_dict.pop("site")
    config_dict["fleet"] = {"password_file": "/x", "site_id": "a b"}
    with pytest.raises(ConfigError) as e:
        parse_config(config_dict, base_dir=tmp_path, check_model=False)
    assert any(p.startswith("fleet.site_id") for p in e.value.problems)


def test_fleet_status_prints_one_line_per_kiosk(tmp_path, broker, capsys):
    """Two kiosks report, one goes away without a word: the technician's view from the broker alone."""
    import json as _json

    from kiosk.cli import main as cli_main

    logs = [EventLog(tmp_path / f"e{i}.db") for i in range(2)]
    for log in logs:
        record(log, 3)
    pubs = [publisher(fleet(broker.port, site_id=f"kiosk-{i}"), log,
                      state=view(faults=[Fault("E410", PartKind.FLAP, "jammed", "glass")] if i else ()))
            for i, log in enumerate(logs)]
    try:
        assert wait_until(lambda: all(log.backlog() == 0 for log in logs), 20)
        pubs[1].close()  # kiosk-1 is switched off (a vanished one is the Last Will: see the SIGKILL test)
        assert cli_main(["fleet", "status", "--broker", f"127.0.0.1:{broker.port}", "--prefix", PREFIX,
                         "--wait", "1"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 2 and lines[0].startswith("kiosk-0  online  faults: none  fullest: glass 90% ALERT")
        assert lines[1].startswith("kiosk-1  OFFLINE  faults: E410 flap:glass")
        assert "model: kiosk-lite0@abc" in lines[0] and "last item: 20" in lines[0]
        assert cli_main(["fleet", "status", "--broker", f"127.0.0.1:{broker.port}", "--prefix", PREFIX,
                         "--wait", "1", "--json"]) == 0
        rows = _json.loads(capsys.readouterr().out)
        assert [r["site"] for r in rows] == ["kiosk-0", "kiosk-1"] and rows[0]["fullest_bin"]["bin"] == "glass"
    finally:
        for p in pubs:
            p.close()
        for log in logs:
            log.close()
    assert cli_main(["fleet", "status", "--broker", "127.0.0.1:1", "--wait", "0.5"]) == 1  # nothing there
    assert "E602" in capsys.readouterr().err


def test_doctor_checks_the_broker_and_shows_the_backlog(tmp_path, broker):
    from types import SimpleNamespace as NS

    from kiosk.appliance.doctor import check_fleet

    log = EventLog(tmp_path / "events.db")
    record(log, 4)
    log.close()
    cfg = NS(fleet=fleet(broker.port), data_dir=tmp_path, resolve=lambda p: tmp_path / p)
    ok, detail = check_fleet(cfg)
    assert ok is True and "answers" in detail and "4 events wait to be sent" in detail
    broker.stop()
    ok, detail = check_fleet(cfg)  # a FAIL row with the service screen's code, and the backlog
    assert ok is False and detail.startswith("[E602] ") and "4 events wait to be sent" in detail
    assert check_fleet(NS(fleet=FleetConfig(), data_dir=tmp_path))[0] is None  # off: SKIP


def test_the_readme_topic_table_is_the_code(repo):
    from kiosk.fleet.topics import TOPICS

    text = (repo / "README.md").read_text(encoding="utf-8")
    for name, (retained, qos, what) in TOPICS.items():
        assert f"| `<prefix>/<site_id>/{name}` | {'yes' if retained else 'no'} | {qos} | {what} |" in text, name


def test_the_kiosk_itself_publishes_what_it_sorts(tmp_path, broker, config_dict, scene_model):
    """`kiosk run` with fleet enabled: items the synthetic camera shows reach the broker; the log agrees."""
    import signal as _signal

    from tests.test_cli import start, wait_for, write_config

    config_dict["gpio"]["pin_factory"] = "mock"
    for b in config_dict["bins"]:
        b["scale"] = {"type": "none"}  # mock pins have no HX711 behind them (the demo simulates those)
    config_dict["fleet"] = {"enabled": True, "host": "127.0.0.1", "port": broker.port, "tls": None,
                            "site_id": "kiosk-run", "topic_prefix": PREFIX}
    path = write_config(tmp_path, config_dict, scene_model)
    listener = Listener(broker)
    proc = start(tmp_path, "run", "--config", str(path))
    try:
        assert wait_until(lambda: len(listener.on("events")) >= 1 or proc.poll() is not None, 90), \
            proc.log_path.read_text()[-3000:]
        assert listener.on("status")[-1]["online"] is True
        proc.send_signal(_signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
    assert listener.on("status")[-1]["online"] is False and listener.on("status")[-1]["reason"] == "stopped"
    sent = {e["id"] for e in listener.on("events")}
    assert sent <= uids(tmp_path / "data" / "events.db") and all(e["site"] == "kiosk-run" for e in listener.on("events"))
    assert "Traceback" not in wait_for(proc, "stopped", 1)


def test_reconnect_delays_are_jittered_within_their_bounds():
    """After a city-wide outage the kiosks must not all come back at one instant (the broker's thundering herd):
    the n-th delay is random in [1 s, min(60 s, 2^n s)]; the random source is injected and pinned here."""
    import random

    from kiosk.fleet.publisher import Backoff

    def delays(rng, n=10):
        b = Backoff(rng)
        return [b.next() for _ in range(n)]

    assert delays(lambda: 1.0) == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]  # the ceilings: doubling, capped
    assert delays(lambda: 0.0) == [1.0] * 10  # never sooner than a second
    assert delays(lambda: 0.5)[:4] == [1.0, 1.5, 2.5, 4.5]
    b = Backoff(lambda: 1.0)
    b.next(), b.next()
    b.reset()
    assert b.next() == 1.0  # a connection that worked starts the sequence again
    for seed in range(200):
        got = delays(random.Random(seed).random, 12)
        assert all(1.0 <= d <= min(60.0, 2.0 ** n) for n, d in enumerate(got)), (seed, got)
    # 1,000 kiosks at the cap: spread over the minute, not piled on one second (nor on the cap)
    at_cap = [delays(random.Random(seed).random, 12)[-1] for seed in range(1000)]
    per_second = [sum(1 for d in at_cap if s <= d < s + 1) for s in range(1, 60)]
    assert max(at_cap) - min(at_cap) > 50 and max(per_second) < 50, per_second


def test_the_publisher_waits_the_jittered_delay_between_tries(tmp_path):
    """The publisher's own retries draw from its injected random source: no broker on the port, delays pinned."""
    from kiosk.fleet.publisher import BACKOFF_FIRST_S
    from tests.broker import free_port

    log = EventLog(tmp_path / "events.db")
    drawn = []

    def rng():
        drawn.append(time.monotonic())
        return 0.0  # 1 s each time

    pub = publisher(fleet(free_port()), log, rng=rng)
    try:
        assert wait_until(lambda: len(drawn) >= 3, 10), drawn
        assert pub.faults()[0].code == "E602"
        gaps = [b - a for a, b in zip(drawn, drawn[1:])]
        assert all(g >= BACKOFF_FIRST_S - 0.05 for g in gaps), gaps  # waited, not hammering the port
    finally:
        pub.close()
        log.close()


def test_a_missing_mosquitto_fails_in_ci_and_skips_elsewhere(monkeypatch, repo):
    """As tests/test_kernels.py's qemu: with CI set, no broker is a failure, never a silent skip."""
    import re

    import tests.broker

    monkeypatch.setattr(tests.broker, "MOSQUITTO", None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="mosquitto not installed: CI must run the fleet tests"):
        needs_mosquitto()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        needs_mosquitto()
    # and no test file decides on its own (a skipif on MOSQUITTO would skip in CI too)
    for path in (repo / "tests").glob("test_*.py"):
        assert not re.search(r"MOSQUITTO\s+is\s+(not\s+)?None", path.read_text(encoding="utf-8")), path.name


def test_the_takeover_watch_counts_connections_closed_right_after_they_were_made():
    """Three short connections in a row raise it; a long one in between, or one that lasts, starts again."""
    from kiosk.fleet.publisher import TakeoverWatch

    now = [100.0]
    w = TakeoverWatch(clock=lambda: now[0], short_s=10.0, count=3)

    def session(lasting):
        w.connected()
        now[0] += lasting
        return w.disconnected()

    assert w.disconnected() is False  # never connected: nothing to count
    assert [session(0.2), session(0.2)] == [False, False]
    assert session(30.0) is False and w.short == 0  # a connection that lasted: a network's hiccups, not a clash
    assert [session(0.2), session(0.2)] == [False, False]
    w.failed()  # a try in between failed: the broker was away, nobody took the session over
    assert [session(0.2), session(9.9), session(0.1)] == [False, False, True]
    assert session(0.3) is True  # and it stays raised while they go on
    w.connected()
    now[0] += 5.0
    assert w.settled() is False
    now[0] += 5.0
    assert w.settled() is True and w.short == 0  # the other kiosk stopped: this connection holds


def test_two_kiosks_with_one_site_id_are_told_so(tmp_path, broker):
    """Both connect as kiosk-<site_id>; the broker closes the older each time and they take the session from each
    other. Not hidden by changing the client id (the Last Will is the id's): a warning that names site.id."""
    from kiosk.fleet.publisher import TakeoverWatch

    logs = [EventLog(tmp_path / f"events-{i}.db") for i in range(2)]
    kiosks = [publisher(fleet(broker.port), log, takeovers=TakeoverWatch()) for log in logs]
    try:
        def warned():
            return [k for k in kiosks if any(f.code == "E604" for f in k.faults())]

        # each reconnects after a backoff (1-2 s, 1-4 s, ...), so each session lasts until the other's next try
        assert wait_until(lambda: warned(), 40), [k.faults() for k in kiosks]
        # backed off between the takeovers (before, both reconnected every 0.2 s tick, for ever)
        assert all(k.backoff.failures > 0 for k in warned()), [k.backoff.failures for k in kiosks]
        message = warned()[0].faults()[0].message
        assert "another kiosk uses this site id?" in message and f"site.id '{SITE}'" in message, message
        assert warned()[0].faults()[0].part == PartKind.FLEET
        kiosks[1].close()  # the second kiosk renamed: the first's connection holds, and the warning goes
        assert wait_until(lambda: kiosks[0].faults() == [] and kiosks[0].connected, 40), kiosks[0].faults()
        assert wait_until(lambda: kiosks[0].backoff.failures == 0, 15)  # a connection that lasted ends the backoff
    finally:
        for k in kiosks:
            k.close()
        for log in logs:
            log.close()


def test_one_kiosk_whose_broker_restarts_is_not_told_of_a_twin(tmp_path, broker):
    """Connections closed soon after they were made, but a broker that was away in between (a try failed)."""
    log = EventLog(tmp_path / "events.db")
    pub = publisher(fleet(broker.port), log)
    try:
        for _ in range(4):
            assert wait_until(lambda: pub.connected, 20), pub.faults()
            broker.stop()
            assert wait_until(lambda: [f.code for f in pub.faults()] == ["E602"], 10), pub.faults()
            broker.start()
        assert wait_until(lambda: pub.connected, 20), pub.faults()
        assert [f.code for f in pub.faults()] == []
    finally:
        pub.close()
        log.close()
