"""A real Mosquitto for the fleet tests: started on a free loopback port with a config written here.

Plain, or TLS with a password file (a throw-away CA and server certificate
made with openssl). ``Listener`` subscribes to everything and keeps what
arrives, retained messages included. Tests poll with deadlines.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Optional

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def needs_mosquitto() -> str:
    """The broker's executable. Absent: a skip on a desktop, a failure in CI (``CI`` set), as a missing qemu in
    tests/test_kernels.py: a CI that skipped the fleet tests in silence would pass without having run them."""
    import pytest

    if MOSQUITTO is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto not installed: CI must run the fleet tests against a real broker "
                        "(deploy/test-deps.sh installs it)")
        pytest.skip("mosquitto is not installed (deploy/test-deps.sh installs it)")
    return MOSQUITTO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


def make_certs(d: Path) -> dict:
    """A CA, and a server certificate for 127.0.0.1 / localhost signed by it."""
    d.mkdir(parents=True, exist_ok=True)

    def ssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=kiosk test CA",
        "-keyout", "ca.key", "-out", "ca.crt")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "san.ext", "-out", "server.crt")
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=some other CA",
        "-keyout", "other.key", "-out", "other.crt")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kiosk-7", "-keyout", "client.key", "-out", "client.csr")
    ssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-out", "client.crt")
    return {"ca": d / "ca.crt", "other_ca": d / "other.crt", "cert": d / "server.crt", "key": d / "server.key",
            "client_cert": d / "client.crt", "client_key": d / "client.key"}


class Broker:
    """``mosquitto -c CONF`` on 127.0.0.1:``port``; ``stop``/``kill`` and ``start`` again on the same port."""

    def __init__(self, work: Path, *, tls: Optional[dict] = None, users: Optional[dict] = None, port: int = 0,
                 persistent: bool = False, client_certificates: bool = False):
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.tls, self.users = tls, users
        self.proc: Optional[subprocess.Popen] = None
        # persistent: sessions saved every second, so a consumer's subscription survives a kill (as a city's broker)
        keep = ["persistence true", f"persistence_location {self.work}/", "autosave_interval 1",
                "max_queued_messages 0"] if persistent else ["persistence false"]  # 0: queue all for a consumer away
        lines = [f"listener {self.port} 127.0.0.1", *keep, f"log_dest file {self.work / 'broker.log'}",
                 "log_type error", "log_type warning", "log_type notice"]
        if os.geteuid() == 0:  # as root mosquitto would switch to its own user, who cannot read the test's files
            lines.append("user root")
        if users:
            pw = self.work / "passwords"
            pw.write_text("")
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True, capture_output=True)
            pw.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines += ["allow_anonymous true"]
        if tls:
            lines += [f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
            if client_certificates:  # a client without a certificate signed by the CA is refused
                lines += ["require_certificate true"]
        self.conf = self.work / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> "Broker":
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)

        def accepting():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        if not wait_until(accepting, 10):
            log = (self.work / "broker.log").read_text() if (self.work / "broker.log").exists() else ""
            self.stop()
            raise RuntimeError(f"mosquitto did not start on port {self.port}: {log[-2000:]}")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Listener:
    """Subscribes to ``topic`` and keeps (topic, payload dict, retained) of every message.

    Returns once the broker has acknowledged the subscription: a listener still connecting when the
    publisher starts misses what the broker accepts meanwhile (a loaded machine lost that race).
    ``session``: a persistent session under that client id, for a broker started ``persistent``: what
    is published while the listener is away (a broker restart) is queued for it, as for a city's consumer.
    """

    def __init__(self, broker: Broker, topic: str = "#", *, user=None, password=None, ca=None,
                 session: Optional[str] = None, timeout: float = 20.0):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, dict, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=session or f"listener-{free_port()}",
                                  clean_session=session is None)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)  # back soon after a broker restart
        if user:
            self.client.username_pw_set(user, password)
        if ca:
            self.client.tls_set(ca_certs=str(ca))
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, codes, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1" if not ca else "localhost", broker.port)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.close()
            raise RuntimeError(f"listener not subscribed to {topic!r} on port {broker.port} within {timeout:.0f} s")
        self.subscribed_at = time.time()

    def _on_message(self, client, userdata, msg):
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            payload = {"raw": msg.payload.decode(errors="replace")}
        with self._lock:
            self.messages.append((msg.topic, payload, bool(msg.retain)))

    def on(self, suffix: str) -> list[dict]:
        with self._lock:
            return [p for t, p, _ in self.messages if t.endswith("/" + suffix)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
