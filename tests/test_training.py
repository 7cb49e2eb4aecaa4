"""Training recipe bookkeeping (needs the train extra; skipped without PyTorch)."""

from __future__ import annotations

import shlex

import pytest

pytest.importorskip("torch")

from kiosk.training.train import build_parser, train_command  # noqa: E402


def test_train_command_reproduces_the_recorded_recipe():
    """The card's command, parsed again, gives back the run's arguments."""
    recipe = vars(build_parser().parse_args(["--out", "build/x y", "--epochs", "30", "--clean-fraction", "0.25"]))
    cmd = train_command(recipe)
    assert cmd.startswith("kiosk train --data ") and "--clean-fraction 0.25" in cmd and "--lr" not in cmd
    assert "'build/x y'" in cmd  # quoted for the shell
    assert vars(build_parser().parse_args(shlex.split(cmd)[2:])) == recipe


def test_precision_follows_the_cpu_flags():
    from kiosk.model.cpuinfo import _parse, CpuInfo
    from kiosk.training.train import choose_precision

    amx = CpuInfo("x86_64", *_parse("model name : Xeon\nflags : avx2 avx512f avx512_vnni amx_bf16 amx_int8\n"), 2)
    zen3 = CpuInfo("x86_64", *_parse("model name : AMD EPYC\nflags : avx2 fma\n"), 2)
    assert choose_precision("auto", amx)[0] == "bf16"
    assert choose_precision("auto", zen3) == ("fp32-channels-last", "auto: no amx_bf16 on this CPU (bf16 would be emulated)")
    assert choose_precision("fp32", amx)[0] == "fp32-channels-last"
    assert "emulated" in choose_precision("bf16", zen3)[1]  # honoured, but the log says what it costs
    assert zen3.int8_path == "x86-avx2" and amx.int8_path == "x86-amx"
    assert amx.kernel_flags == ["avx2", "avx512f", "avx512_vnni", "amx_int8", "amx_bf16"]
