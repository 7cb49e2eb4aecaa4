"""The kiosk's side of fleet telemetry: one thread that talks to the city's MQTT broker.

Why the event log is the outbox: an item is recorded once, in SQLite, before
anything is sent; the publisher sends the oldest unsent decisions and marks
one sent only when the broker acknowledges it (PUBACK, QoS 1). A broker or
network away for days, a restart, a SIGKILL mid-publish: the marks tell
what is left, so nothing is lost, and a message may arrive twice (consumers
de-duplicate on the event id). The sorting loop never waits on the network:
it records and moves on; this thread does the rest.

Connecting is done here, not in paho's loop thread, so a refused login or a
certificate that does not verify is a fault that says so (E601, E602), shown
on the service screen like any warning, and retried with backoff. The
connection only goes out: no port is opened on the kiosk.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import re
import ssl
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from kiosk.closing import Closable
from kiosk.config import FleetConfig, FleetTlsConfig
from kiosk.errors import KioskError
from kiosk.faults import Fault, PartKind
from kiosk.fleet import topics

log = logging.getLogger(__name__)

LOGIN_REFUSED = "E601"  # the broker refused the credentials (or the client certificate)
UNREACHABLE = "E602"  # no connection: network, broker down, TLS (the message says which)
CREDENTIALS = "E603"  # fleet.password_file or a TLS file cannot be read
TAKEN_OVER = "E604"  # the broker keeps closing the connection just after it is made: a second kiosk with this id?
IN_FLIGHT = 50  # events sent and not yet acknowledged, at most
ACK_TIMEOUT_S = 30.0  # an event sent this long ago without an acknowledgement is sent again
STATUS_EVERY_S = 300.0  # a heartbeat; a kiosk that vanishes is said offline at once by its Last Will
FILL_EVERY_S = 300.0
TICK_S = 0.2
RECHECK_S = 30.0  # the outbox is read again at least this often, even with nothing said to have changed
BACKOFF_FIRST_S = 1.0  # a failed connection is tried again after 1 s at the least
BACKOFF_MAX_S = 60.0  # and after a minute at the most


SHORT_SESSION_S = 10.0  # a connection the broker closes sooner than this after it was made is "short"
TAKEOVERS = 3  # short connections in a row that raise TAKEN_OVER


class FleetFileError(KioskError):
    """``fleet.password_file`` or a ``fleet.tls`` file the kiosk cannot use: the message names its key (E603)."""

    code = CREDENTIALS


class _Encrypted(Exception):
    pass


def _no_passphrase():
    raise _Encrypted  # never OpenSSL's prompt on the terminal: the kiosk has no one to type a passphrase


def _why(e: ssl.SSLError) -> str:
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(e))  # "[SSL] PEM lib", without where in CPython it was said


def tls_files(tls: FleetTlsConfig, resolve: Callable[[str], Path] = Path) -> dict[str, Optional[str]]:
    """``{"ca"|"cert"|"key": path or None}``, each set one resolved and readable, or a FleetFileError naming its key."""
    files: dict[str, Optional[str]] = {}
    for k in ("ca", "cert", "key"):
        value = getattr(tls, f"{k}_file")
        files[k] = str(resolve(value)) if value else None
        if value is None:
            continue
        path = Path(files[k])
        if not path.is_file():
            raise FleetFileError(f"fleet.tls.{k}_file: {path} not found")
        try:
            with path.open("rb"):
                pass
        except OSError as e:
            raise FleetFileError(f"fleet.tls.{k}_file: {path}: {e.strerror or e}") from None
    return files


def tls_context(files: dict[str, Optional[str]]) -> ssl.SSLContext:
    """The kiosk's TLS context from :func:`tls_files`' files, as the publisher and ``kiosk doctor`` use it.

    Why not ``ssl``'s own errors: "[SSL] PEM lib" does not say which of three files is wrong; the
    technician is told the key in kiosk.yaml (E603, as on the service screen), and why.
    """
    ca, cert, key = files.get("ca"), files.get("cert"), files.get("key")
    try:
        context = ssl.create_default_context(cafile=ca)
    except ssl.SSLError as e:
        raise FleetFileError(f"fleet.tls.ca_file: {ca} is not a PEM certificate ({_why(e)})") from None
    if not cert:
        return context
    try:  # the certificate alone first: load_cert_chain's error does not say which of the two files it was
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert)
    except ssl.SSLError as e:
        raise FleetFileError(f"fleet.tls.cert_file: {cert} is not a PEM certificate ({_why(e)})") from None
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except _Encrypted:
        raise FleetFileError(f"fleet.tls.{'key' if key else 'cert'}_file: {key or cert}: the key is encrypted; "
                             f"the kiosk needs it without a passphrase") from None
    except ssl.SSLError as e:
        if e.reason == "KEY_VALUES_MISMATCH":
            raise FleetFileError(f"fleet.tls.{'key' if key else 'cert'}_file: {key or cert} does not hold the key of "
                                 f"the certificate in fleet.tls.cert_file {cert} "
                                 f"({_why(e)})") from None
        if key:
            raise FleetFileError(f"fleet.tls.key_file: {key} is not a PEM private key ({_why(e)})") from None
        raise FleetFileError(f"fleet.tls.cert_file: {cert} holds no private key and fleet.tls.key_file is not set "
                             f"({_why(e)})") from None
    return context


class TakeoverWatch:
    """Counts connections the broker closes right after they were made: the sign of a second kiosk with the
    same site id.

    Why a count and not the client id: the id is ``kiosk-<site_id>`` because the broker's session and the
    Last Will ("offline") belong to it; a random suffix would hide the clash and leave a kiosk's Will to
    whichever connection the broker saw last. A broker given a second connection with one id closes the
    older (MQTT 3.1.1 says no more: paho reports an "Unspecified error" that a network cut would report
    too); both kiosks reconnect at once and take the session from each other, over and over, each
    connection living well under a second. One short connection is a network's hiccup; ``count`` in a row,
    each made again at the first try, is not (a broker restarting or out of reach fails a try in between). A broker that drops the kiosk for some other reason at once (an ACL, a packet too large) looks
    the same: the fault says both. ``clock`` is injected (monotonic seconds).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, short_s: float = SHORT_SESSION_S,
                 count: int = TAKEOVERS):
        self.clock, self.short_s, self.count = clock, short_s, count
        self.short = 0  # short connections in a row
        self._since: Optional[float] = None  # when the current connection was made

    def connected(self) -> None:
        self._since = self.clock()

    def disconnected(self) -> bool:
        """The connection ended: True when this makes ``count`` short ones in a row."""
        since, self._since = self._since, None
        if since is None:
            return False
        self.short = self.short + 1 if self.clock() - since < self.short_s else 0
        return self.short >= self.count

    def failed(self) -> None:
        """A connection could not be made: the broker was away (a restart, the network), no one took it over."""
        self.short = 0

    def settled(self) -> bool:
        """The current connection has lasted: whatever took it over before has stopped."""
        if self._since is not None and self.clock() - self._since >= self.short_s:
            self.short = 0
            return True
        return False


