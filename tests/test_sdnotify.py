"""sd_notify against a fake NOTIFY_SOCKET, and the watchdog's timing."""

import os
import socket
import threading

import pytest

from kiosk.appliance import sdnotify as sdnotify
from kiosk.appliance.sdnotify import Watchdog


@pytest.fixture
def fake_systemd(tmp_path):
    """A datagram socket standing in for systemd's notify socket."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


def recv(sock):
    return sock.recv(4096).decode()


def nothing_waiting(sock):
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(2)
    return False


def test_no_socket_is_a_quiet_no_op():
    assert sdnotify.notify("READY=1", env={}) is False
    assert sdnotify.ready("up", env={}) is False
    assert Watchdog(env={}).ping() is False


def test_ready_and_status_reach_the_socket(fake_systemd):
    path, sock = fake_systemd
    env = {"NOTIFY_SOCKET": path}
    assert sdnotify.ready("camera ok, model ok", env=env)
    assert recv(sock) == "READY=1\nSTATUS=camera ok, model ok"
    assert sdnotify.status("line one\nline two", env=env)
    assert recv(sock) == "STATUS=line one line two"  # a newline would start a bogus assignment
    assert sdnotify.stopping(env=env)
    assert recv(sock) == "STOPPING=1"


def test_abstract_socket():
    name = f"kiosk-test-{os.getpid()}-{threading.get_ident()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    try:
        assert sdnotify.notify("WATCHDOG=1", env={"NOTIFY_SOCKET": "@" + name})
        assert recv(sock) == "WATCHDOG=1"
    finally:
        sock.close()


def test_reads_os_environ_by_default(fake_systemd, monkeypatch):
    path, sock = fake_systemd
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert sdnotify.notify("STATUS=x")
    assert recv(sock) == "STATUS=x"


def test_gone_socket_does_not_raise(tmp_path):
    assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "missing.sock")}) is False
    assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": "relative/path"}) is False


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_watchdog_pings_at_half_the_interval(fake_systemd):
    path, sock = fake_systemd
    clock = FakeClock()
    wd = Watchdog(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}, clock=clock)
    assert wd.enabled and wd.timeout_s == 4.0 and wd.interval_s == 2.0

    assert wd.ping()  # the first pass pings at once
    assert recv(sock) == "WATCHDOG=1"
    clock.t += 1.9
    assert not wd.due() and not wd.ping()
    assert nothing_waiting(sock)
    clock.t += 0.1
    assert wd.due() and wd.ping()
    assert recv(sock) == "WATCHDOG=1"
    assert wd.ping(force=True)
    assert recv(sock) == "WATCHDOG=1"


def test_watchdog_only_pings_when_the_loop_calls_it(fake_systemd):
    """A hung main loop must stop the pings: no background thread may ping for it."""
    path, sock = fake_systemd
    clock = FakeClock()
    before = threading.active_count()
    wd = Watchdog(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000"}, clock=clock)
    wd.ping()
    assert recv(sock) == "WATCHDOG=1"
    clock.t += 60  # the loop "hangs": nobody calls ping()
    assert threading.active_count() == before
    assert nothing_waiting(sock)


@pytest.mark.parametrize(
    "env",
    [
        {},  # no WatchdogSec=
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "soon"},
        {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"},  # meant for another process
    ],
)
def test_watchdog_off(env):
    sent = []
    wd = Watchdog(env=env, send=lambda m: sent.append(m) or True)
    assert not wd.enabled and wd.interval_s is None
    assert not wd.due() and not wd.ping(force=True)
    assert sent == []


class FakeView:
    def __init__(self, screen, faults=()):
        self.screen = screen
        self.faults = faults


class FakeFault:
    def __init__(self, code, part):
        self.code, self.part = code, part


def drain(sock):
    msgs = []
    sock.setblocking(False)
    try:
        while True:
            msgs.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2)
    return msgs


def test_loop_notifier(fake_systemd):
    """The main loop's view: READY once, WATCHDOG when due, STATUS when it changes (not every frame)."""
    path, sock = fake_systemd
    clock = FakeClock()
    n = sdnotify.LoopNotifier(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}, clock=clock, status_every_s=5)
    assert n.ready()
    assert drain(sock) == ["READY=1\nSTATUS=running"]

    for _ in range(30):  # one second of frames, all idle
        n.alive(FakeView("idle"))
        clock.t += 1 / 30
    assert drain(sock) == ["WATCHDOG=1"]  # the status may not change yet: ready() was just now

    clock.t += 5
    n.alive(FakeView("idle"))
    assert drain(sock) == ["WATCHDOG=1", "STATUS=screen: idle"]
    n.alive(FakeView("idle"))
    assert drain(sock) == []

    clock.t += 5
    n.alive(FakeView("out_of_service", [FakeFault("E200", "camera")]))
    assert drain(sock) == ["WATCHDOG=1", "STATUS=screen: out_of_service; faults: E200 camera"]

    clock.t += 1
    n.alive(None)  # the config-error screen has no view: pings only
    assert drain(sock) == ["WATCHDOG=1"]
    assert n.stopping()
    assert drain(sock) == ["STOPPING=1"]


def test_loop_notifier_outside_systemd():
    n = sdnotify.LoopNotifier(env={})
    assert n.ready() is False
    n.alive(FakeView("idle"))  # nothing to do, nothing raised
    assert n.stopping() is False
