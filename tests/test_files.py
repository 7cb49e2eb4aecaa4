"""Root-run technician commands leave the kiosk's files the kiosk's, and never chown through a symlink."""

import os
import stat

import pytest

from kiosk.appliance.eventdb import _match_owner
from kiosk.files import atomic_write_text, give_to, owner_of

KIOSK_UID, KIOSK_GID = 12345, 12345  # stands in for the kiosk user

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as another user")


@root_only
def test_a_rewritten_file_keeps_the_kiosk_users_owner_and_mode(tmp_path):
    f = tmp_path / "calibration.json"
    f.write_text("{}")
    os.chown(f, KIOSK_UID, KIOSK_GID)
    os.chmod(f, 0o640)
    atomic_write_text(f, '{"new": 1}')
    st = f.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (KIOSK_UID, KIOSK_GID, 0o640)
    assert [p.name for p in tmp_path.iterdir()] == ["calibration.json"]  # no .tmp litter


@root_only
def test_a_new_file_takes_the_folders_owner_and_is_readable(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, KIOSK_UID, KIOSK_GID)
    atomic_write_text(data / "bin-holds.json", "{}")
    st = (data / "bin-holds.json").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (KIOSK_UID, KIOSK_GID, 0o644)  # not mkstemp's 0600


@root_only
def test_root_never_chowns_through_a_planted_symlink(tmp_path):
    db = tmp_path / "events.db"
    db.write_text("")
    os.chown(db, KIOSK_UID, KIOSK_GID)
    victim = tmp_path / "shadow"
    victim.write_text("secret")
    (tmp_path / "events.db-wal").symlink_to(victim)  # planted by the kiosk user
    _match_owner(db)  # what `sudo kiosk stats` runs on the way out
    assert owner_of(victim) == (0, 0) and victim.stat().st_uid == 0
    give_to(tmp_path / "events.db-wal", (KIOSK_UID, KIOSK_GID))
    assert victim.stat().st_uid == 0
    assert owner_of(tmp_path / "events.db-wal") is None  # a link is nobody's word for an owner
