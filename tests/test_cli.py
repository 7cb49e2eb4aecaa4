"""The kiosk as a process: SIGTERM stops it in order; a bad config never crashes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from kiosk.cli import main as cli_main


def write_config(tmp_path, config_dict, model, **overrides):
    config_dict["model"]["path"] = str(model)
    config_dict["storage"]["data_dir"] = str(tmp_path / "data")
    config_dict["camera"]["backend"] = "synthetic"
    for k, v in overrides.items():
        section, key = k.split(".")
        config_dict[section][key] = v
    p = tmp_path / "kiosk.yaml"
    p.write_text(yaml.safe_dump(config_dict, allow_unicode=True), encoding="utf-8")
    return p


def kiosk_env(tmp_path):
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", PYTHONUNBUFFERED="1",
               HOME=str(tmp_path))
    env.pop("NOTIFY_SOCKET", None)
    return env


def start(tmp_path, *args):
    log = open(tmp_path / "kiosk.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "kiosk.cli", *args], stdout=log, stderr=subprocess.STDOUT,
                            env=kiosk_env(tmp_path))
    proc.log_path = tmp_path / "kiosk.log"
    return proc


def stays_up(proc, seconds: float) -> bool:
    """True if the process is still running after ``seconds``; returns as soon as it exits."""
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return True
    return False


def wait_for(proc, text, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = proc.log_path.read_text()
        if text in log or proc.poll() is not None:
            return log
        time.sleep(0.1)
    return proc.log_path.read_text()


@pytest.mark.parametrize("sig,keep", [(signal.SIGTERM, True), (signal.SIGINT, False)])
def test_signal_stops_the_demo_in_order(tmp_path, config_dict, scene_model, sig, keep):
    cfg = write_config(tmp_path, config_dict, scene_model)
    keep_args = ["--data-dir", str(tmp_path / "demo-data")] if keep else []
    proc = start(tmp_path, "demo", "--camera", "synthetic", "--config", str(cfg), *keep_args)
    try:
        log = wait_for(proc, "UI 800x480", timeout=60)
        assert "UI 800x480" in log, log
        assert stays_up(proc, 1.0), proc.log_path.read_text()  # let it run a little; fail at once if it dies
        proc.send_signal(sig)
        code = proc.wait(timeout=20)
        log = proc.log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, log
    assert f"stopped: {signal.Signals(sig).name}" in log
    assert "Traceback" not in log
    assert not (tmp_path / "data" / "events.db").exists()  # never the config's (the real) event log
    if keep:
        assert (tmp_path / "demo-data" / "events.db").exists()
    else:
        scratch = log.split("demo data (event log, calibration) in ")[1].split(",")[0]
        assert "kiosk-demo-" in scratch and not os.path.exists(scratch)  # thrown away at exit


def test_bad_config_shows_out_of_service_and_keeps_running(tmp_path, config_dict, scene_model):
    config_dict["bins"][2]["flap"]["pin"] = 12  # GPIO12 twice
    cfg = write_config(tmp_path, config_dict, scene_model)
    proc = start(tmp_path, "run", "--config", str(cfg))
    try:
        log = wait_for(proc, "GPIO12 is already used", timeout=30)
        assert stays_up(proc, 2.0), "a bad config must not end the process (no boot loop)"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
        log = proc.log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "bins[glass].flap.pin: GPIO12 is already used by bins[paper].flap.pin" in log
    assert code == 0 and "Traceback" not in log


def test_missing_config_is_a_clear_error(tmp_path, capsys):
    assert cli_main(["demo", "--config", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert "config file not found" in err and "Traceback" not in err


def test_hash_pin_command(capsys):
    assert cli_main(["hash-pin", "--pin", "246813"]) == 0
    from kiosk.config import verify_pin

    assert verify_pin("246813", capsys.readouterr().out.strip())
    assert cli_main(["hash-pin", "--pin", "12"]) == 1


def test_hash_pin_from_a_pipe_reads_one_line_without_warnings(tmp_path):
    r = subprocess.run([sys.executable, "-m", "kiosk.cli", "hash-pin"], input="975318\n",
                       capture_output=True, text=True, env=kiosk_env(tmp_path), timeout=60)
    from kiosk.config import verify_pin

    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert verify_pin("975318", r.stdout.strip())


def test_eval_command_reports_metrics(tmp_path, tiny_model, config_dict, capsys):
    import json

    import cv2
    import numpy as np

    from tests.conftest import PROTOTYPES

    for name in ("glass", "metal"):
        d = tmp_path / "data" / name
        d.mkdir(parents=True)
        for i in range(3):
            img = np.zeros((60, 60, 3), np.uint8)  # square: the gate's square around it is the item alone
            img[:] = PROTOTYPES[name][::-1]  # BGR on disk
            cv2.imwrite(str(d / f"{i}.png"), img)
    for name in ("cardboard", "paper", "plastic", "trash"):
        (tmp_path / "data" / name).mkdir()
    # a mean-colour model that knows only these two (the others' colours are none a clip has), so the
    # hand, arm and background in the kiosk's crop cannot pull it to a skin-coloured "cardboard"
    from tests.conftest import build_tiny_model

    far = {"cardboard": (255, 0, 255), "paper": (0, 255, 255), "plastic": (255, 255, 0), "trash": (0, 0, 255)}
    tiny_model = build_tiny_model(tmp_path / "two.onnx", prototypes={**PROTOTYPES, **far})
    cfg = write_config(tmp_path, config_dict, tiny_model)
    out = tmp_path / "eval.json"
    assert cli_main(["eval", "--config", str(cfg), "--data", str(tmp_path / "data"), "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["top1"] == 1.0 and set(rep) >= {"top1", "macro_f1", "per_class", "confusion"}
    assert rep["confusion"][1][1] == 3 and rep["per_class"]["metal"]["recall"] == 1.0
    assert "top-1: 100.00 %" in capsys.readouterr().out
    # the same photos held up to the kiosk: gate, frames and the decision engine (the kiosk's own Pipeline)
    assert cli_main(["eval", "--config", str(cfg), "--data", str(tmp_path / "data"), "--as-kiosk",
                     "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["as_kiosk"] and rep["images"] == 6 and rep["undecided"] == 0, rep
    assert sum(rep["confusion"][1]) == sum(rep["confusion"][2]) == 3  # every glass and metal item got a decision
    assert rep["sorted_right"] == 1.0, rep  # plain colours the tiny model knows: sorted right, never unsure
    assert "as the kiosk (presence gate, frames, decision engine; 6 clips): right bin 100.0 %" in capsys.readouterr().out


def test_every_command_family_imports_and_registers():
    """A broken import must not silently drop commands such as `kiosk flaps close-all` (ExecStopPost)."""
    import argparse
    import importlib

    from kiosk.cli import COMMAND_MODULES

    for module in COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        assert sub.choices, module
    from kiosk.cli import build_parser

    names = build_parser()._subparsers._group_actions[0].choices
    assert {"flaps", "snapshot", "doctor", "train", "export"} <= set(names)


def _subcommands(parser, prefix=()):
    """Every command path the parser knows, nested ones included (flaps close-all...)."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _subcommands(sub, (*prefix, name))


