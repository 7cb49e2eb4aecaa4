"""What this CPU is, in the terms that decide which kernels run.

onnxruntime's int8 kernels and PyTorch's bf16 path are picked by ISA flags,
so every figure (model card, ``kiosk bench``, training log) says where it
was measured with these, and ``kiosk train`` picks its precision from them.
Read from ``/proc/cpuinfo`` (x86 ``flags``, ARM ``Features``); no imports
beyond the standard library.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

# The flags that change which int8 / bf16 kernels run (x86-64, then ARM64).
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16", "asimddp", "i8mm")


@dataclass(frozen=True)
class CpuInfo:
    arch: str
    model: str
    flags: frozenset[str]
    cpus: int

    @property
    def kernel_flags(self) -> list[str]:
        return [f for f in KERNEL_FLAGS if f in self.flags]

    @property
    def int8_path(self) -> str:
        """Which onnxruntime u8s8 kernel family this CPU gets (for labels, not decisions)."""
        f = self.flags
        if self.arch in ("aarch64", "arm64"):
            return "arm64-dot" if "asimddp" in f else "arm64"
        if "amx_int8" in f:
            return "x86-amx"
        if "avx512_vnni" in f or "avx_vnni" in f:
            return "x86-vnni"
        if "avx512f" in f:
            return "x86-avx512"  # VPMADDUBSW: saturating pair sums, like AVX2
        if "avx2" in f:
            return "x86-avx2"
        return self.arch

    def describe(self) -> str:
        flags = " ".join(self.kernel_flags) or "none of " + "/".join(KERNEL_FLAGS[:3])
        return f"{self.model} ({self.arch}, {self.cpus} CPUs; {flags})"

    def as_record(self) -> dict:
        return {"cpu": self.model, "arch": self.arch, "cpus": self.cpus, "kernel_flags": self.kernel_flags,
                "int8_path": self.int8_path}


def _parse(text: str) -> tuple[str, frozenset[str]]:
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model, frozenset(flags)


def cpu_info(cpuinfo: str | Path = "/proc/cpuinfo") -> CpuInfo:
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        text = ""
    model, flags = _parse(text)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    arch = platform.machine()
    if arch in ("aarch64", "arm64") and flags & X86_ONLY:
        # qemu-user passes the host's /proc/cpuinfo through: this is an emulated ARM64, and the x86 host's
        # flags say nothing about the kernels it runs (qemu's "max" CPU model)
        model, flags = f"qemu-user emulated ARM64 on {model or 'an x86 host'}", frozenset()
    return CpuInfo(arch, model or platform.processor() or "unknown CPU", flags, cpus)


X86_ONLY = frozenset({"sse2", "avx", "avx2", "ssse3"})  # flags no ARM cpuinfo has
