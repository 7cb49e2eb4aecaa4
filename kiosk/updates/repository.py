"""The publisher's side: keys, and a static TUF repository any web server or USB stick can serve.

Why TUF (``tuf`` on PyPI) and not a signature on the file: a kiosk must also
refuse an old model signed long ago (rollback), a repository frozen at a
version that has since been withdrawn (expiry), and one stolen key (threshold).
Four roles, each with its own keys: ``root`` (which keys count; offline, in a
safe), ``targets`` (which files are the models; offline, brought out to
publish), ``snapshot`` and ``timestamp`` (what is current; they sign often, so
they may live on the publishing machine).

Layout of ``--repo DIR`` (consistent snapshots: a kiosk mid-update never
sees half of a new publication)::

    metadata/1.root.json, N.targets.json, N.snapshot.json, timestamp.json
    targets/kiosk-model.json's <sha256>.kiosk-model.json, <name>/<version>/<sha256>.<file>
"""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Optional

from kiosk.errors import UpdateError
from kiosk.files import atomic_write_text, fsync_dir

log = logging.getLogger(__name__)

ROLES = ("root", "targets", "snapshot", "timestamp")
EXPIRY_DAYS = {"root": 365, "targets": 365, "snapshot": 30, "timestamp": 7}
MANIFEST_TARGET = "kiosk-model.json"
PASSPHRASE_ENV = "KIOSK_KEY_PASSPHRASE"
KEY_FILE_RE = re.compile(r"^(root|targets|snapshot|timestamp)-[0-9a-f]{8}\.pem$")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    fsync_dir(path.parent)


