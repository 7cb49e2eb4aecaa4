#!/usr/bin/env python3
"""The Pi path without a Pi: install and run the kiosk in an arm64 Debian Bookworm root under qemu.

    sudo python3 deploy/arm64_check.py [--val ../shared/data/trashnet/val] [--model build/forms/s8s8/x.onnx ...]
                                       [--report build/arm64/report.json] [--keep]

Makes (once, cached) a Bookworm arm64 root with debootstrap, runs
``deploy/install.sh --image`` in it as on a Pi (plain Debian has no
python3-picamera2: install.sh says so and goes on), then inside the arm64
root: ``kiosk check-config``, ``kiosk doctor`` (no camera or GPIO here:
FAIL rows, never a traceback), ``kiosk snapshot`` of every screen,
``kiosk eval`` on TrashNet val with the shipped model and every ``--model``,
the pure-logic tests, and whether the aarch64 pygame-ce wheel's SDL has the
KMSDRM video driver. Prints one line per check and writes a JSON report.

Every program in the root runs under qemu-user-static: the timings it
prints are the emulator's, not a Pi's, and are never performance figures.
Needs root, debootstrap, qemu-user-static + binfmt-support, network access
to deb.debian.org and PyPI. ``tests/test_arm64.py`` (``KIOSK_TEST_ARM64=1``)
runs the same checks and asserts on them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chroot  # noqa: E402

ARCH = "arm64"
VENV_PY = "/opt/kiosk/venv/bin/python"
KIOSK = "/opt/kiosk/venv/bin/kiosk"
CONFIG = "/etc/kiosk/config.yaml"
SCREENS = ("idle", "looking", "decided", "await_drop", "thanks", "unsure", "bin_full", "out_of_service", "service")
PURE_TESTS = ("tests/test_decision.py", "tests/test_config.py", "tests/test_hx711.py", "tests/test_eventlog.py",
              "tests/test_configfile.py", "tests/test_faults.py")
DUMMY = {"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PYGAME_HIDE_SUPPORT_PROMPT": "1"}

UPDATES_PROBE = r"""
import cryptography, segno, tuf
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Targets
signer = CryptoSigner.generate_ed25519()
md = Metadata(Targets())
md.sign(signer)
signer.public_key.verify_signature(md.signatures[signer.public_key.keyid], md.signed_bytes)
print("tuf", tuf.__version__, "cryptography", cryptography.__version__, "segno", segno.__version__, "ed25519 verified")
"""

# Where the SDL inside the pygame-ce wheel says which video drivers it was built with.
KMSDRM_PROBE = r"""
import glob, os, pygame
libs = sorted(glob.glob(os.path.join(os.path.dirname(pygame.__file__), "..", "pygame_ce.libs", "libSDL2*")))
blob = b"".join(open(p, "rb").read() for p in libs)
os.environ["SDL_VIDEODRIVER"] = "kmsdrm"
try:
    pygame.display.init()
    said = "display opened"
except pygame.error as e:
    said = str(e)
print({"sdl_libs": [os.path.basename(p) for p in libs], "kmsdrm_in_sdl": b"KMSDRM" in blob,
       "sdl": ".".join(map(str, pygame.get_sdl_version())), "kmsdrm_init": said})
