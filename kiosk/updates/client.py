"""The kiosk's side of TUF: fetch the current model through ``tuf.ngclient`` with the image's root.

Every byte is checked against signed metadata before it is used: the files
land in ``incoming/`` and only there. What TUF refuses becomes one
``UpdateError`` (E701) that says which check failed, in words a technician
can pass on; a source that cannot be read is E703.
"""

from __future__ import annotations

import logging
import urllib.parse
from pathlib import Path
from typing import Iterator

from kiosk.errors import UpdateError
from kiosk.files import read_json
from kiosk.updates.repository import MANIFEST_TARGET
from kiosk.updates.store import Manifest, ModelStore

log = logging.getLogger(__name__)

CHUNK = 1 << 16


def _dir_fetcher():
    from tuf.api import exceptions
    from tuf.ngclient.fetcher import FetcherInterface

    class DirFetcher(FetcherInterface):
        """``file://`` URLs: a repository on a USB stick or a mounted share. A missing file is a 404
        (that is how TUF learns there is no newer root)."""

        def _fetch(self, url: str) -> Iterator[bytes]:
            path = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
            try:
                f = open(path, "rb")
            except FileNotFoundError:
                raise exceptions.DownloadHTTPError(f"{path} not found", 404) from None
            except OSError as e:
                raise exceptions.DownloadError(f"{path}: {e.strerror or e}") from None

            def chunks():
                with f:
                    while True:
                        block = f.read(CHUNK)
                        if not block:
                            return
                        yield block

            return chunks()

    return DirFetcher()


def base_url(source: str) -> str:
    """``http(s)://...`` as given; a folder (a USB stick) as a ``file://`` URL."""
    if "://" in source:
        scheme = source.split("://", 1)[0].lower()
        if scheme not in ("http", "https", "file"):
            raise UpdateError(f"update source {source}: only http, https or a folder", code="E705")
        return source.rstrip("/")
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise UpdateError(f"update source {folder}: no such folder (is the USB stick mounted?)", code="E703")
    return folder.resolve().as_uri()


def refused(e: Exception) -> UpdateError:
    """What TUF refused, said plainly (E701), or why the source could not be read (E703)."""
    import datetime as dt

    from tuf.api import exceptions as x

    # TUF judges expiry by this kiosk's clock: a clock that runs ahead (no RTC, no NTP) looks like a freeze
    now = dt.datetime.now(dt.timezone.utc)
    checks = [
        (x.ExpiredMetadataError, f"its signed metadata has expired (a frozen or stale repository, or this "
                                 f"kiosk's clock is wrong: it reads {now:%Y-%m-%d %H:%M} UTC)"),
        (x.BadVersionNumberError, "it is older than what this kiosk already trusts (a rollback)"),
        (x.UnsignedMetadataError, "it is not signed by enough of the trusted keys (threshold not met, or a "
                                  "key this kiosk does not trust)"),
        (x.LengthOrHashMismatchError, "a file differs from what the signed metadata says (tampered or corrupt)"),
        (x.DownloadLengthMismatchError, "a file is longer than the signed metadata allows (tampered)"),
    ]
    for kind, words in checks:
        if isinstance(e, kind):
            return UpdateError(f"update refused: {words}: {e}", code="E701")
    if isinstance(e, x.DownloadError):
        return UpdateError(f"update source not reachable: {e}", code="E703")
    if isinstance(e, x.RepositoryError):
        return UpdateError(f"update refused: the repository's metadata is not valid: {e}", code="E701")
    if isinstance(e, OSError):
        import errno

        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            return UpdateError(f"the data partition cannot take the download: {e.strerror}", code="E704")
        return UpdateError(f"update source not readable: {e}", code="E703")
    return UpdateError(f"update refused: {type(e).__name__}: {e}", code="E701")


def fetch(store: ModelStore, source: str, trusted_root: Path) -> tuple[Manifest, Path]:
    """Download and verify the repository's current model into ``store.incoming``.

    Returns its manifest and the folder holding its files (``<file>`` as in the manifest).
    """
    from tuf.api import exceptions as x
    from tuf.ngclient import Updater

    try:
        root = Path(trusted_root).read_bytes()
    except OSError as e:
        raise UpdateError(f"updates.trusted_root {trusted_root}: {e.strerror or e}", code="E705") from None
    base = base_url(source)
    incoming = store.clear_incoming()
    store._mkdir(store.tuf_dir)
    fetcher = _dir_fetcher() if base.startswith("file://") else None
    try:
        updater = Updater(metadata_dir=str(store.tuf_dir), metadata_base_url=f"{base}/metadata/",
                          target_dir=str(incoming), target_base_url=f"{base}/targets/", fetcher=fetcher,
                          bootstrap=root)
        updater.refresh()
        info = updater.get_targetinfo(MANIFEST_TARGET)
        if info is None:
            raise UpdateError(f"{source}: the repository has no {MANIFEST_TARGET} (nothing published yet)",
                              code="E701")
        path = updater.download_target(info, filepath=str(incoming / MANIFEST_TARGET))
        try:
            manifest = Manifest.from_dict(read_json(Path(path)), where=f"{source} {MANIFEST_TARGET}")
        except ValueError as e:
            raise UpdateError(f"{source} {MANIFEST_TARGET}: {e}", code="E701") from None
        files = incoming / "files"
        (files / "canary").mkdir(parents=True)
        for rel in manifest.files():
            target = f"{manifest.name}/{manifest.version}/{rel}"
            info = updater.get_targetinfo(target)
            if info is None:
                raise UpdateError(f"{source}: {target} is in the manifest but not signed as a target", code="E701")
            updater.download_target(info, filepath=str(files / rel))
    except UpdateError:
        raise
    except (x.RepositoryError, x.DownloadError, OSError, ValueError) as e:
        raise refused(e) from None
    return manifest, files


__all__ = ["fetch", "refused", "base_url"]
