"""A Debian Bookworm root to install the kiosk into, as on a Pi: for the chroot tests and deploy/arm64_check.py.

``base(arch)`` makes a minimal Bookworm with Debian's own debootstrap, once,
and caches it under ``$KIOSK_CHROOT_CACHE`` (default /var/cache/kiosk-tests).
``Chroot.installed(...)`` copies it, mounts /proc and /dev, adds what
Raspberry Pi OS has and Debian has not (the boot partition), copies the
source tree and runs ``deploy/install.sh`` in it. For ``arm64`` on an x86
machine every program in the root runs under qemu-user-static through the
kernel's binfmt_misc (Debian's ``qemu-user-static`` + ``binfmt-support``).

Needs root, debootstrap, and network access to deb.debian.org and PyPI.
Imports nothing of the kiosk.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Optional

CACHE = Path(os.environ.get("KIOSK_CHROOT_CACHE", "/var/cache/kiosk-tests"))
MIRROR = os.environ.get("KIOSK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
HOST_CA_INSIDE = "/etc/ssl/certs/kiosk-test-host-ca.crt"
CMDLINE = "console=serial0,115200 console=tty1 root=ROOTDEV rootfstype=ext4 fsck.repair=yes rootwait resize\n"
REPO = Path(__file__).resolve().parents[1]
NATIVE = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
BINFMT = {"arm64": "/proc/sys/fs/binfmt_misc/qemu-aarch64"}


def base_dir(arch: str) -> Path:
    return CACHE / ("bookworm-base" if arch == "amd64" else f"bookworm-{arch}-base")


def skip_reason(arch: str = NATIVE) -> Optional[str]:
    """Why a chroot of ``arch`` cannot be made here (None: it can)."""
    if os.geteuid() != 0:
        return "a chroot needs root (chroot, mount)"
    done = base_dir(arch) / ".kiosk-base-complete"
    if not done.exists() and not shutil.which("debootstrap"):
        return "debootstrap is not installed (apt-get install debootstrap)"
    if arch != NATIVE:
        flag = BINFMT.get(arch)
        if flag is None:
            return f"no emulator known for {arch}"
        if not Path(flag).exists() or "enabled" not in Path(flag).read_text():
            return (f"{arch} binaries do not run here: apt-get install qemu-user-static binfmt-support "
                    f"(and `mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc` in a container)")
    return None


def base(arch: str = NATIVE) -> Path:
    """A minimal Debian Bookworm for ``arch``, made by debootstrap, cached."""
    root = base_dir(arch)
    done = root / ".kiosk-base-complete"
    if done.exists():
        return root
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(["debootstrap", f"--arch={arch}", "--variant=minbase", "--include=ca-certificates", "bookworm",
                    str(tmp), MIRROR], check=True)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    done.touch()
    return root


class Chroot:
    """A copy of a base root with /proc and /dev mounted; ``run`` runs a command inside."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.mounts: list[Path] = []
        self.install_output = ""

    @classmethod
    def installed(cls, arch: str, workdir: Path, image: bool = True, timeout_s: float = 3600) -> "Chroot":
        """Copy the base, prepare it like a Pi and run install.sh (``--image`` when ``image``).

        Raises ``InstallFailed`` with the log's tail; the log is kept in ``workdir/install.log``.
        """
        root = Path(workdir) / "root"
        subprocess.run(["cp", "-a", str(base(arch)), str(root)], check=True)
        ch = cls(root)
        try:
            ch.prepare(arch)
            args = ["bash", "/tmp/kiosk-src/deploy/install.sh", "--src", "/tmp/kiosk-src"] + (["--image"] if image else [])
            r = ch.run(*args, check=False, timeout=timeout_s)
            ch.install_output = r.stdout + r.stderr
            (Path(workdir) / "install.log").write_text(ch.install_output)
            if r.returncode:
                raise InstallFailed(f"install.sh failed ({r.returncode}):\n{ch.install_output[-6000:]}")
        except BaseException:
            ch.close()
            raise
        return ch

    @classmethod
    def reuse(cls, root: Path, arch: str) -> "Chroot":
        """A root installed before (kept with --keep): only the mounts again."""
        ch = cls(root)
        try:
            ch._mount_system(arch)
        except BaseException:
            ch.close()
            raise
        return ch

    def prepare(self, arch: str) -> None:
        self._mount_system(arch)
        shutil.copy("/etc/resolv.conf", self.path("/etc/resolv.conf"))
        if Path(HOST_CA).exists():
            shutil.copy(HOST_CA, self.path(HOST_CA_INSIDE))
        policy = self.path("/usr/sbin/policy-rc.d")  # never start services in the chroot
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        # What Raspberry Pi OS has and Debian has not: the boot partition.
        self.path("/boot/firmware").mkdir(parents=True, exist_ok=True)
        self.path("/boot/firmware/cmdline.txt").write_text(CMDLINE)
        shutil.copytree(
            REPO, self.path("/tmp/kiosk-src"),
            ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"),
        )

    def _mount_system(self, arch: str) -> None:
        self.mount("-t", "proc", "proc", target=self.path("/proc"))
        self.mount("--bind", "/dev", target=self.path("/dev"))
        self.mount("--bind", "/dev/pts", target=self.path("/dev/pts"))
        suffix = "" if arch == "amd64" else f"-{arch}"  # apt's .debs differ per architecture; wheels too
        for cache, inside in ((CACHE / f"apt-archives{suffix}", "/var/cache/apt/archives"),
                              (CACHE / f"pip{suffix}", "/var/cache/kiosk-pip")):
            (cache / "partial").mkdir(parents=True, exist_ok=True)
            self.mount("--bind", str(cache), target=self.path(inside))

    def mount(self, *args, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", *args, str(target)], check=True)
        self.mounts.append(target)

    def run(self, *cmd, check=True, env=None, **kw):
        full = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                "LANG": "C.UTF-8", "KIOSK_PIP_CACHE": "/var/cache/kiosk-pip", "DEBIAN_FRONTEND": "noninteractive"}
        if self.path(HOST_CA_INSIDE).exists():
            full["PIP_CERT"] = HOST_CA_INSIDE  # trust what the host trusts (e.g. a proxy's CA)
        for name in ("PIP_INDEX_URL", "http_proxy", "https_proxy", "no_proxy"):
            if os.environ.get(name):
                full[name] = os.environ[name]
        full.update(env or {})
        return subprocess.run(["chroot", str(self.root), *cmd], env=full, capture_output=True, text=True, check=check,
                              **kw)

    def path(self, p) -> Path:
        return self.root / str(p).lstrip("/")

    def close(self) -> None:
        for target in reversed(self.mounts):
            if subprocess.run(["umount", str(target)]).returncode:
                subprocess.run(["umount", "-l", str(target)])
        self.mounts.clear()


class InstallFailed(RuntimeError):
    """deploy/install.sh exited non-zero inside the chroot."""
