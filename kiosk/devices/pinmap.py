"""Which GPIO pins are flaps: what ``kiosk flaps close-all`` needs after a crash, and nothing more.

systemd runs ``kiosk flaps close-all`` after every stop or crash. It must not
depend on the config still validating: a typo, a duplicate pin or a missing
model file made while the kiosk ran would otherwise leave no pin driven.
So ``kiosk run`` keeps the flap pins of its last good start in the unit's
runtime folder (``RuntimeDirectory=kiosk``: ``/run/kiosk``, gone at reboot,
when every pin is released anyway), and close-all reads them from there
first. Without that file it takes the config file's flap sections, each
checked on its own, ignoring the rest of the file (model, translations,
scales). Imports no hardware library.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pydantic import ValidationError

from kiosk.config import FlapConfig, GpioConfig, KioskConfig
from kiosk.errors import ConfigError, excerpt

log = logging.getLogger(__name__)

PINMAP_NAME = "flap-pins.json"
DEFAULT_RUNTIME_DIR = Path("/run/kiosk")  # the unit's RuntimeDirectory=, for a technician's own close-all
MAX_PINMAP_BYTES = 64 * 1024  # a few hundred bytes per flap


@dataclass(frozen=True)
class FlapPin:
    """One bin's flap: the two attributes ``FlapBank`` reads of a bin."""

    id: str
    flap: FlapConfig


@dataclass(frozen=True)
class FlapPins:
    """The flaps to drive closed, the backend to drive them with, and where they came from."""

    pin_factory: str
    bins: tuple[FlapPin, ...]
    source: str
    problems: tuple[str, ...] = ()  # flap sections that could not be used (fallback only)

    @classmethod
    def from_config(cls, cfg: KioskConfig, source: str = "config") -> "FlapPins":
        return cls(cfg.gpio.pin_factory, tuple(FlapPin(b.id, b.flap) for b in cfg.bins if b.flap is not None), source)

    def to_json(self) -> str:
        return json.dumps({"version": 1, "pin_factory": self.pin_factory,
                           "flaps": [{"bin": b.id, "flap": b.flap.model_dump()} for b in self.bins]}, indent=1)


def runtime_dir() -> Path:
    """systemd's ``$RUNTIME_DIRECTORY`` (the first, if several), else ``/run/kiosk``."""
    env = os.environ.get("RUNTIME_DIRECTORY", "")
    return Path(env.split(":")[0]) if env else DEFAULT_RUNTIME_DIR


def pinmap_path() -> Path:
    return runtime_dir() / PINMAP_NAME


def save_last_good(cfg: KioskConfig, path: Optional[Path] = None) -> Optional[Path]:
    """Keep the config's flap pins for close-all; None (and a warning) where the folder is not writable."""
    from kiosk.files import atomic_write_text

    path = Path(path) if path is not None else pinmap_path()
    if not path.parent.is_dir():
        # a desktop or a unit without RuntimeDirectory=: close-all reads the config file's flaps instead
        log.info("no runtime folder %s: the flap pins are not kept for close-all", path.parent)
        return None
    try:
        atomic_write_text(path, FlapPins.from_config(cfg).to_json())
    except OSError as e:
        log.warning("could not keep the flap pins in %s (close-all will read the config file): %s", path, e)
        return None
    return path


def load_last_good(path: Optional[Path] = None) -> Optional[FlapPins]:
    """The pins kept by the last good start; None when there are none. A damaged file is a ConfigError."""
    path = Path(path) if path is not None else pinmap_path()
    from kiosk.files import read_json

    try:
        data = read_json(path, MAX_PINMAP_BYTES)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError([f"cannot read the kept flap pins: {e}"], str(path)) from None
    except ValueError as e:
        raise ConfigError([f"the kept flap pins are damaged ({e})"], str(path)) from None
    try:
        if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("flaps"), list):
            raise ValueError("not a version 1 pin map")
        factory = GpioConfig.model_validate({"pin_factory": data.get("pin_factory", "auto")}).pin_factory
        bins = tuple(FlapPin(str(e["bin"]), FlapConfig.model_validate(e["flap"])) for e in data["flaps"])
    except (ValueError, TypeError, KeyError, ValidationError) as e:
        raise ConfigError([f"the kept flap pins are damaged ({excerpt(str(e), 80)})"], str(path)) from None
    return _without_shared_pins(FlapPins(factory, bins, source=f"last good start ({path})"))


def from_config_file(path: Path) -> FlapPins:
    """The file's flap sections, each validated alone; the rest of the file is not looked at.

    A YAML file that cannot be read at all raises its ConfigError; a flap
    section that is wrong is skipped and named in ``problems``.
    """
    from kiosk.configfile import read_yaml

    data = read_yaml(path)
    data = data if isinstance(data, dict) else {}
    gpio = data.get("gpio") if isinstance(data.get("gpio"), dict) else {}
    problems: list[str] = []
    try:
        factory = GpioConfig.model_validate({"pin_factory": gpio.get("pin_factory", "auto")}).pin_factory
    except ValidationError:
        problems.append(f"gpio.pin_factory {excerpt(gpio.get('pin_factory'))} is not a backend: using auto")
        factory = "auto"
    bins = data.get("bins") if isinstance(data.get("bins"), list) else []
    found: list[FlapPin] = []
    for i, b in enumerate(bins):
        if not isinstance(b, dict) or b.get("flap") is None:
            continue
        name = b.get("id") if isinstance(b.get("id"), str) else f"#{i + 1}"
        where = f"bins[{name}].flap"
        try:
            found.append(FlapPin(name, FlapConfig.model_validate(b["flap"])))
        except ValidationError as e:
            problems.append(f"{where}: {_first_error(e)}")
    pins = FlapPins(factory, tuple(found), source=f"flap sections of {path}", problems=tuple(problems))
    return _without_shared_pins(pins)


def _without_shared_pins(pins: FlapPins) -> FlapPins:
    """Two flaps on one pin (a typo) cannot both be driven: keep the first, name the second."""
    used: dict[int, str] = {}
    keep, problems = [], list(pins.problems)
    for b in pins.bins:
        taken = [p for p in (b.flap.pin, b.flap.closed_switch_pin) if p is not None and p in used]
        if taken:
            problems.append(f"bins[{b.id}].flap: GPIO{taken[0]} is already bin {used[taken[0]]}'s: not driven")
            continue
        keep.append(b)
        used[b.flap.pin] = b.id
        if b.flap.closed_switch_pin is not None:
            used[b.flap.closed_switch_pin] = b.id
    return FlapPins(pins.pin_factory, tuple(keep), pins.source, tuple(problems))


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ()))
    return f"{loc + ': ' if loc else ''}{err.get('msg', 'invalid')}"


__all__ = ["FlapPin", "FlapPins", "PINMAP_NAME", "runtime_dir", "pinmap_path", "save_last_good", "load_last_good",
           "from_config_file"]
