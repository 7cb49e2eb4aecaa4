"""The models on the data partition, and the one link that says which the kiosk runs.

Layout under ``<storage.data_dir>/models/`` (the root file system stays read-only;
the image's model is the factory fallback)::

    versions/<version>-<name>/   one installed update: manifest.json, the ONNX, its card, canary/
    active   -> versions/...     what the kiosk runs; absent: the factory model
    previous -> versions/...     the last known good, for a rollback
    incoming/                    downloads in progress (cleared by every update)
    tuf/                         TUF's trusted metadata (versions only go up: rollback protection)
    rejected.json                versions a canary refused, so a daily check does not try them again

Why a version folder and a link: a folder is complete before it gets its
final name (written in ``incoming``, fsynced, renamed), and switching a
symlink is one rename. A power cut at any moment leaves ``active`` naming a
complete folder, or the old one, or none (factory): always a model that loads.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from kiosk.errors import UpdateError
from kiosk.files import atomic_write_text, fsync_dir, give_to, owner_of, read_json, switch_symlink

log = logging.getLogger(__name__)

MODELS_DIR = "models"
MANIFEST = "manifest.json"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
FILE_RE = re.compile(r"^(canary/)?[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")  # no folders but canary/, no ..
MANIFEST_SCHEMA = 1
MAX_CANARY = 64


@dataclass(frozen=True)
class Manifest:
    """What one update is: the signed ``kiosk-model.json`` target, checked field by field."""

    name: str
    version: int
    model: str  # the ONNX file's name; its card is the same name with .json
    canary: tuple[tuple[str, str], ...]  # (file under canary/, expected class)
    published: str = ""

    @property
    def card(self) -> str:
        return str(Path(self.model).with_suffix(".json"))

    @property
    def folder(self) -> str:
        return f"{self.version:06d}-{self.name}"

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    def files(self) -> list[str]:
        """Every file of the update, relative to its folder."""
        return [self.model, self.card] + [f for f, _ in self.canary]

    def to_dict(self) -> dict:
        return {"schema": MANIFEST_SCHEMA, "name": self.name, "version": self.version, "model": self.model,
                "canary": [{"file": f, "expected": c} for f, c in self.canary], "published": self.published}

    @classmethod
    def from_dict(cls, raw, where: str = "manifest") -> "Manifest":
        """A manifest from JSON data; an ``UpdateError`` (E701) naming the field when it is not one."""
        def bad(why: str) -> UpdateError:
            return UpdateError(f"{where}: {why}", code="E701")

        if not isinstance(raw, dict):
            raise bad("not a JSON object")
        if raw.get("schema") != MANIFEST_SCHEMA:
            raise bad(f"schema {raw.get('schema')!r}, this kiosk reads schema {MANIFEST_SCHEMA}")
        name, version, model = raw.get("name"), raw.get("version"), raw.get("model")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise bad("name: letters, digits, '.', '_' or '-', at most 64")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version < 10 ** 6:
            raise bad("version: a whole number from 1")
        if not isinstance(model, str) or not FILE_RE.match(model) or not model.endswith(".onnx") or "/" in model:
            raise bad("model: a file name ending in .onnx")
        canary = raw.get("canary")
        if not isinstance(canary, list) or not 1 <= len(canary) <= MAX_CANARY:
            raise bad(f"canary: a list of 1 to {MAX_CANARY} reference photos")
        pairs = []
        for i, item in enumerate(canary):
            f = item.get("file") if isinstance(item, dict) else None
            c = item.get("expected") if isinstance(item, dict) else None
            if not isinstance(f, str) or not FILE_RE.match(f) or not f.startswith("canary/"):
                raise bad(f"canary[{i}].file: a file name under canary/")
            if not isinstance(c, str) or not NAME_RE.match(c):
                raise bad(f"canary[{i}].expected: a class name")
            pairs.append((f, c))
        return cls(name, version, model, tuple(pairs), str(raw.get("published", ""))[:40])


@dataclass(frozen=True)
class Installed:
    """One version folder on the data partition."""

    manifest: Manifest
    folder: Path

    @property
    def model_path(self) -> Path:
        return self.folder / self.manifest.model

    def canary_photos(self) -> list[tuple[Path, str]]:
        return [(self.folder / f, c) for f, c in self.manifest.canary]


class ModelStore:
    """``<data_dir>/models``: stage, switch, roll back. ``factory``: the image's model (read-only root)."""

    def __init__(self, root: Path, factory: Path):
        self.root = Path(root)
        self.factory = Path(factory)
        self.versions = self.root / "versions"
        self.incoming = self.root / "incoming"
        self.tuf_dir = self.root / "tuf"
        self.rejected_file = self.root / "rejected.json"

    @classmethod
    def for_config(cls, cfg) -> "ModelStore":
        return cls(cfg.data_dir / MODELS_DIR, cfg.model_path)

    # ---- reading ---------------------------------------------------------------------
    def installed(self, link: str) -> Optional[Installed]:
        """What ``active`` or ``previous`` names, when it is a complete version folder; None otherwise."""
        path = self.root / link
        if not path.is_symlink():
            return None
        target = os.readlink(path)
        folder = (self.root / target).resolve()
        if folder.parent != self.versions.resolve() or not folder.is_dir():
            log.warning("model link %s points outside %s or at nothing (%s): ignored", path, self.versions, target)
            return None
        return self.read_folder(folder)

    def read_folder(self, folder: Path) -> Optional[Installed]:
        try:
            manifest = Manifest.from_dict(read_json(folder / MANIFEST), where=str(folder / MANIFEST))
        except (OSError, ValueError, UpdateError) as e:
            log.warning("model folder %s is not a complete install: %s", folder, e)
            return None
        inst = Installed(manifest, folder)
        if not all((folder / f).is_file() for f in manifest.files()):
            log.warning("model folder %s lacks files its manifest names", folder)
            return None
        return inst

    def active_link(self) -> Optional[str]:
        """The ``active`` link's text (cheap: what the running kiosk polls), None when absent."""
        try:
            return os.readlink(self.root / "active")
        except OSError:
            return None

    def model_path(self) -> Path:
        """The model the kiosk runs: the active update, else the factory model."""
        active = self.installed("active")
        return active.model_path if active is not None else self.factory

    def rejected(self) -> dict[str, str]:
        try:
            data = read_json(self.rejected_file)
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def status(self) -> dict:
        """Active, previous and factory, as ``kiosk model status`` prints them."""
        def describe(inst: Optional[Installed]) -> Optional[dict]:
            if inst is None:
                return None
            return {"name": inst.manifest.name, "version": inst.manifest.version, "model": str(inst.model_path),
                    "published": inst.manifest.published}

        active, previous = self.installed("active"), self.installed("previous")
        return {"active": describe(active) or {"factory": True, "model": str(self.factory)},
                "previous": describe(previous), "factory": {"model": str(self.factory)},
                "rejected": self.rejected(), "folder": str(self.root)}

    # ---- writing (under the store's lock) -----------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """One writer at a time: an update by hand, the daily check, the kiosk rolling back."""
        self._mkdir(self.root)
        # read-only is enough for flock, so a lock file root made stays usable by the kiosk user;
        # never through a link the kiosk user planted
        fd = os.open(self.root / ".lock", os.O_CREAT | os.O_RDONLY | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _mkdir(self, path: Path) -> None:
        """Folders a root command makes stay the kiosk's (the kiosk rolls back by itself)."""
        missing = []
        p = Path(path)
        while not p.exists():
            missing.append(p)
            p = p.parent
        owner = owner_of(p)
        for d in reversed(missing):
            d.mkdir(mode=0o755)
            give_to(d, owner)

    def clear_incoming(self) -> Path:
        shutil.rmtree(self.incoming, ignore_errors=True)
        self._mkdir(self.incoming)
        return self.incoming

    def stage(self, manifest: Manifest, source: Path) -> Installed:
        """Copy a verified download (``source``/<files>) into its version folder, complete and fsynced."""
        final = self.versions / manifest.folder
        existing = self.read_folder(final) if final.is_dir() else None
        if existing is not None:
            return existing
        self._mkdir(self.versions)
        partial = self.versions / f".{manifest.folder}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        if final.exists():  # an incomplete folder under the final name (not made by this code): replace it
            shutil.rmtree(final)
        owner = owner_of(self.root)
        try:
            self._mkdir(partial / "canary")
            for rel in manifest.files():
                dst = partial / rel
                with open(source / rel, "rb") as src, open(dst, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(dst, 0o644)
                give_to(dst, owner)
            atomic_write_text(partial / MANIFEST, _dumps(manifest.to_dict()))
            fsync_dir(partial / "canary")
            fsync_dir(partial)
            os.rename(partial, final)
            fsync_dir(self.versions)
        except OSError as e:
            shutil.rmtree(partial, ignore_errors=True)
            raise UpdateError(f"cannot install {manifest.label} in {self.versions}: {e.strerror or e}",
                              code="E704") from None
        return Installed(manifest, final)

    def activate(self, inst: Installed) -> None:
        """``active`` -> this version; ``previous`` -> what was active (the last known good)."""
        old = self.active_link()
        new = f"versions/{inst.folder.name}"
        if old == new:
            return
        if old is not None and self.installed("active") is not None:
            switch_symlink(self.root / "previous", old)
        switch_symlink(self.root / "active", new)
        log.info("model %s is active (previous: %s)", inst.manifest.label, old or "factory")

    def rollback(self, reason: str, expected: Optional[str] = "any") -> Optional[Installed]:
        """Back to ``previous`` (or the factory model when there is none); returns what is active now.

        ``expected``: the ``active`` link the caller found bad. When another writer switched it
        meanwhile (a technician's update), nothing is rolled back: the bad one is not active any more.
        """
        if expected != "any" and self.active_link() != expected:
            log.info("not rolling back: the active model changed meanwhile (%s, not %s)", self.active_link(), expected)
            return self.installed("active")
        bad = self.installed("active")
        previous = self.installed("previous")
        if bad is not None:
            self.reject(bad.manifest, reason)
        if previous is not None:
            switch_symlink(self.root / "active", f"versions/{previous.folder.name}")
            (self.root / "previous").unlink()
        else:
            try:
                (self.root / "active").unlink()
            except FileNotFoundError:
                pass
        fsync_dir(self.root)
        log.warning("model rolled back to %s: %s", previous.manifest.label if previous else "the factory model",
                    reason)
        return previous

    def reject(self, manifest: Manifest, reason: str) -> None:
        rejected = self.rejected()
        rejected[manifest.folder] = f"{dt.datetime.now().isoformat(timespec='seconds')}: {reason}"[:300]
        atomic_write_text(self.rejected_file, _dumps(dict(list(rejected.items())[-20:])))

    def prune(self) -> None:
        """Remove version folders that are neither active nor previous (and interrupted stagings)."""
        keep = {inst.folder.resolve() for inst in (self.installed("active"), self.installed("previous")) if inst}
        for link in ("active", "previous"):  # a link that resolves, even to an incomplete folder: left alone
            try:
                keep.add((self.root / os.readlink(self.root / link)).resolve())
            except OSError:
                pass
        if not self.versions.is_dir():
            return
        for d in self.versions.iterdir():
            if d.resolve() not in keep:
                if d.is_symlink():
                    d.unlink()
                else:
                    shutil.rmtree(d, ignore_errors=True)


def _dumps(data) -> str:
    import json

    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def running_model(cfg) -> Path:
    """The one answer to "which model does this kiosk run": the active update, else the config's (factory)."""
    return ModelStore.for_config(cfg).model_path()




def as_data_owner(folder: Path, fn):
    """Run ``fn()`` as the owner of ``folder`` when root runs it (``sudo kiosk model update``); its exit code.

    Why: the data partition is the kiosk user's. Root writing there could be led
    through a symlink the kiosk user planted (overwrite any file as root), and
    what root creates the kiosk could not change later (its own rollback). So a
    root command does its work as that user, in a child process, and root never
    touches the folder. Run by its owner (or everything root's): ``fn()`` as is.
    """
    import sys

    from kiosk.files import owner_of

    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    owner = owner_of(probe)
    if os.geteuid() != 0 or owner is None or owner[0] == 0:
        return fn()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: become the kiosk user for good, then do the work
        code = 1
        try:
            os.setgroups([])
            os.setresgid(owner[1], owner[1], owner[1])
            os.setresuid(owner[0], owner[0], owner[0])
            code = fn()
        except UpdateError as e:
            print(f"error [{e.code}]: {e}", file=sys.stderr)
        except BaseException as e:  # noqa: BLE001 - the parent only sees an exit code
            print(f"error [E700]: {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(int(code or 0))
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def open_running(store: ModelStore, load, on_rollback=lambda reason: None):
    """Load what the kiosk runs; an active update that does not load is rolled back (previous, then factory).

    The factory model's own ModelError passes: it is the E300 out-of-service screen as before.
    """
    from kiosk.errors import ModelError

    while True:
        path = store.model_path()
        try:
            return load(path)
        except ModelError as e:
            if path == store.factory:
                raise
            reason = f"{path.parent.name} does not load: [{e.code}] {e}"
            try:
                with store.locked():
                    store.rollback(reason, expected=store.active_link())
            except OSError as err:  # the folder cannot be changed: still never out of service for it
                log.error("model rollback failed (%s): running the factory model", err)
                on_rollback(f"{reason}; the rollback failed ({err}), so the factory model runs")
                return load(store.factory)
            on_rollback(reason)


def model_label(path: Path) -> Optional[str]:
    """``kiosk-lite0 v3@1a2b3c4d5e6f`` (an update) or ``kiosk-lite0@1a2b...`` (factory): what the fleet sees."""
    from kiosk.classifier import ModelCard, card_path
    from kiosk.errors import KioskError

    try:
        card = ModelCard.load(card_path(path))
    except KioskError:
        return None
    name = card.raw.get("name", Path(path).stem)
    try:
        version = f" v{int(read_json(Path(path).parent / MANIFEST)['version'])}"
    except (OSError, ValueError, KeyError, TypeError):
        version = ""
    return f"{name}{version}@{card.sha256[:12]}"


__all__ = ["ModelStore", "Manifest", "Installed", "running_model", "open_running", "model_label", "MODELS_DIR"]
