"""``kiosk fleet status``: one line per kiosk, from the broker's retained topics.

A technician (or a script, with ``--json``) asks the city's broker what every
kiosk last said: online or not, its faults, its fullest bin, when it last
sorted an item, which model it runs. Nothing is asked of the kiosks
themselves: the retained ``status``, ``health`` and ``fill`` messages are
the answer, so a kiosk that is offline still shows its last state.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Optional

SHOWN = ("status", "health", "fill")


def summarise(seen: dict[str, dict[str, dict]]) -> list[dict]:
    """``seen``: site -> topic -> payload. One row per site, sorted by site. Pure."""
    rows = []
    for site in sorted(seen):
        t = seen[site]
        status, health, fill = t.get("status", {}), t.get("health", {}), t.get("fill", {})
        bins = fill.get("bins", {}) or {}
        fullest = max(bins.items(), key=lambda kv: kv[1].get("fill_pct", 0.0), default=None)
        rows.append({
            "site": site,
            "online": status.get("online"),
            "faults": [f"{f.get('code')} {f.get('part')}" for f in health.get("faults", []) or []],
            "fullest_bin": None if fullest is None else {"bin": fullest[0], **fullest[1]},
            "last_item": status.get("last_item"),
            "model": status.get("model"),
            "software": status.get("software"),
            "backlog": status.get("backlog"),
        })
    return rows


def render(rows: list[dict]) -> str:
    if not rows:
        return "no kiosk has reported to this broker (under this topic prefix)\n"
    out = []
    for r in rows:
        state = {True: "online", False: "OFFLINE"}.get(r["online"], "unknown")
        faults = ", ".join(r["faults"]) or "none"
        fb = r["fullest_bin"]
        fullest = "-" if fb is None else f"{fb['bin']} {fb.get('fill_pct', 0):.0f}%" + (" ALERT" if fb.get("alert") else "")
        backlog = "" if not r.get("backlog") else f"  backlog {r['backlog']}"
        out.append(f"{r['site']}  {state}  faults: {faults}  fullest: {fullest}  last item: {r['last_item'] or '-'}"
                   f"  model: {r['model'] or '-'}{backlog}")
    return "\n".join(out) + "\n"


def collect(host: str, port: int, prefix: str, *, wait_s: float = 2.0, ca: Optional[str] = None, tls: bool = False,
            username: Optional[str] = None, password: Optional[str] = None, cert: Optional[str] = None,
            key: Optional[str] = None, context=None) -> dict[str, dict[str, dict]]:
    """Subscribe to the retained topics for ``wait_s`` seconds (they arrive at once) and return what came.

    ``cert``/``key``: a client certificate, for a broker that asks for one. ``context``: an ``ssl.SSLContext``
    made already, in their place (kiosk doctor passes the kiosk's own, kiosk.fleet.publisher.tls_context).
    """
    from kiosk.errors import KioskError
    from kiosk.fleet import client as mqtt_client

    seen: dict[str, dict[str, dict]] = {}
    lock = threading.Lock()
    result: dict = {}
    client = mqtt_client(client_id=f"kiosk-fleet-status-{int(time.time() * 1000)}")
    if username:
        client.username_pw_set(username, password)
    if context is not None:
        client.tls_set_context(context)
    elif tls or ca:
        # the kiosk's own checks: a missing or unloadable file is a coded line naming it, not an SSLError traceback
        # (and an encrypted key is refused instead of OpenSSL asking for its passphrase)
        from types import SimpleNamespace

        from kiosk.fleet.publisher import tls_context, tls_files

        client.tls_set_context(tls_context(tls_files(SimpleNamespace(ca_file=ca, cert_file=cert, key_file=key))))

    def on_connect(c, userdata, flags, reason_code, properties):
        result["rc"] = reason_code
        if not reason_code.is_failure:
            for name in SHOWN:
                c.subscribe(f"{prefix}/+/{name}", qos=1)

    def on_message(c, userdata, msg):
        parts = msg.topic[len(prefix) + 1:].split("/")
        if len(parts) != 2:
            return
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            return
        with lock:
            seen.setdefault(parts[0], {})[parts[1]] = payload

    client.on_connect, client.on_message = on_connect, on_message
    try:
        client.connect(host, port, keepalive=30)
    except OSError as e:
        raise KioskError(f"broker {host}:{port} not reachable: {e}", code="E602") from None
    client.loop_start()
    try:
        deadline = time.monotonic() + max(wait_s, 0.5)
        while time.monotonic() < deadline:
            rc = result.get("rc")
            if rc is not None and rc.is_failure:
                raise KioskError(f"broker {host}:{port} refused the connection: {rc}", code="E601")
            time.sleep(0.05)
        if "rc" not in result:
            raise KioskError(f"broker {host}:{port} did not answer", code="E602")
    finally:
        client.loop_stop()
        client.disconnect()
    with lock:
        return {k: dict(v) for k, v in seen.items()}


def register(subparsers) -> None:
    p = subparsers.add_parser("fleet", help="the fleet as the city's MQTT broker sees it")
    sub = p.add_subparsers(dest="fleet_command", metavar="COMMAND")
    sub.required = True
    s = sub.add_parser("status", help="one line per kiosk: online, faults, fullest bin, last item, model",
                       description="One line per kiosk, from the broker's retained status/health/fill topics.")
    s.add_argument("--broker", required=True, metavar="HOST[:PORT]", help="the broker (port 8883 with TLS, else 1883)")
    s.add_argument("--prefix", default="kiosk", help="fleet.topic_prefix of the kiosks (default: kiosk)")
    s.add_argument("--tls", action="store_true", help="connect with TLS (implied by --ca)")
    s.add_argument("--ca", metavar="FILE", help="CA certificate(s) the broker's certificate chains to")
    s.add_argument("--cert", metavar="FILE", help="client certificate (PEM), for a broker that asks for one")
    s.add_argument("--key", metavar="FILE", help="the client certificate's key (PEM)")
    s.add_argument("--username")
    s.add_argument("--password-file", metavar="FILE")
    s.add_argument("--wait", type=float, default=2.0, help="seconds to listen (retained messages arrive at once)")
    s.add_argument("--json", action="store_true", help="the rows as JSON, for scripts")
    s.set_defaults(func=cmd_fleet_status)


def cmd_fleet_status(args) -> int:
    from kiosk.errors import ConfigError

    host, _, port = args.broker.rpartition(":") if args.broker.count(":") == 1 else (args.broker, "", "")
    tls = bool(args.tls or args.ca or args.cert)
    try:
        port = int(port) if port else (8883 if tls else 1883)
    except ValueError:
        raise ConfigError([f"--broker {args.broker}: the port must be a number"]) from None
    password = None
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as f:
                password = f.read().strip()
        except OSError as e:
            raise ConfigError([f"--password-file {args.password_file}: {e.strerror or e}"]) from None
    rows = summarise(collect(host or args.broker, port, args.prefix, wait_s=args.wait, ca=args.ca, tls=tls,
                             username=args.username, password=password, cert=args.cert, key=args.key))
    sys.stdout.write(json.dumps(rows, indent=1) + "\n" if args.json else render(rows))
    return 0


__all__ = ["register", "summarise", "render", "collect", "cmd_fleet_status"]
