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

from .errors import ConfigError

BOOT_CONFIG = Path("/boot/firmware/kiosk.yaml")
ETC_CONFIG = Path("/etc/kiosk/config.yaml")
LOCAL_CONFIG = Path("config.yaml")
ENV_VAR = "KIOSK_CONFIG"
AUTO = "auto"

DEFAULT_CANDIDATES: tuple[Path, ...] = (BOOT_CONFIG, ETC_CONFIG, LOCAL_CONFIG)


def default_config_path(
    candidates: Sequence[Path] = DEFAULT_CANDIDATES,
    env: Optional[Mapping[str, str]] = None,
) -> Path:
    """The first candidate that exists (``$KIOSK_CONFIG`` wins when set).

    Raises ConfigError naming every place it looked when none exists, so the
    out-of-service screen can say where the file should be.
    """
    env = os.environ if env is None else env
    override = env.get(ENV_VAR, "").strip()
    if override and override != AUTO:
        return Path(override).expanduser()
    for path in candidates:
        # exists(), not is_file(): a folder or unreadable file by that name is
        # still what the technician meant; load_config says what is wrong.
        if Path(path).exists():
            return Path(path)
    where = ", ".join(str(p) for p in candidates)
    raise ConfigError([f"no config file found; looked for {where}"])


def resolve_config_arg(value: Optional[str], **kwargs) -> Path:
    """``--config`` as given: a path, or None / ``auto`` for :func:`default_config_path`."""
    if value is None or str(value).strip() in ("", AUTO):
        return default_config_path(**kwargs)
    return Path(value).expanduser()