class Backoff:
    """Delays between connection attempts: "full jitter" with a floor, each uniform in
    [``first``, min(``most``, ``first`` x 2^n)] after the n-th failure in a row.

    Why random: a city's kiosks lose their broker together (its restart, a district's network); with fixed
    delays they would all come back at the same instant, again and again. Spread over the whole interval, a
    thousand kiosks at the one-minute cap come back some 17 a second. Why not decorrelated jitter: capped, it
    piles two in three of them onto the cap itself. ``rng`` (0 <= x <= 1) is injected so a test can pin it.
    """

    def __init__(self, rng: Callable[[], float] = random.random, first: float = BACKOFF_FIRST_S,
                 most: float = BACKOFF_MAX_S):
        self.rng, self.first, self.most = rng, first, most
        self.failures = 0

    def next(self) -> float:
        ceiling = min(self.most, self.first * 2.0 ** min(self.failures, 30))
        self.failures += 1
        return self.first + min(max(self.rng(), 0.0), 1.0) * (ceiling - self.first)

    def reset(self) -> None:
        self.failures = 0


class FleetPublisher(Closable):
    """Publishes ``status``, ``health``, ``fill``, ``events`` and ``daily`` (kiosk.fleet.topics) from its own thread.

    ``view``: the worker's latest View (faults, fill). ``eventlog``: the
    kiosk's EventLog (the outbox). ``resolve``: config-relative paths.
    """

    def __init__(self, cfg: FleetConfig, eventlog, view: Callable[[], object], *, software: str,
                 model: Optional[str] = None, resolve: Callable[[str], Path] = Path,
                 next_steps: Optional[dict[str, str]] = None, clock: Callable[[], float] = time.time,
                 connect_timeout_s: float = 10.0, tick_s: float = TICK_S,
                 capacity_kg: Optional[dict[str, float]] = None, rng: Callable[[], float] = random.random,
                 takeovers: Optional[TakeoverWatch] = None):
        from kiosk.fleet import client

        self.cfg = cfg
        self.eventlog = eventlog
        self.view = view
        self.software, self.model = software, model
        self.next_steps = next_steps or {}
        self.clock = clock
        self.connect_timeout_s = connect_timeout_s
        self.tick_s = tick_s
        self.backoff = Backoff(rng)
        self.takeovers = takeovers or TakeoverWatch()
        self.capacity_kg = dict(capacity_kg or {})
        self._wake = threading.Event()  # nudge(): an item was recorded, send it now rather than at the next tick
        self.started = clock()
        self._fault: Optional[Fault] = None
        # Never held across a paho call: paho calls on_publish holding its own locks (lock order).
        self._lock = threading.RLock()
        self._in_flight: dict[int, tuple[int, float]] = {}  # paho message id -> (decision id, sent at)
        # message id -> when its acknowledgement came, unmapped: an event's, before its id was mapped (a fast broker),
        # or a status/health/fill/daily message's. Only one that came after the event was sent is the event's:
        # message ids wrap at 65,535, and an old status's id must never mark a new event sent.
        self._early: dict[int, float] = {}
        self._session = 0  # +1 at every disconnect: a mapping made for an older session is void
        self._connects = 0  # +1 at every accepted connection: _connect sees one even if it is closed at once
        self._acked: list[int] = []
        # Why a flag: an idle tick must cost nothing. The outbox is read only when something may have changed
        # (an item recorded, an acknowledgement, a new session, a send timed out) or RECHECK_S passed.
        self._dirty = True
        self._read_at = float("-inf")
        self._backlog: Optional[int] = None
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._last: dict[str, tuple[float, tuple]] = {}  # retained topic -> (sent at, what it said)
        self._last_item: Optional[float] = None  # wall time of the newest event sent
        self._daily_sent: Optional[dt.date] = None
        self.sent = self.acknowledged = 0
        self._client = client(client_id=f"kiosk-{cfg.site_id}", clean_session=True, reconnect_on_failure=False)
        self._client.will_set(self._topic("status"), topics.encode(topics.offline_will(software)), qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        try:
            self._credentials(resolve)
        except (FleetFileError, OSError, ValueError, ssl.SSLError) as e:
            self._set_fault(CREDENTIALS, f"fleet: {e}")
            self._usable = False
        else:
            self._usable = True
        self._thread = threading.Thread(target=self._run, name="fleet-publisher", daemon=True)
        self._thread.start()

    # ---- what the worker and doctor read ------------------------------------------
    def faults(self) -> list[Fault]:
        with self._lock:
            return [self._fault] if self._fault is not None else []

    def nudge(self) -> None:
        """An item was just recorded (EventLog.on_decision): publish without waiting for the tick."""
        with self._lock:
            self._dirty = True
        self._wake.set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # ---- set-up -----------------------------------------------------------------------
    def _topic(self, name: str) -> str:
        return topics.topic(self.cfg.topic_prefix, self.cfg.site_id, name)

    def _credentials(self, resolve) -> None:
        cfg = self.cfg
        if cfg.username:
            password = None
            if cfg.password_file:
                path = resolve(cfg.password_file)
                try:
                    password = path.read_text(encoding="utf-8").strip()
                except OSError as e:
                    raise OSError(f"fleet.password_file {path}: {e.strerror or e}") from None
            self._client.username_pw_set(cfg.username, password)
        if cfg.tls is not None:
            self._client.tls_set_context(tls_context(tls_files(cfg.tls, resolve)))

    # ---- paho callbacks (paho's network thread) ---------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._set_fault(LOGIN_REFUSED, f"fleet broker {self.cfg.host} refused the connection: {reason_code}")
            return
        with self._lock:  # a takeover warning outlives the connections it is about: cleared once one lasts
            taken_over = self._fault is not None and self._fault.code == TAKEN_OVER
            self.takeovers.connected()
            self._connects += 1
        if not taken_over:
            self._set_fault(None)
        self._connected.set()
        log.info("fleet: connected to %s:%d", self.cfg.host, self.cfg.port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        was_connected = self._connected.is_set()
        if was_connected:
            log.warning("fleet: disconnected from %s (%s)", self.cfg.host, reason_code)
        self._connected.clear()
        with self._lock:  # called from paho's thread and this one
            clash = was_connected and not self._stop.is_set() and self.takeovers.disconnected()
        if clash:
            self._set_fault(TAKEN_OVER, f"fleet broker {self.cfg.host} closed the connection {self.takeovers.short} "
                                        f"times in a row within {self.takeovers.short_s:g} s of making it: another "
                                        f"kiosk uses this site id? (site.id '{self.cfg.site_id}', MQTT client id "
                                        f"kiosk-{self.cfg.site_id}: each kiosk needs its own; else the broker's log "
                                        f"says why it closes it)")
        with self._lock:
            self._in_flight.clear()  # not acknowledged: still in the outbox, sent again after reconnecting
            self._early.clear()
            self._session += 1

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._lock:
            entry = self._in_flight.pop(mid, None)
            if entry is not None:
                self._acked.append(entry[0])
            else:
                self._early[mid] = time.monotonic()
            self._dirty = True
        self._wake.set()  # mark it, and send the next

    def _set_fault(self, code: Optional[str], message: str = "") -> None:
        with self._lock:
            old = self._fault
            self._fault = None if code is None else Fault(code, PartKind.FLEET, message)
        if code is not None and (old is None or old.code != code):
            log.error("fleet: [%s] %s", code, message)

    # ---- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        next_try, short_handled = 0.0, 0
        while not self._stop.is_set():
            now = time.monotonic()
            if not self._usable:
                self._stop.wait(1.0)
                continue
            if self._connected.is_set() and not self._client.is_connected():
                # the network thread ended with the connection without a disconnect callback: start over
                self._on_disconnect(self._client, None, None, "connection lost", None)
            if not self._connected.is_set():
                with self._lock:
                    short = self.takeovers.short
                if short > short_handled:
                    # the broker closed a connection it had just made (another kiosk with this id?): wait as after
                    # a failure, or two such kiosks take the session from each other several times a second
                    next_try = time.monotonic() + self.backoff.next()
                short_handled = short
                if now >= next_try:
                    if self._connect():
                        if not short:  # a first try, or after a broker that was away; not after a takeover
                            self.backoff.reset()
                    else:
                        with self._lock:
                            self.takeovers.failed()
                        next_try = time.monotonic() + self.backoff.next()
                self._stop.wait(TICK_S)
                continue
            with self._lock:
                if self.takeovers.settled():
                    self.backoff.reset()  # a connection that lasted ends the backing off after takeovers
                    if self._fault is not None and self._fault.code == TAKEN_OVER:
                        self._fault = None
                        log.info("fleet: the connection to %s holds again", self.cfg.host)
            try:
                self._pump()
            except Exception:  # never the end of telemetry: logged, tried again next tick
                log.exception("fleet: publishing failed")
            self._wake.wait(self.tick_s)
            self._wake.clear()

    def _connect(self) -> bool:
        self._client.loop_stop()  # the last session's network thread, if it ended with the connection
        try:
            self._client.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        except ssl.SSLCertVerificationError as e:
            self._set_fault(UNREACHABLE, f"fleet broker {self.cfg.host}: its certificate does not verify "
                                         f"({e.verify_message}): check fleet.tls.ca_file")
            return False
        except (OSError, ValueError) as e:
            self._set_fault(UNREACHABLE, f"fleet broker {self.cfg.host}:{self.cfg.port} not reachable: {e}")
            return False
        with self._lock:
            before = self._connects
        self._client.loop_start()
        deadline = time.monotonic() + self.connect_timeout_s
        # Why a count and not _connected alone: a connection the broker closes within a poll (another kiosk
        # with this id took it over) left _connected unset, and was waited for until the timeout, then called
        # "did not answer"; it was made, and is made again at once.
        while time.monotonic() < deadline and self._connects == before and not self._stop.is_set():
            with self._lock:
                refused = self._fault is not None and self._fault.code == LOGIN_REFUSED
            if refused:
                break
            time.sleep(0.05)
        if self._connects == before:
            self._client.loop_stop()
            try:
                self._client.disconnect()
            except Exception:
                pass
            with self._lock:
                if self._fault is None:
                    self._fault = Fault(UNREACHABLE, PartKind.FLEET,
                                        f"fleet broker {self.cfg.host} did not answer the connection")
            return False
        self._last.clear()  # a new session: every retained topic again
        with self._lock:
            self._dirty = True
        return True

    def _publish(self, name: str, payload: dict, retain: bool):
        return self._client.publish(self._topic(name), topics.encode(payload), qos=topics.TOPICS[name][1],
                                    retain=retain)

    def _due(self, name: str, every_s: float, says: tuple) -> bool:
        """Is a retained topic due: what it says changed, or ``every_s`` passed? (Cheap: no payload built.)"""
        sent = self._last.get(name)
        now = time.monotonic()
        if sent is not None and sent[1] == says and now - sent[0] < every_s:
            return False
        self._last[name] = (now, says)
        return True

    def _pump(self) -> None:
        with self._lock:
            acked, self._acked = self._acked, []
        if acked:
            if self.eventlog.mark_published(acked) is not None:
                self.acknowledged += len(acked)
            else:  # the mark did not stick: they stay in the outbox and go again (at least once)
                log.warning("fleet: %d acknowledgements not recorded; those events will be sent again", len(acked))
        with self._lock:
            stale = any(time.monotonic() - at > ACK_TIMEOUT_S for _, at in self._in_flight.values())
            read = self._dirty or stale or time.monotonic() - self._read_at > RECHECK_S
            self._dirty = False
        if read:
            self._read_at = time.monotonic()
            self._backlog = self.eventlog.backlog()
        now = self.clock()
        view = self.view()
        backlog = self._backlog
        minute = None if self._last_item is None else int(self._last_item // 60)
        # A backlog is news when it is more than the events in flight (one item is 1 until its PUBACK: not news),
        # then by its order of magnitude as it drains; the heartbeat carries the exact figure.
        backlog_says = None if backlog is None else 0 if backlog <= IN_FLIGHT else len(str(backlog))
        if self._due("status", STATUS_EVERY_S, (self.model, minute, backlog_says)):  # last item: to the minute
            self._publish("status", topics.status(True, now=now, started=self.started, software=self.software,
                                                  model=self.model, backlog=backlog,
                                                  last_item=self._last_item), retain=True)
        faults = tuple(getattr(view, "faults", ()) or ())
        if self._due("health", STATUS_EVERY_S, tuple(sorted((f.code, f.part) for f in faults))):
            self._publish("health", topics.health(faults, now=now, next_steps=self.next_steps), retain=True)
        levels = dict(getattr(view, "fill", {}) or {})
        refused = frozenset(getattr(view, "refused", ()) or ())
        shown = tuple(sorted((b, round(v, 2) if v == v else None) for b, v in levels.items()))  # 1 % steps
        if self._due("fill", FILL_EVERY_S, (shown, refused)):
            self._publish("fill", topics.fill(levels, now=now, alert_at=self.cfg.fill_alert, refused=refused,
                                              capacity_kg=self.capacity_kg), retain=True)
        if read:
            self._send_events()
        self._send_daily(now)

    def _send_events(self) -> None:
        now = time.monotonic()
        with self._lock:
            for mid in [m for m, (_, at) in self._in_flight.items() if now - at > ACK_TIMEOUT_S]:
                del self._in_flight[mid]  # no answer: the row is still unmarked and goes again (at least once)
            self._early = {m: at for m, at in self._early.items() if now - at < ACK_TIMEOUT_S}  # bounded
            room = IN_FLIGHT - len(self._in_flight)
            busy = {d for d, _ in self._in_flight.values()}
            session = self._session
        if room <= 0:
            return
        for row in self.eventlog.unpublished(limit=room + len(busy)):
            if row["id"] in busy:
                continue
            if room <= 0:
                break
            sent_at = time.monotonic()
            info = self._publish("events", topics.event(row, self.cfg.site_id), retain=False)
            if info.rc != 0:  # not connected after all: the outbox keeps it, and the connection is made again
                self._on_disconnect(self._client, None, None, f"publish refused ({info.rc})", None)
                break
            with self._lock:
                if session != self._session:  # disconnected meanwhile: it goes again with the next session
                    break
                if self._early.pop(info.mid, float("-inf")) >= sent_at:
                    self._acked.append(row["id"])
                else:
                    self._in_flight[info.mid] = (row["id"], time.monotonic())
            self._last_item = max(self._last_item or 0.0, float(row["t"]))
            self.sent += 1
            room -= 1

    def _send_daily(self, now: float) -> None:
        yesterday = dt.datetime.fromtimestamp(now).date() - dt.timedelta(days=1)
        if self._daily_sent == yesterday:
            return
        counts = self.eventlog.counts_for_day(yesterday)
        if counts is None:
            return
        per_bin, per_class = counts
        self._publish("daily", topics.daily(yesterday, per_bin, per_class), retain=True)
        self._daily_sent = yesterday

    # ---- stopping -------------------------------------------------------------------------
    def _close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5.0)
        if self._connected.is_set():
            try:  # a clean goodbye: the broker does not send the Last Will, so say offline ourselves
                info = self._publish("status", {"online": False, "software": self.software, "reason": "stopped"},
                                     retain=True)
                info.wait_for_publish(timeout=2.0)
                self._client.disconnect()
            except Exception:
                log.warning("fleet: offline status not sent", exc_info=True)
        self._client.loop_stop()


__all__ = ["Backoff", "FleetPublisher", "TakeoverWatch", "LOGIN_REFUSED", "UNREACHABLE", "CREDENTIALS", "TAKEN_OVER"]