def test_every_subcommand_help_runs_and_names_the_config_search_order(capsys):
    from kiosk.cli import build_parser

    commands = list(_subcommands(build_parser()))
    assert {("run",), ("demo",), ("train",), ("flaps", "close-all"), ("scale", "tare"), ("stats",)} <= set(commands)
    for cmd in commands:
        try:
            code = cli_main([*cmd, "--help"])
        except SystemExit as e:
            code = e.code
        out = capsys.readouterr()
        assert code == 0 and "usage:" in out.out and "Traceback" not in out.err, (cmd, out.err[-500:])
        if "--config" in out.out:
            assert "$KIOSK_CONFIG" in out.out and "/etc/kiosk/config.yaml" in out.out, cmd


def test_version_and_verbose_have_help(capsys):
    from kiosk import __version__

    with pytest.raises(SystemExit) as e:
        cli_main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"kiosk {__version__}"
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    assert "log debug lines too" in capsys.readouterr().out


def test_an_unknown_bin_is_an_argument_error_not_a_config_error(tmp_path, config_dict, scene_model, capsys):
    cfg = write_config(tmp_path, config_dict, scene_model)
    assert cli_main(["flaps", "test", "bottles", "--simulate", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown bin 'bottles' (bins are ") and "error: config" not in err


def test_eval_takes_a_set_without_some_classes_and_refuses_a_folder_no_class_has(tmp_path, tiny_model, config_dict):
    """Photos from another source may have no trash/ at all: that is a class without photos, not an
    error. A folder the model has no class for (a typo) is named, never silently dropped."""
    import json

    import cv2
    import numpy as np

    from tests.conftest import PROTOTYPES

    data = tmp_path / "other-source"
    for name in ("glass", "metal"):
        (data / name).mkdir(parents=True)
        img = np.zeros((60, 60, 3), np.uint8)
        img[:] = PROTOTYPES[name][::-1]
        cv2.imwrite(str(data / name / "0.png"), img)
    (data / ".cache").mkdir()  # hidden folders are not classes
    cfg = write_config(tmp_path, config_dict, tiny_model)
    out = tmp_path / "eval.json"
    assert cli_main(["eval", "--config", str(cfg), "--data", str(data), "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["count"] == 2 and rep["per_class"]["trash"]["support"] == 0 and rep["top1"] == 1.0
    (data / "plastics").mkdir()
    assert cli_main(["eval", "--config", str(cfg), "--data", str(data), "--json", str(out)]) != 0
