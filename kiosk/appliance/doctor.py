"""``kiosk doctor``: one pass/fail table a technician can read over ssh.

Each check is a small function returning ``(ok, detail)``; ``None`` for ok
means "not applicable here" (SKIP). The exit status is non-zero when any
check fails. Checks never raise: an unexpected error is itself a FAIL.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

MIN_FREE_MB = 200


def check_config(path: str):
    from kiosk.config import load_config

    cfg = load_config(path, check_model=False)
    return True, f"{path}", cfg


def check_model(cfg):
    """The model the kiosk runs (an installed update, else the factory model), loaded as the kiosk loads it."""
    from kiosk.main import model_loader
    from kiosk.updates.store import running_model

    path = running_model(cfg)
    t = time.perf_counter()
    clf = model_loader(cfg)(path)
    ms = (time.perf_counter() - t) * 1000
    return True, f"{path}: sha256 matches card, {len(clf.classes)} classes, loaded in {ms:.0f} ms", clf


def check_model_updates(cfg):
    """Signed updates: which model is active, the trusted root in place, versions refused."""
    from kiosk.files import read_json
    from kiosk.updates.store import ModelStore

    status = ModelStore.for_config(cfg).status()
    a = status["active"]
    active = "factory model active" if a.get("factory") else f"{a['name']} v{a['version']} active"
    refused = f"; refused: {', '.join(status['rejected'])}" if status["rejected"] else ""
    up = cfg.updates
    if not up.trusted_root:
        return None, f"{active}; updates not set up (updates.trusted_root){refused}"
    root = read_json(cfg.resolve(up.trusted_root))  # raises: a FAIL row naming the file
    if not isinstance(root, dict) or root.get("signed", {}).get("_type") != "root":
        return False, f"updates.trusted_root {cfg.resolve(up.trusted_root)} is not a TUF root.json"
    source = up.source or "no updates.source: `kiosk model update --from URL|DIR`"
    # a refusal is a failure while the kiosk is held below it; once a newer model is active it is history
    held_back = [v for v in status["rejected"]
                 if not v.split("-", 1)[0].isdigit() or int(v.split("-", 1)[0]) > (a.get("version") or 0)]
    return not held_back, f"{active}; trusted root v{root['signed'].get('version')}; source {source}" \
                        f"{'; daily check at %02d:00' % up.check_hour if up.daily_check else ''}{refused}"


def check_model_kernels(clf):
    """The load-time self-check: do this CPU's int8 kernels compute what the card's reference computed?"""
    from kiosk.model.cpuinfo import cpu_info

    check = clf.self_check
    where = f" [{cpu_info().describe()}]"
    if check.path == "unchecked":
        return None, check.detail
    if check.fallback:  # the kiosk sorts, correctly but slower: a technician should know
        return False, f"{check.detail} (code E301){where}"
    return True, check.detail + where


def check_camera(cfg):
    from kiosk.camera import open_camera

    with open_camera(cfg.camera) as cam:
        f = cam.read(timeout=3.0)
    h, w = f.image.shape[:2]
    return True, f"{cam.name}: {w}x{h} frame"


def check_display(cfg):
    if os.environ.get("SDL_VIDEODRIVER") == "dummy":
        return None, "SDL_VIDEODRIVER=dummy (no screen)"
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        cards = sorted(Path("/dev/dri").glob("card*")) if Path("/dev/dri").is_dir() else []
        if not cards:
            return False, "no X/Wayland display and no /dev/dri/card* for KMSDRM"
        return True, f"KMSDRM on {', '.join(c.name for c in cards)}"
    return True, f"desktop display {os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')}"


def check_gpio(cfg):
    from kiosk.devices.pins import make_pin_factory

    from kiosk.devices.pins import NoGpio

    try:
        factory = make_pin_factory(cfg.gpio.pin_factory, fallback_to_mock=False)
    except NoGpio as e:
        return False, f"[{e.code}] {e}"
    try:
        name = type(factory).__name__
        if cfg.gpio.pin_factory == "mock":
            return True, "simulated pins (gpio.pin_factory: mock): flaps and scales below are simulated"
        return True, f"pin factory {name}"
    finally:
        factory.close()


def check_disk(cfg):
    d = cfg.data_dir
    d.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(d).free / 1e6
    probe = d / ".doctor-write-test"
    probe.write_text("ok")
    probe.unlink()
    return free >= MIN_FREE_MB, f"{d}: {free:.0f} MB free, writable"


DATA_PARTITION = Path("/var/lib/kiosk")  # the image's data partition (label KIOSKDATA), README "Where things are"


def check_data_partition(cfg):
    """On the image's layout the data folder must be its own partition: on the read-only root, every write
    goes to a RAM overlay and is gone at the next reboot (event log, calibration, lockouts)."""
    d = Path(cfg.data_dir)
    if d.resolve() != DATA_PARTITION:
        return None, f"storage.data_dir is {d}, not {DATA_PARTITION} (not the kiosk image's layout)"
    if not os.path.ismount(d):
        return False, (f"{d} is not a mounted partition: the event log and calibration would be lost at reboot "
                       f"(check: findmnt {d}; the KIOSKDATA partition)")
    return True, f"{d} is its own partition"


def check_eventlog(cfg):
    """The log reads back whole (``PRAGMA quick_check``); damaged logs the kiosk kept aside are named."""
    from kiosk.appliance.eventdb import eventlog_path, read_connection

    path = eventlog_path(cfg.data_dir)
    aside = sorted(p.name for p in path.parent.glob(f"{path.name}.damaged-*") if not p.name.endswith(("-wal", "-shm")))
    note = (f"; E502: {len(aside)} damaged log(s) kept aside ({', '.join(aside[:3])}): copy them off, then delete"
            if aside else "")
    if not path.exists():
        return None, f"no event log yet at {path} (the kiosk creates it)" + note
    import sqlite3

    try:
        with read_connection(path) as conn:
            check = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
            n = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] if check == ["ok"] else None
    except sqlite3.DatabaseError as e:  # damage bad enough that the check itself stops
        check = [str(e)]
    if check != ["ok"]:
        return False, f"{path}: damaged ({'; '.join(check[:3])}); the kiosk moves it aside at its next start" + note
    return True, f"{path}: {n} decisions, quick_check ok" + note


def check_service_pin(cfg):
    """A PIN is set where only the kiosk can read it (the boot partition is FAT: anyone with the card reads it)."""
    from kiosk.config import read_pin_hash, secret_file_problem

    path = cfg.pin_hash_path
    if path is None:
        if cfg.service.pin_hash:
            return True, ("service.pin_hash is in the config file, readable by anyone who holds the card: "
                          "prefer `sudo kiosk hash-pin --save /var/lib/kiosk/service-pin` and service.pin_hash_file")
        return None, "no service PIN set: the service screen cannot be opened (`sudo kiosk hash-pin --save FILE`)"
    read_pin_hash(path)  # raises: a FAIL row naming the problem
    problem = secret_file_problem("service.pin_hash_file", path, "the hash")
    if problem:
        return False, problem
    return True, f"{path}, mode {path.stat().st_mode & 0o777:o}"


def check_fleet(cfg):
    """Telemetry: the broker answers with this kiosk's credentials; how many events wait in the outbox."""
    import sqlite3

    from kiosk.appliance.eventdb import eventlog_path, read_connection
    from kiosk.fleet.status_cli import collect

    fl = cfg.fleet
    if not fl.enabled:
        return None, "fleet telemetry is off (fleet.enabled)"
    backlog = "no event log yet"
    path = eventlog_path(cfg.data_dir)
    if path.exists():
        try:
            with read_connection(path) as conn:
                backlog = f"{conn.execute('SELECT COUNT(*) FROM decisions WHERE published = 0').fetchone()[0]} events wait to be sent"
        except sqlite3.Error as e:
            backlog = f"backlog unknown ({e})"
    from kiosk.config import secret_file_problem
    from kiosk.errors import KioskError
    from kiosk.fleet.publisher import CREDENTIALS, tls_context, tls_files

    # the same codes as the service screen's (kiosk.fleet.publisher): E603 a file, E601 refused, E602 not reachable
    password = None
    if fl.password_file:
        path = cfg.resolve(fl.password_file)
        try:
            password = path.read_text(encoding="utf-8").strip()
        except OSError as e:
            return False, f"[{CREDENTIALS}] fleet.password_file {path}: {e.strerror or e}; {backlog}"
    try:
        files = tls_files(fl.tls, cfg.resolve) if fl.tls is not None else None
    except KioskError as e:
        return False, f"[{e.code}] {e}; {backlog}"
    # the kiosk connects with them all the same: a secret others can read is the technician's to fix, not a fault
    for key, secret, what in fl.secret_files():
        problem = secret and secret_file_problem(key, cfg.resolve(secret), what)
        if problem:
            return False, f"{problem}; {backlog}"
    try:
        # the publisher's own context: a file it cannot load is the same E603 line here as on the service screen
        context = tls_context(files) if files is not None else None
        seen = collect(fl.host, fl.port, fl.topic_prefix, wait_s=1.0, tls=context is not None, context=context,
                       username=fl.username, password=password)
    except KioskError as e:
        return False, f"[{e.code}] {e}; {backlog}"
    mine = seen.get(fl.site_id, {}).get("status", {})
    said = "online" if mine.get("online") else "not online" if mine else "no status yet"
    return True, f"broker {fl.host}:{fl.port} answers; this kiosk ({fl.site_id}) is {said} there; {backlog}"