# ---- keys -----------------------------------------------------------------------------
def _passphrase(confirm: bool) -> Optional[bytes]:
    """$KIOSK_KEY_PASSPHRASE, else asked on the terminal; empty means unencrypted (tests, a sealed USB stick)."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value is None:
        if not os.isatty(0):
            return None
        value = getpass.getpass("passphrase for the signing keys (empty: none): ")
        if confirm and value and getpass.getpass("again: ") != value:
            raise UpdateError("the two passphrases differ", code="E705")
    return value.encode() if value else None


def make_keys(keys_dir: Path, repo_dir: Path, counts: dict[str, int], thresholds: dict[str, int],
              passphrase: Optional[bytes] = None) -> Path:
    """New keys for every role and version 1 of the repository; returns ``root.json`` for the image."""
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

    keys_dir, repo_dir = Path(keys_dir), Path(repo_dir)
    if (repo_dir / "metadata").exists():
        raise UpdateError(f"{repo_dir}/metadata exists: a repository is there already (keys are made once)",
                          code="E705")
    for role in ROLES:
        if not 1 <= thresholds[role] <= counts[role]:
            raise UpdateError(f"{role}: threshold {thresholds[role]} needs 1..{counts[role]} keys", code="E705")
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    root = Root(expires=_now() + dt.timedelta(days=EXPIRY_DAYS["root"]), consistent_snapshot=True)
    signers = {role: [] for role in ROLES}
    for role in ROLES:
        for _ in range(counts[role]):
            signer = CryptoSigner.generate_ed25519()
            root.add_key(signer.public_key, role)
            signers[role].append(signer)
            enc = (serialization.BestAvailableEncryption(passphrase) if passphrase
                   else serialization.NoEncryption())
            key = serialization.load_pem_private_key(signer.private_bytes, password=None)
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
            path = keys_dir / f"{role}-{signer.public_key.keyid[:8]}.pem"
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
        root.roles[role].threshold = thresholds[role]
    repo = Repository(repo_dir, Keyring(signers))
    root_md = Metadata(root)
    repo.sign(root_md, "root", root)
    repo.write(root_md, "root")
    targets = Metadata(Targets(expires=_now() + dt.timedelta(days=EXPIRY_DAYS["targets"])))
    repo.sign(targets, "targets", root)
    repo.write(targets, "targets")
    snapshot = Metadata(Snapshot(expires=_now() + dt.timedelta(days=EXPIRY_DAYS["snapshot"])))
    repo.sign(snapshot, "snapshot", root)
    repo.write(snapshot, "snapshot")
    timestamp = Metadata(Timestamp(expires=_now() + dt.timedelta(days=EXPIRY_DAYS["timestamp"])))
    repo.sign(timestamp, "timestamp", root)
    repo.write(timestamp, "timestamp")
    out = repo_dir / "root.json"  # the copy that goes into the image (updates.trusted_root)
    shutil.copyfile(repo_dir / "metadata" / "1.root.json", out)
    return out


class Keyring:
    """Private keys by role. ``load`` reads ``<role>-<keyid>.pem`` files from one or more folders
    (a custodian's USB stick each, for a threshold)."""

    def __init__(self, signers: dict[str, list]):
        self.signers = signers

    @classmethod
    def load(cls, folders: Iterable[Path], passphrase: Optional[bytes] = None) -> "Keyring":
        from cryptography.hazmat.primitives import serialization
        from securesystemslib.signer import CryptoSigner

        signers: dict[str, list] = {role: [] for role in ROLES}
        seen = set()
        asked = passphrase
        for folder in folders:
            folder = Path(folder)
            if not folder.is_dir():
                raise UpdateError(f"--keys {folder}: no such folder", code="E705")
            for path in sorted(folder.iterdir()):
                if not KEY_FILE_RE.match(path.name):
                    continue
                data = path.read_bytes()
                try:
                    key = serialization.load_pem_private_key(data, password=None)
                except TypeError:  # encrypted: ask once
                    if asked is None:
                        asked = _passphrase(confirm=False)
                    try:
                        key = serialization.load_pem_private_key(data, password=asked)
                    except (TypeError, ValueError):
                        raise UpdateError(f"{path}: wrong passphrase (${PASSPHRASE_ENV})", code="E705") from None
                except ValueError as e:
                    raise UpdateError(f"{path}: not a private key ({e})", code="E705") from None
                signer = CryptoSigner(key)
                if signer.public_key.keyid not in seen:
                    seen.add(signer.public_key.keyid)
                    signers[path.name.split("-", 1)[0]].append(signer)
        return cls(signers)


# ---- the repository ---------------------------------------------------------------------
class Repository:
    """Read the newest metadata of a repository folder; sign and write new versions."""

    def __init__(self, repo_dir: Path, keyring: Keyring, require_threshold: bool = True):
        self.dir = Path(repo_dir)
        self.meta_dir = self.dir / "metadata"
        self.targets_dir = self.dir / "targets"
        self.keyring = keyring
        self.require_threshold = require_threshold

    def root(self):
        from tuf.api.metadata import Metadata

        versions = sorted(int(p.name.split(".")[0]) for p in self.meta_dir.glob("*.root.json")
                          if p.name.split(".")[0].isdigit())
        if not versions:
            raise UpdateError(f"{self.meta_dir}: no N.root.json: not a repository (kiosk model keys makes one)",
                              code="E705")
        return Metadata.from_file(str(self.meta_dir / f"{versions[-1]}.root.json"))

    def load(self, role: str):
        """The newest ``targets``, ``snapshot`` or ``timestamp`` (timestamp names snapshot names targets)."""
        from tuf.api.metadata import Metadata

        timestamp = Metadata.from_file(str(self.meta_dir / "timestamp.json"))
        if role == "timestamp":
            return timestamp
        snapshot = Metadata.from_file(str(self.meta_dir / f"{timestamp.signed.snapshot_meta.version}.snapshot.json"))
        if role == "snapshot":
            return snapshot
        return Metadata.from_file(str(self.meta_dir / f"{snapshot.signed.meta['targets.json'].version}.targets.json"))

    def sign(self, md, role: str, root=None, signers=None) -> None:
        """Sign with every key of ``role`` in the keyring; refuse below the role's threshold."""
        root = root if root is not None else self.root().signed
        allowed = set(root.roles[role].keyids)
        use = [s for s in (signers if signers is not None else self.keyring.signers[role])
               if s.public_key.keyid in allowed]
        need = root.roles[role].threshold
        if self.require_threshold and len(use) < need:
            raise UpdateError(f"{role} needs {need} signature(s) and {len(use)} of its keys were given (--keys): "
                              f"bring the other custodians' keys", code="E705")
        md.signatures.clear()
        for s in use:
            md.sign(s, append=True)

    def write(self, md, role: str) -> Path:
        from tuf.api.serialization.json import JSONSerializer

        name = "timestamp.json" if role == "timestamp" else f"{md.signed.version}.{role}.json"
        path = self.meta_dir / name
        _atomic_bytes(path, md.to_bytes(JSONSerializer(compact=False)))
        return path

    def add_target(self, targets, target_path: str, local: Path, custom: Optional[dict] = None) -> None:
        """Copy ``local`` in as ``targets/<dir>/<sha256>.<name>`` and list it in ``targets``."""
        from tuf.api.metadata import TargetFile

        info = TargetFile.from_file(target_path, str(local), ["sha256"])
        if custom:
            info.unrecognized_fields["custom"] = custom
        parent, _, name = target_path.rpartition("/")
        dst = self.targets_dir / parent / f"{info.hashes['sha256']}.{name}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        from kiosk.classifier import sha256_file

        if not (dst.is_file() and sha256_file(dst) == info.hashes["sha256"]):  # a publish killed mid-copy is redone
            _atomic_bytes(dst, Path(local).read_bytes())
        targets.signed.targets[target_path] = info

    def commit(self, targets=None, timestamp_expires: Optional[dt.datetime] = None) -> int:
        """New versions of targets (if given), snapshot and timestamp, written in that order: timestamp
        last, so a kiosk reading meanwhile sees the old publication or the new one. Returns the
        timestamp's version."""
        from tuf.api.metadata import MetaFile

        root = self.root().signed
        snapshot, timestamp = self.load("snapshot"), self.load("timestamp")
        if targets is not None:
            targets.signed.version += 1
            targets.signed.expires = _now() + dt.timedelta(days=EXPIRY_DAYS["targets"])
            self.sign(targets, "targets", root)
            self.write(targets, "targets")
            snapshot.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
        snapshot.signed.version += 1
        snapshot.signed.expires = _now() + dt.timedelta(days=EXPIRY_DAYS["snapshot"])
        self.sign(snapshot, "snapshot", root)
        self.write(snapshot, "snapshot")
        timestamp.signed.version += 1
        timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
        timestamp.signed.expires = timestamp_expires or _now() + dt.timedelta(days=EXPIRY_DAYS["timestamp"])
        self.sign(timestamp, "timestamp", root)
        self.write(timestamp, "timestamp")
        return timestamp.signed.version

    def renew_root(self, days: int = EXPIRY_DAYS["root"]) -> int:
        """Root version N+1 with the same keys and a new expiry, signed by the root keys (threshold).

        Kiosks walk from the image's root through every N.root.json, so a renewed
        (or, edited by hand, rotated) root reaches them with the next update.
        """
        md = self.root()
        md.signed.version += 1
        md.signed.expires = _now() + dt.timedelta(days=days)
        self.sign(md, "root", md.signed)
        self.write(md, "root")
        return md.signed.version

    def current_version(self) -> int:
        """The newest published model version (0: none yet)."""
        entry = self.load("targets").signed.targets.get(MANIFEST_TARGET)
        return int((entry.custom or {}).get("version", 0)) if entry is not None else 0


def publish(repo: Repository, model_path: Path, canary: list[tuple[Path, str]], *, version: Optional[int] = None,
            timestamp_expires: Optional[dt.datetime] = None):
    """Add a model (ONNX, card, canary photos) as the repository's current one; returns its Manifest."""
    from kiosk.classifier import card_path
    from kiosk.updates.store import NAME_RE, Manifest

    model_path = Path(model_path)
    name = model_path.stem
    if name.endswith("-int8"):
        name = name[: -len("-int8")]
    if not NAME_RE.match(name):
        raise UpdateError(f"{model_path.name}: the model's name must be letters, digits, '.', '_' or '-'",
                          code="E705")
    version = version if version is not None else repo.current_version() + 1
    if version <= repo.current_version():
        raise UpdateError(f"version {version} is not above the published {repo.current_version()}", code="E705")
    files = [(f"canary/{i:02d}-{cls}{p.suffix.lower()}", p, cls) for i, (p, cls) in enumerate(canary)]
    manifest = Manifest(name, version, model_path.name, tuple((f, c) for f, _, c in files),
                        published=_now().isoformat())
    targets = repo.load("targets")
    base = f"{name}/{version}"
    repo.add_target(targets, f"{base}/{model_path.name}", model_path)
    repo.add_target(targets, f"{base}/{card_path(model_path).name}", card_path(model_path))
    for rel, src, _ in files:
        repo.add_target(targets, f"{base}/{rel}", src)
    with tempfile.TemporaryDirectory() as tmp:
        mpath = Path(tmp) / MANIFEST_TARGET
        atomic_write_text(mpath, _json(manifest.to_dict()))
        repo.add_target(targets, MANIFEST_TARGET, mpath, custom={"version": version, "name": name})
    repo.commit(targets, timestamp_expires=timestamp_expires)
    return manifest


def _json(data) -> str:
    import json

    return json.dumps(data, indent=1, sort_keys=True) + "\n"


__all__ = ["make_keys", "Keyring", "Repository", "publish", "MANIFEST_TARGET", "ROLES"]
