"""Which config file the kiosk reads, when nobody names one.

On the appliance a technician edits ``/boot/firmware/kiosk.yaml`` from any
laptop (the boot partition is FAT, readable everywhere); the image ships a
factory copy in ``/etc/kiosk/config.yaml`` for when that file is absent. A
desktop checkout falls back to ``./config.yaml``.

A boot-partition file that exists but is broken is still *the* choice: the
kiosk must show its errors on the out-of-service screen, not quietly run the
factory config the technician meant to replace.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional, Sequence

from kiosk.errors import ConfigError

BOOT_CONFIG = Path("/boot/firmware/kiosk.yaml")
ETC_CONFIG = Path("/etc/kiosk/config.yaml")
LOCAL_CONFIG = Path("config.yaml")
ENV_VAR = "KIOSK_CONFIG"
AUTO = "auto"

DEFAULT_CANDIDATES: tuple[Path, ...] = (BOOT_CONFIG, ETC_CONFIG, LOCAL_CONFIG)
# Every command's --config help says the same thing (argparse fills in %(default)s where there is one).
CONFIG_HELP = (f"config file (default: ${ENV_VAR} if set, else the first that exists of {BOOT_CONFIG}, "
               f"{ETC_CONFIG}, ./{LOCAL_CONFIG})")


def default_config_path(
    candidates: Optional[Sequence[Path]] = None,
    env: Optional[Mapping[str, str]] = None,
) -> Path:
    """The first candidate that exists (``$KIOSK_CONFIG`` wins when set).

    When none exists it returns the last one (the checkout's ``config.yaml``)
    rather than failing, so a CLI can use it as a default while building its
    parser; :func:`resolve_config_arg` gives the error naming every place.
    ``candidates`` defaults to :data:`DEFAULT_CANDIDATES`, read at call time
    (tests replace it).
    """
    candidates = DEFAULT_CANDIDATES if candidates is None else candidates
    env = os.environ if env is None else env
    override = env.get(ENV_VAR, "").strip()
    if override and override != AUTO:
        return Path(override).expanduser()
    for path in candidates:
        # exists(), not is_file(): a folder or unreadable file by that name is
        # still what the technician meant; load_config says what is wrong.
        if Path(path).exists():
            return Path(path)
    return Path(candidates[-1])


def resolve_config_arg(
    value: Optional[str],
    candidates: Optional[Sequence[Path]] = None,
    env: Optional[Mapping[str, str]] = None,
) -> Path:
    """``--config`` as given: a path, or None / ``auto`` for :func:`default_config_path`.

    Raises ConfigError naming every place it looked when nothing is found, so
    the out-of-service screen (or the CLI) can say where the file should be.
    """
    if value is not None and str(value).strip() not in ("", AUTO):
        return Path(value).expanduser()
    candidates = DEFAULT_CANDIDATES if candidates is None else candidates
    env = os.environ if env is None else env
    overridden = env.get(ENV_VAR, "").strip() not in ("", AUTO)
    path = default_config_path(candidates, env)
    if not overridden and not path.exists():
        where = ", ".join(str(p) for p in candidates)
        raise ConfigError([f"no config file found; looked for {where}"])
    return path