def check_clock(cfg):
    year = time.gmtime().tm_year
    synced = Path("/run/systemd/timesync/synchronized").exists()
    if year < 2025:
        return False, f"system clock says {year}: no RTC/NTP yet (event times would be wrong)"
    return True, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()) + (", NTP synchronised" if synced else "")


def check_throttling(cfg):
    vc = shutil.which("vcgencmd")
    if vc:
        import subprocess

        out = subprocess.run([vc, "get_throttled"], capture_output=True, text=True, timeout=5).stdout.strip()
        value = int(out.split("=")[-1], 16) if "=" in out else 0
        return value == 0, f"{out} (0x0 = never throttled or under-volted)"
    temp = Path("/sys/class/thermal/thermal_zone0/temp")
    if temp.exists():
        c = int(temp.read_text()) / 1000
        return c < 80, f"CPU {c:.0f} °C"
    return None, "no vcgencmd or thermal zone (not a Pi)"


def hardware_checks(cfg, simulate: bool):
    """One check per scale and flap, from the hardware layer's own self-test."""
    from kiosk.devices.hardware import open_hardware

    results = []
    with open_hardware(cfg, simulate=simulate) as hw:
        for name, ok, detail in hw.self_test():
            results.append((name, ok, detail))
    return results


def run_doctor(args) -> int:
    rows: list[tuple[str, Optional[bool], str]] = []

    def run(name: str, fn: Callable, *a):
        try:
            res = fn(*a)
            rows.append((name, res[0], res[1]))
            return res
        except Exception as e:  # a failing check is a row, never a traceback
            rows.append((name, False, f"{type(e).__name__}: {e}"))
            return None

    res = run("config", check_config, args.config)
    cfg = res[2] if res else None
    if cfg is not None:
        res = run("model", check_model, cfg)
        if res:
            run("model-kernels", check_model_kernels, res[2])
        else:
            rows.append(("model-kernels", None, "needs a model that loads"))
        run("camera", check_camera, cfg)
        run("display", check_display, cfg)
        gpio = run("gpio", check_gpio, cfg)
        if gpio is None or not gpio[0]:  # pretend pins would report every flap closed: say nothing instead
            rows.append(("scales/flaps", None, "needs GPIO"))
        else:
            try:
                rows.extend(hardware_checks(cfg, simulate=cfg.gpio.pin_factory == "mock"))
            except Exception as e:
                rows.append(("scales/flaps", False, f"{type(e).__name__}: {e}"))
        run("disk", check_disk, cfg)
        run("data-partition", check_data_partition, cfg)
        run("eventlog", check_eventlog, cfg)
        run("service-pin", check_service_pin, cfg)
        run("fleet", check_fleet, cfg)
        run("model-updates", check_model_updates, cfg)
    else:
        rows += [(n, None, "needs a valid config")
                 for n in ("model", "camera", "display", "gpio", "disk", "data-partition", "eventlog", "service-pin",
                           "fleet", "model-updates")]
    run("clock", check_clock, cfg)
    run("throttling", check_throttling, cfg)

    width = max(len(r[0]) for r in rows) + 2
    for name, ok, detail in rows:
        mark = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{mark:<6}{name:<{width}}{detail}")
    failed = [r for r in rows if r[1] is False]
    print(f"\n{len(failed)} failed, {sum(1 for r in rows if r[1])} passed, {sum(1 for r in rows if r[1] is None)} skipped")
    return 1 if failed else 0
