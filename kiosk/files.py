"""Files on the data partition that root-run technician commands may write: atomic, and still the kiosk's.

The kiosk runs as its own user; a technician runs ``sudo kiosk ...``. Whatever
a root command writes or creates next to the kiosk's files must stay
readable and writable by the kiosk (owner and mode of the file it replaces,
else of the folder), or the next start fails with "Permission denied". And
root must never change ownership *through* a symlink: the kiosk user could
plant ``events.db-wal -> /etc/shadow`` and be handed that file. Imports
nothing of the kiosk.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)

DEFAULT_MODE = 0o644


def owner_of(path: Path) -> Optional[tuple[int, int]]:
    """(uid, gid) of ``path`` itself; None when missing or a symlink (a link is nobody's word)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return None if stat.S_ISLNK(st.st_mode) else (st.st_uid, st.st_gid)


def give_to(path: Path, owner: Optional[tuple[int, int]]) -> None:
    """As root, make ``path`` belong to ``owner``; never through a symlink, never as another user."""
    if owner is None or os.geteuid() != 0:
        return
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISLNK(st.st_mode):
        log.warning("%s is a symlink: its owner is left alone (root does not follow links it did not make)", path)
        return
    if (st.st_uid, st.st_gid) != owner:
        os.chown(path, *owner, follow_symlinks=False)


def atomic_write_text(path: Path, text: str, mode: Optional[int] = None) -> None:
    """Write ``text`` so a crash leaves the old file or the new one, with the old file's owner and mode.

    ``mode``: this mode whatever the old file had (a secret: 0o600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = owner_of(path) or owner_of(path.parent)
    if mode is None:
        try:
            old = os.lstat(path)
            mode = stat.S_IMODE(old.st_mode) if stat.S_ISREG(old.st_mode) else DEFAULT_MODE
        except OSError:
            mode = DEFAULT_MODE
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)  # mkstemp makes 0600: the kiosk user could not read it
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        give_to(Path(tmp), owner)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)  # make the rename itself durable


def fsync_dir(folder: Path) -> None:
    """Make the names in ``folder`` (a rename, a new file, a switched link) survive a power cut."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def switch_symlink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` in one step: a crash leaves the old link or the new one, never none."""
    link = Path(link)
    tmp = link.with_name(f".{link.name}.new")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fsync_dir(link.parent)


MAX_JSON_BYTES = 1 << 20  # the kiosk's own JSON files are a few KB


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES):
    """The file's JSON data. ``FileNotFoundError`` passes; anything else wrong is a ``ValueError`` saying what.

    The data partition is writable by the kiosk user and the file may be
    crafted: capped in size, and nesting deep enough to exhaust Python's
    stack (100k ``[``) is a bad file like any other, never a crash.
    """
    with open(path, "rb") as f:
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ValueError(f"larger than {max_bytes // 1024} KB: not a file the kiosk wrote")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
