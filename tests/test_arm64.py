"""The Pi path under emulation (opt-in): the kiosk installed and run in an arm64 Bookworm root.

Runs only with ``KIOSK_TEST_ARM64=1``, as root, with debootstrap,
qemu-user-static + binfmt-support and network access (deb.debian.org,
PyPI); the first run builds the arm64 base (cached), every run installs
into a copy. An hour or more under qemu. ``deploy/arm64_check.py`` runs the
same checks by hand and prints them; ``KIOSK_ARM64_MODELS`` (paths,
``:``-separated) adds models to compare, e.g. both int8 forms from
``kiosk export --form s8s8|u8s8``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "deploy"))
import arm64_check  # noqa: E402
import chroot  # noqa: E402

VAL = REPO.parent / "shared" / "data" / "trashnet" / "val"
MODELS = [Path(p) for p in os.environ.get("KIOSK_ARM64_MODELS", "").split(":") if p]
SAME_WITHIN = 0.005  # top-1 on val, arm64 against x86-64: half a point


def _skip_reason():
    if not os.environ.get("KIOSK_TEST_ARM64"):
        return "opt-in: KIOSK_TEST_ARM64=1 (root, debootstrap, qemu-user-static, network; an hour or more)"
    return chroot.skip_reason(arm64_check.ARCH)


pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(_skip_reason()), reason=_skip_reason() or "")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    work = tmp_path_factory.mktemp("arm64")
    try:
        ch = chroot.Chroot.installed(arm64_check.ARCH, work)
    except chroot.InstallFailed as e:
        pytest.fail(str(e))
    try:
        rep = arm64_check.check(ch, VAL if VAL.is_dir() else None, MODELS, work)
        rep["install_output"] = ch.install_output
        yield rep
    finally:
        ch.close()
        if not os.environ.get("KIOSK_TEST_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


def test_install_copes_with_plain_debian(report):
    assert report["arch"] == "aarch64"
    assert "python3-picamera2 is not in this system's archive" in report["install_output"]  # said, and went on
    assert report["wheels"]["ok"], report["wheels"]


@pytest.mark.parametrize("step", ["check-config", "doctor", "snapshots", "kmsdrm", "pure-logic tests"])
def test_runs_on_arm64(report, step):
    assert report[step]["ok"], report[step]


def _x86_top1(model) -> float:
    """The same eval on this (x86-64) machine, with the same command."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / "x86-eval.json"
    cmd = [sys.executable, "-m", "kiosk.cli", "eval", "--config", str(REPO / "config.yaml"), "--data", str(VAL),
           "--json", str(out)] + (["--model", str(model)] if model else [])
    subprocess.run(cmd, check=True, capture_output=True, timeout=3600)
    return json.loads(out.read_text())["top1"]


@pytest.mark.skipif(not VAL.is_dir(), reason="needs ../shared/data/trashnet/val")
def test_same_answers_on_arm64_as_on_x86(report):
    evals = report["eval"]
    assert report["eval"]["ok"], evals
    for name, model in [("shipped", None), *((f"{m.parent.name}/{m.stem}", m) for m in MODELS)]:
        arm = evals[name]["top1"]
        assert abs(arm - _x86_top1(model)) <= SAME_WITHIN, (name, arm)
