"""Fleet telemetry: the kiosk's side of a city's MQTT broker (topics, the outbox publisher)."""

from __future__ import annotations

import socket


def _socketpair() -> tuple[socket.socket, socket.socket]:
    """paho's wake-up pair as an AF_UNIX socketpair (paho's own listens on 127.0.0.1, see client())."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def client(**kwargs):
    """A paho-mqtt 2.x client that only connects out.

    Why not ``paho.mqtt.client.Client`` as it comes: its ``loop_start()`` makes
    the pair of sockets that wakes its network thread by listening on an
    ephemeral port of 127.0.0.1 and connecting to it (``_socketpair_compat``,
    written for Windows). The kiosk listens on no port, not even for a
    moment on loopback (kiosk.service refuses ``listen()`` with
    ``SystemCallFilter=~listen``), so the pair is an AF_UNIX ``socketpair()`` here; tests/test_fleet.py
    holds paho to it.
    """
    import paho.mqtt.client as mqtt

    mqtt._socketpair_compat = _socketpair
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)


__all__ = ["client"]