"""


def _tail(r, n=1500) -> str:
    return (r.stdout + r.stderr)[-n:]


def check(ch: chroot.Chroot, val: Path | None, models: list[Path], out: Path) -> dict:
    """Run every check inside the installed arm64 root; the report as a dict (also printed as it goes)."""
    report: dict = {"arch": ch.run("uname", "-m").stdout.strip()}

    def step(name, ok, detail):
        report[name] = {"ok": ok, **(detail if isinstance(detail, dict) else {"detail": detail})}
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail if not isinstance(detail, dict) else json.dumps(detail)[:300]}",
              flush=True)

    r = ch.run(VENV_PY, "-c", "import platform, onnxruntime, cv2, numpy, pygame, pydantic_core;"
               "print(platform.machine(), onnxruntime.__version__, cv2.__version__, numpy.__version__,"
               " pygame.version.ver, pydantic_core.__version__)", check=False, env=DUMMY)
    parts = r.stdout.split()
    step("wheels", r.returncode == 0 and parts[:1] == ["aarch64"],
         dict(zip(("machine", "onnxruntime", "opencv", "numpy", "pygame_ce", "pydantic_core"), parts)) or _tail(r))
    # signed model updates on ARM: TUF signs and verifies with cryptography's Ed25519 (a native wheel)
    r = ch.run(VENV_PY, "-c", UPDATES_PROBE, check=False, env=DUMMY)
    step("update-signatures", r.returncode == 0 and r.stdout.strip().endswith("verified"), r.stdout.strip() or _tail(r))
    r = ch.run(KIOSK, "check-config", CONFIG, check=False, env=DUMMY)
    step("check-config", r.returncode == 0 and r.stdout.strip().startswith("OK"), r.stdout.strip() or _tail(r))
    r = ch.run(KIOSK, "doctor", "--config", CONFIG, check=False, env=DUMMY, timeout=900)
    rows = [line for line in r.stdout.splitlines() if line[:4] in ("PASS", "FAIL", "SKIP")]
    step("doctor", "Traceback" not in r.stdout + r.stderr and len(rows) >= 8,
         {"exit": r.returncode, "rows": rows})
    snaps = {}
    for lang in ("en", "zh"):
        for screen in SCREENS:
            png = f"/tmp/snap-{screen}-{lang}.png"
            r = ch.run(KIOSK, "snapshot", "--config", CONFIG, "--state", screen, "--lang", lang, "--out", png,
                       check=False, env=DUMMY, timeout=600)
            snaps[f"{screen}/{lang}"] = r.returncode == 0 and ch.path(png).stat().st_size > 1000
            if r.returncode == 0:
                shutil.copy(ch.path(png), out / Path(png).name)
    step("snapshots", all(snaps.values()), {"rendered": sum(snaps.values()), "of": len(snaps)})
    r = ch.run(VENV_PY, "-c", KMSDRM_PROBE, check=False)
    step("kmsdrm", r.returncode == 0, r.stdout.strip() or _tail(r))
    if val is not None:
        evals = {}
        ch.mount("--bind", "-o", "ro", str(val), target=ch.path("/mnt/val"))
        for model in [None, *models]:
            name = "shipped" if model is None else model.stem
            extra = []
            if model is not None:
                inside = Path("/tmp/models") / model.parent.name / model.name
                ch.path(inside.parent).mkdir(parents=True, exist_ok=True)
                for f in (model, model.with_suffix(".json")):
                    shutil.copy(f, ch.path(inside.parent / f.name))
                extra = ["--model", str(inside)]
                name = f"{model.parent.name}/{model.stem}"
            t = time.monotonic()
            r = ch.run(KIOSK, "eval", "--config", CONFIG, "--data", "/mnt/val", "--json", "/tmp/eval.json", *extra,
                       check=False, env=DUMMY, timeout=7200)
            if r.returncode == 0:
                rep = json.loads(ch.path("/tmp/eval.json").read_text())
                evals[name] = {"top1": rep["top1"], "count": rep["count"], "emulated_minutes": round((time.monotonic() - t) / 60, 1)}
            else:
                evals[name] = {"error": _tail(r)}
        step("eval", all("top1" in e for e in evals.values()), evals)
    r = ch.run(VENV_PY, "-m", "pip", "install", "-q", "pytest", "onnx", check=False, timeout=3600)
    r = ch.run("bash", "-c", f"cd /tmp/kiosk-src && {VENV_PY} -m pytest -q -p no:cacheprovider {' '.join(PURE_TESTS)}",
               check=False, env=DUMMY, timeout=7200)
    last = (r.stdout.strip().splitlines() or [""])[-1]
    step("pure-logic tests", r.returncode == 0, last if r.returncode == 0 else _tail(r, 3000))
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--val", type=Path, default=chroot.REPO.parent / "shared" / "data" / "trashnet" / "val",
                    help="TrashNet val (class folders); 'none' to skip the eval")
    ap.add_argument("--model", type=Path, action="append", default=[], help="another model (with its card) to eval")
    ap.add_argument("--report", type=Path, default=chroot.REPO / "build" / "arm64" / "report.json")
    ap.add_argument("--keep", action="store_true", help="keep the installed root (its path is printed)")
    ap.add_argument("--root", type=Path, default=None,
                    help="check a root installed by an earlier --keep run instead of installing again")
    args = ap.parse_args(argv)
    reason = chroot.skip_reason(ARCH)
    if reason:
        print(f"cannot check arm64 here: {reason}", file=sys.stderr)
        return 2
    val = None if str(args.val) == "none" else args.val.resolve()
    if val is not None and not val.is_dir():
        print(f"--val {val}: no such folder ('none' skips the eval)", file=sys.stderr)
        return 2
    args.report.parent.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    if args.root is not None:
        work = args.root.resolve().parent
        ch = chroot.Chroot.reuse(args.root.resolve(), ARCH)
        args.keep = True
        log = work / "install.log"
        ch.install_output = log.read_text() if log.exists() else ""
    else:
        work = Path(tempfile.mkdtemp(prefix="kiosk-arm64-"))
        try:
            ch = chroot.Chroot.installed(ARCH, work)
        except chroot.InstallFailed as e:
            print(e, file=sys.stderr)
            return 1
        print(f"PASS  install.sh --image in Bookworm {ARCH} ({(time.monotonic() - t) / 60:.0f} min emulated)", flush=True)
    try:
        warn = [line for line in ch.install_output.splitlines() if "WARNING" in line]
        report = check(ch, val, [m.resolve() for m in args.model], args.report.parent)
        report["install_warnings"] = warn
    finally:
        ch.close()
        if args.keep:
            print(f"root kept at {ch.root}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    args.report.write_text(json.dumps(report, indent=1) + "\n")
    print(f"report: {args.report}")
    return 0 if all(v.get("ok", True) for v in report.values() if isinstance(v, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
