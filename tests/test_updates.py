"""Signed model updates (kiosk.updates): a real TUF repository in a temp dir, served over HTTP on loopback.

Each attack the issue names is played against the kiosk's side: a tampered
file, a target below the signing threshold, an older repository (rollback),
expired metadata (freeze), a repository signed by someone else's keys. The
kiosk must refuse each with its code and leave the running model as it was.
"""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("tuf")

from kiosk.errors import UpdateError  # noqa: E402
from kiosk.updates import repository as rp  # noqa: E402
from kiosk.updates.canary import run_canary  # noqa: E402
from kiosk.updates.install import update  # noqa: E402
from kiosk.updates.store import ModelStore, open_running  # noqa: E402
from kiosk.updates.watcher import ModelWatcher  # noqa: E402
from tests.conftest import CLASSES, PROTOTYPES, REPO, build_tiny_model  # noqa: E402

ONE = {"root": 1, "targets": 1, "snapshot": 1, "timestamp": 1}


def load(path):
    from kiosk.classifier import OnnxClassifier

    return OnnxClassifier(path, threads=1)


def canary_photos(folder: Path, classes=("glass", "metal", "paper")) -> list[tuple[Path, str]]:
    """Flat photos of the tiny model's prototype colours (with a little noise): it answers them by colour."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for c in classes:
        rgb = np.clip(np.array(PROTOTYPES[c], np.float32) + rng.normal(0, 4, (120, 160, 3)), 0, 255).astype(np.uint8)
        path = folder / f"{c}.png"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        out.append((path, c))
    return out


class Served:
    """The repository folder behind a real HTTP server on 127.0.0.1 (a city's static web server)."""

    def __init__(self, folder: Path):
        handler = functools.partial(Quiet, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def city(tmp_path):
    """Keys, a repository with model v1 published, its server, and a kiosk's store."""
    keys, repo_dir = tmp_path / "keys", tmp_path / "repo"
    root = rp.make_keys(keys, repo_dir, ONE, ONE)
    photos = canary_photos(tmp_path / "photos")
    models = tmp_path / "models-src"
    models.mkdir()
    v1 = build_tiny_model(models / "kiosk-tiny-int8.onnx")
    repo = rp.Repository(repo_dir, rp.Keyring.load([keys]))
    rp.publish(repo, v1, photos)
    (tmp_path / "factory").mkdir()
    factory = build_tiny_model(tmp_path / "factory" / "factory.onnx", sharpness=6.0)
    store = ModelStore(tmp_path / "data" / "models", factory)
    server = Served(repo_dir)

    class City:
        pass

    c = City()
    c.keys, c.repo_dir, c.root, c.photos, c.models, c.repo, c.store, c.server = (
        keys, repo_dir, root, photos, models, repo, store, server)
    c.tmp = tmp_path
    yield c
    server.close()


def publish_v(city, sharpness: float, photos=None, **kw):
    """Another tiny model (other weights, same answers) as the next version."""
    folder = city.models / f"s{sharpness:g}"
    folder.mkdir(exist_ok=True)
    model = build_tiny_model(folder / "kiosk-tiny-int8.onnx", sharpness=sharpness)
    return rp.publish(city.repo, model, photos or city.photos, **kw)


def refused(city, source=None, code="E701") -> str:
    before = city.store.active_link()
    with pytest.raises(UpdateError) as e:
        update(city.store, source or city.server.url, city.root, load)
    assert e.value.code == code, str(e.value)
    assert city.store.active_link() == before  # the running model is untouched
    load(city.store.model_path()).close()  # and still loads
    return str(e.value)


# ---- the happy path -----------------------------------------------------------------------------
def test_update_over_http_installs_verified_files_and_says_up_to_date_after(city):
    assert city.store.model_path() == city.store.factory
    out = update(city.store, city.server.url, city.root, load)
    assert out.installed and out.version == 1
    active = city.store.installed("active")
    assert active.manifest.version == 1 and active.model_path.is_file()
    assert city.store.model_path() == active.model_path
    assert sorted(p.name for p in (active.folder / "canary").iterdir()) == ["00-glass.png", "01-metal.png", "02-paper.png"]
    again = update(city.store, city.server.url, city.root, load)
    assert not again.installed and "up to date" in again.message
    publish_v(city, 9.0)
    out = update(city.store, city.server.url, city.root, load)
    assert out.version == 2
    status = city.store.status()
    assert status["active"]["version"] == 2 and status["previous"]["version"] == 1
    assert sorted(p.name for p in city.store.versions.iterdir()) == ["000001-kiosk-tiny", "000002-kiosk-tiny"]


def test_update_from_a_folder_like_a_usb_stick(city):
    stick = city.tmp / "usb"
    shutil.copytree(city.repo_dir, stick)
    assert update(city.store, str(stick), city.root, load).version == 1


# ---- the attacks ---------------------------------------------------------------------------------
def test_a_tampered_model_file_is_refused(city):
    onnx = next((city.repo_dir / "targets" / "kiosk-tiny" / "1").glob("*.onnx"))
    data = bytearray(onnx.read_bytes())
    data[-10] ^= 0xFF
    onnx.write_bytes(bytes(data))
    assert "tampered" in refused(city)
    assert city.store.installed("active") is None


def test_a_tampered_canary_photo_is_refused_too(city):
    photo = next((city.repo_dir / "targets" / "kiosk-tiny" / "1" / "canary").glob("*glass.png"))
    photo.write_bytes(photo.read_bytes() + b"x")
    assert "tampered" in refused(city)


def test_a_target_below_the_signing_threshold_is_refused(tmp_path):
    keys, repo_dir = tmp_path / "keys", tmp_path / "repo"
    root = rp.make_keys(keys, repo_dir, {**ONE, "targets": 2}, {**ONE, "targets": 2})
    ring = rp.Keyring.load([keys])
    assert len(ring.signers["targets"]) == 2
    model = build_tiny_model(tmp_path / "kiosk-tiny-int8.onnx")
    photos = canary_photos(tmp_path / "photos")
    one_key = rp.Keyring({**ring.signers, "targets": ring.signers["targets"][:1]})
    with pytest.raises(UpdateError, match="targets needs 2 signature"):  # the publisher's side refuses first
        rp.publish(rp.Repository(repo_dir, one_key), model, photos)
    rp.publish(rp.Repository(repo_dir, one_key, require_threshold=False), model, photos)  # an attacker's repo
    store = ModelStore(tmp_path / "data" / "models", model)
    with pytest.raises(UpdateError) as e:
        update(store, str(repo_dir), root, load)
    assert e.value.code == "E701" and "not signed by enough" in str(e.value)
    assert store.installed("active") is None


def test_a_repository_signed_with_someone_elses_keys_is_refused(city, tmp_path):
    other = tmp_path / "mallory"
    rp.make_keys(other / "keys", other / "repo", ONE, ONE)
    rp.publish(rp.Repository(other / "repo", rp.Keyring.load([other / "keys"])),
               build_tiny_model(tmp_path / "evil-int8.onnx", sharpness=3.0), city.photos)
    assert "not signed by enough" in refused(city, source=str(other / "repo"))


def test_an_older_repository_is_refused_after_a_newer_one_was_seen(city):
    old = city.tmp / "repo-v1"
    shutil.copytree(city.repo_dir, old)
    publish_v(city, 9.0)
    assert update(city.store, city.server.url, city.root, load).version == 2
    assert "rollback" in refused(city, source=str(old))
    assert city.store.installed("active").manifest.version == 2


def test_expired_metadata_is_refused_as_a_freeze(city):
    publish_v(city, 9.0, timestamp_expires=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    msg = refused(city)
    assert "expired" in msg
    # a kiosk whose clock runs ahead sees the same: the message says what its clock reads
    read = re.search(r"clock is wrong: it reads (\d{4}-\d{2}-\d{2} \d{2}:\d{2}) UTC", msg)
    assert read, msg  # within a minute or two of now (a run across midnight UTC must not fail)
    when = dt.datetime.strptime(read.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=dt.timezone.utc)
    assert abs(dt.datetime.now(dt.timezone.utc) - when) < dt.timedelta(minutes=5)


def test_an_unreachable_source_is_E703_and_a_missing_root_E705(city):
    city.server.close()
    refused(city, code="E703")
    with pytest.raises(UpdateError) as e:
        update(city.store, str(city.repo_dir), city.tmp / "no-root.json", load)
    assert e.value.code == "E705"



def test_a_refused_or_failed_download_does_not_stay_on_the_data_partition(city, monkeypatch):
    """A full data partition (E704) or a tampered file: incoming/ is emptied, or the event log beside it starves."""
    def full(manifest, source):
        raise UpdateError(f"cannot install {manifest.label}: No space left on device", code="E704")

    monkeypatch.setattr(city.store, "stage", full)
    refused(city, code="E704")
    assert not list(city.store.incoming.rglob("*"))
    monkeypatch.undo()
    onnx = next((city.repo_dir / "targets" / "kiosk-tiny" / "1").glob("*.onnx"))
    onnx.write_bytes(onnx.read_bytes() + b"x")
    refused(city)
    assert not list(city.store.incoming.rglob("*"))

# ---- the canary ----------------------------------------------------------------------------------
def test_canary_failure_leaves_the_old_model_and_is_not_retried(city):
    update(city.store, city.server.url, city.root, load)
    wrong = [(p, "trash") for p, _ in city.photos]  # this model does not answer these as the update says
    publish_v(city, 9.0, photos=wrong)
    msg = refused(city, code="E702")
    assert "answered wrongly" in msg and "unchanged" in msg
    assert city.store.installed("active").manifest.version == 1
    assert "000002-kiosk-tiny" in city.store.rejected()
    assert not (city.store.versions / "000002-kiosk-tiny").exists()
    assert "refused here before" in refused(city, code="E702")


def test_a_model_that_does_not_load_is_not_installed(city):
    bad = city.models / "bad"
    bad.mkdir()
    model = build_tiny_model(bad / "kiosk-tiny-int8.onnx", sharpness=9.0)
    model.write_bytes(model.read_bytes() + b"\0")  # the card's sha256 no longer matches
    rp.publish(city.repo, model, city.photos)
    assert "does not load" in refused(city, code="E702")


class Timed:
    def __init__(self, seconds, label="glass"):
        self.seconds, self.label = seconds, label

    def classify(self, rgb, timer=None):
        time.sleep(self.seconds)
        from kiosk.datatypes import Prediction

        return Prediction(self.label, 0.9)


def test_canary_refuses_a_model_more_than_twice_as_slow(city):
    photos = [(p, "glass") for p, c in city.photos if c == "glass"]
    slow = run_canary(Timed(0.03), photos, old=Timed(0.01))
    assert not slow.ok and "slower" in slow.reason
    assert run_canary(Timed(0.015), photos, old=Timed(0.01)).ok
    assert not run_canary(Timed(0.001, "metal"), photos).ok


# ---- atomic install, power loss ------------------------------------------------------------------
def test_leftovers_of_an_interrupted_install_never_make_an_unloadable_model(city):
    update(city.store, city.server.url, city.root, load)
    root = city.store.root
    # the states a power cut can leave: a half-copied version, a link being made, a half download
    (root / "versions" / ".000002-kiosk-tiny.partial").mkdir()
    (root / "versions" / ".000002-kiosk-tiny.partial" / "kiosk-tiny-int8.onnx").write_bytes(b"half")
    os.symlink("versions/000002-kiosk-tiny", root / ".active.new")
    (root / "incoming").mkdir(exist_ok=True)
    (root / "incoming" / "kiosk-model.json").write_text("{")
    load(city.store.model_path()).close()
    assert city.store.installed("active").manifest.version == 1
    publish_v(city, 9.0)
    assert update(city.store, city.server.url, city.root, load).version == 2
    assert not (root / "versions" / ".000002-kiosk-tiny.partial").exists()


def test_an_active_link_to_an_incomplete_folder_falls_back(city):
    update(city.store, city.server.url, city.root, load)
    active = city.store.installed("active")
    (active.folder / "manifest.json").unlink()
    assert city.store.model_path() == city.store.factory


KILLER = """
import os, signal, sys, threading, time
sys.path.insert(0, {repo!r})
from kiosk.classifier import OnnxClassifier
from kiosk.updates.install import update
import kiosk.updates.store as store_module
from kiosk.updates.store import ModelStore

# Test-only: SIGKILL this process right before or right after ``active`` is switched. A timed kill
# lands where the CPU lets it; these two land on each side of the switch whatever the load.
KILL_AT = {kill_at!r}
if KILL_AT:
    switch = store_module.switch_symlink

    def switch_and_die(link, target):
        at_active = os.path.basename(link) == "active"
        if at_active and KILL_AT == "before_switch":
            os.kill(os.getpid(), signal.SIGKILL)
        switch(link, target)
        if at_active and KILL_AT == "after_switch":
            os.kill(os.getpid(), signal.SIGKILL)

    store_module.switch_symlink = switch_and_die
store = ModelStore({root!r}, {factory!r})
print("start", flush=True)  # imports done: the install itself starts now
t = time.monotonic()
update(store, {source!r}, {trusted!r}, lambda p: OnnxClassifier(p, threads=1))
print("done", time.monotonic() - t, flush=True)
"""


def test_kill_9_at_any_moment_of_an_install_leaves_a_model_that_loads(city):
    """SIGKILL right before and right after the switch, and at spread-out moments of a real install (a child process)."""
    publish_v(city, 9.0)
    v2 = "versions/000002-kiosk-tiny"

    def script(kill_at=None):
        return KILLER.format(repo=str(REPO), root=str(city.store.root), factory=str(city.store.factory),
                             source=str(city.repo_dir), trusted=str(city.root), kill_at=kill_at)

    def starts_after_a_power_cut():
        rolled = []
        clf = open_running(city.store, load, on_rollback=rolled.append)  # the kiosk starting after the power cut
        clf.close()
        assert rolled == []  # whatever the link names is complete: nothing had to be rolled back

    first = subprocess.run([sys.executable, "-c", script()], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    # how long the install takes here, timed by the child from "start" to "done": interpreter start and
    # imports, which a loaded CPU stretches unevenly, are not part of what the kills below spread over
    whole = float(first.stdout.split("done", 1)[1])
    seen = set()
    shutil.rmtree(city.store.root)
    # the second resumes on what the first left: the staged version, complete, not yet active
    for point, link in (("before_switch", None), ("after_switch", v2)):
        proc = subprocess.run([sys.executable, "-c", script(point)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == -signal.SIGKILL, (point, proc.stdout, proc.stderr[-2000:])  # the hook was reached
        assert city.store.active_link() == link, point
        assert city.store.read_folder(city.store.root / v2) is not None, point  # staged in full before the switch
        seen.add(link)
        starts_after_a_power_cut()
    shutil.rmtree(city.store.root)
    for i in range(8):  # the moments in between, from a fresh store
        proc = subprocess.Popen([sys.executable, "-c", script()], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout.readline().strip() == b"start"
        time.sleep(whole * i / 10)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        seen.add(city.store.active_link())
        starts_after_a_power_cut()
    assert seen == {None, v2}  # killed before the switch, and after it
    update(city.store, city.server.url, city.root, load)  # and the next update finishes the job
    assert city.store.installed("active").manifest.version == 2
    assert not list(city.store.versions.glob(".*.partial"))


# ---- the running kiosk -----------------------------------------------------------------------------
def test_the_watcher_hands_a_switched_model_over_and_rolls_back_a_bad_one(city):
    offered = []
    w = ModelWatcher(city.store, load, offered.append, poll_s=3600)
    try:
        update(city.store, city.server.url, city.root, load)
        w.poll()
        assert [Path(c.path) for c in offered] == [city.store.installed("active").model_path]
        assert w.faults() == []
        # v2 passes the install's canary, then its files go bad on the kiosk before the kiosk loads it
        publish_v(city, 9.0)
        update(city.store, city.server.url, city.root, load)
        v2 = city.store.installed("active")
        v2.model_path.write_bytes(v2.model_path.read_bytes() + b"\0")
        w.poll()
        assert city.store.installed("active").manifest.version == 1  # rolled back by itself
        [fault] = w.faults()
        assert fault.code == "E702" and "does not load" in fault.message and "v1" in fault.message
        assert "000002-kiosk-tiny" in city.store.rejected()
        assert [Path(c.path) for c in offered][-1] == city.store.installed("active").model_path
    finally:
        w.close()


def test_the_running_kiosk_rolls_back_a_model_that_fails_its_canary_after_the_switch(city):
    """The second canary, on the running kiosk: a switched-in model that misclassifies its photos does not stay live."""
    offered = []
    w = ModelWatcher(city.store, load, offered.append, poll_s=3600)
    try:
        update(city.store, city.server.url, city.root, load)
        w.poll()
        publish_v(city, 9.0)
        update(city.store, city.server.url, city.root, load)  # passed the install's canary
        v2 = city.store.installed("active")
        glass, metal = (v2.folder / "canary" / "00-glass.png"), (v2.folder / "canary" / "01-metal.png")
        glass.write_bytes(metal.read_bytes())  # now it answers a "glass" photo with metal
        w.poll()
        assert city.store.installed("active").manifest.version == 1
        [fault] = w.faults()
        assert fault.code == "E702" and "failed its canary" in fault.message and "v1" in fault.message
        assert "000002-kiosk-tiny" in city.store.rejected()
        assert [Path(c.path) for c in offered] == [city.store.installed("active").model_path]  # v2 never handed over
    finally:
        w.close()

def test_open_running_rolls_back_an_active_model_that_does_not_load(city):
    update(city.store, city.server.url, city.root, load)
    active = city.store.installed("active")
    active.model_path.write_bytes(b"not onnx")
    reasons = []
    clf = open_running(city.store, load, on_rollback=reasons.append)
    assert Path(clf.path) == city.store.factory and reasons and "does not load" in reasons[0]
    clf.close()


def test_the_worker_swaps_models_only_between_items(cfg_with):
    from kiosk.classifier import ScriptedClassifier
    from kiosk.decision import State
    from kiosk.devices.synthetic_camera import SyntheticCamera
    from kiosk.worker import Worker

    cfg = cfg_with({"camera.backend": "synthetic"})
    first = ScriptedClassifier(CLASSES, ["glass"])
    second = ScriptedClassifier(CLASSES, ["metal"])
    w = Worker(cfg, lambda: SyntheticCamera(cfg.camera, realtime=False).open(), lambda: first)
    w.step()
    assert w.classifier is first
    w.pipeline.decider.state = State.LOOKING  # mid-item: the new model waits
    w.offer_classifier(second)
    w.step()
    assert w.classifier is first and w.pipeline.classifier is first
    w.pipeline.decider.state = State.IDLE
    w.step()
    assert w.classifier is second and w.pipeline.classifier is second


# ---- the commands ----------------------------------------------------------------------------------
def test_model_commands_end_to_end(tmp_path, config_dict, capsys, trashnet):
    """keys, publish (canary chosen from real photos), update, status, rollback: as a technician types them."""
    import yaml

    from kiosk.cli import main

    shipped = REPO / "models" / "kiosk-lite0-int8.onnx"
    config_dict["model"]["path"] = str(shipped)  # the factory model is the same file: the canary's speed check holds
    config_dict["storage"]["data_dir"] = str(tmp_path / "data")
    config_dict["updates"] = {"trusted_root": str(tmp_path / "repo" / "root.json"), "source": str(tmp_path / "repo")}
    conf = tmp_path / "kiosk.yaml"
    conf.write_text(yaml.safe_dump(config_dict), encoding="utf-8")
    assert main(["model", "keys", "--keys", str(tmp_path / "keys"), "--repo", str(tmp_path / "repo")]) == 0
    assert oct((tmp_path / "keys").stat().st_mode & 0o777) == "0o700"
    assert all(oct(k.stat().st_mode & 0o777) == "0o600" for k in (tmp_path / "keys").iterdir())
    assert main(["model", "publish", "--repo", str(tmp_path / "repo"), "--keys", str(tmp_path / "keys"),
                 "--model", str(shipped), "--canary", str(trashnet / "val")]) == 0
    assert "published kiosk-lite0 v1" in capsys.readouterr().out
    assert main(["model", "update", "--config", str(conf)]) == 0
    assert "kiosk-lite0 v1 is active" in capsys.readouterr().out
    assert main(["model", "status", "--config", str(conf), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["active"]["version"] == 1 and status["previous"] is None
    assert main(["model", "refresh", "--repo", str(tmp_path / "repo"), "--keys", str(tmp_path / "keys")]) == 0
    assert main(["model", "rollback", "--config", str(conf)]) == 0
    assert "factory model" in capsys.readouterr().out
    assert main(["model", "rollback", "--config", str(conf)]) == 1  # nothing left to go back to
    # a wrong key folder and a missing source: a coded message, no traceback
    assert main(["model", "publish", "--repo", str(tmp_path / "repo"), "--keys", str(tmp_path / "nokeys"),
                 "--model", str(shipped), "--canary", str(trashnet / "val")]) == 1
    assert "error [E705]" in capsys.readouterr().err
    assert main(["model", "update", "--config", str(conf), "--from", str(tmp_path / "nowhere")]) == 1
    assert "error [E703]" in capsys.readouterr().err


def test_fleet_status_topic_names_the_model_the_kiosk_switched_to(city, cfg_with):
    """Through the kiosk's own wiring (main.open_model_watcher) and a real Mosquitto."""
    from types import SimpleNamespace

    from kiosk.appliance.eventlog import EventLog
    from kiosk.config import FleetConfig
    from kiosk.fleet.publisher import FleetPublisher
    from kiosk.main import open_model_watcher
    from kiosk.updates.store import model_label
    from tests.broker import Broker, Listener, needs_mosquitto, wait_until

    needs_mosquitto()
    cfg = cfg_with()
    store = ModelStore.for_config(cfg)
    assert store.root == city.store.root
    broker = Broker(city.tmp / "broker").start()
    log = EventLog(city.tmp / "events.db")
    listener = Listener(broker)
    fleet_cfg = FleetConfig(enabled=True, host="127.0.0.1", port=broker.port, tls=None, site_id="k1",
                            topic_prefix="city", keepalive_s=10)
    pub = FleetPublisher(fleet_cfg, log, lambda: SimpleNamespace(faults=(), fill={}, refused=frozenset()),
                         software="t", model=model_label(store.model_path()))
    worker = SimpleNamespace(offered=[], watched=[])
    worker.offer_classifier = worker.offered.append
    worker.watch = lambda kinds, current: worker.watched.append(current)
    watcher = open_model_watcher(cfg, worker, pub)
    try:
        assert wait_until(lambda: listener.on("status") and "@" in listener.on("status")[-1]["model"], 20)
        assert " v" not in listener.on("status")[-1]["model"]  # the factory model
        update(store, city.server.url, city.root, load)
        watcher.poll()
        assert wait_until(lambda: " v1@" in listener.on("status")[-1]["model"], 20), listener.on("status")[-1]
        assert worker.watched and worker.watched[0]() == []
    finally:
        watcher.close()
        pub.close()
        log.close()
        broker.stop()


def test_doctor_names_the_active_update_and_a_refused_one(city, cfg_with):
    from kiosk.appliance.doctor import check_model, check_model_updates

    cfg = cfg_with({"updates.trusted_root": str(city.root), "updates.source": city.server.url})
    store = ModelStore.for_config(cfg)
    ok, detail = check_model_updates(cfg)
    assert ok and "factory model active" in detail and "trusted root v1" in detail
    update(store, city.server.url, city.root, load)
    ok, detail = check_model_updates(cfg)
    assert ok and "kiosk-tiny v1 active" in detail
    _, detail, clf = check_model(cfg)  # doctor loads the model the kiosk runs: the update's
    assert str(store.installed("active").model_path) in detail
    clf.close()
    publish_v(city, 9.0, photos=[(p, "trash") for p, _ in city.photos])
    with pytest.raises(UpdateError):
        update(store, city.server.url, city.root, load)
    ok, detail = check_model_updates(cfg)
    assert ok is False and "refused: 000002-kiosk-tiny" in detail
    publish_v(city, 7.0)  # a good v3 installed: the refused v2 is history, not a failing row for ever
    update(store, city.server.url, city.root, load)
    ok, detail = check_model_updates(cfg)
    assert ok is True and "kiosk-tiny v3 active" in detail and "refused: 000002-kiosk-tiny" in detail
    (city.tmp / "bad-root.json").write_text('{"signed": {"_type": "targets"}}')
    ok, detail = check_model_updates(cfg_with({"updates.trusted_root": str(city.tmp / "bad-root.json")}))
    assert ok is False and "not a TUF root.json" in detail


def test_daily_check_runs_once_a_day_at_its_hour_and_shows_a_refusal(city):
    calls = []
    clock = {"now": dt.datetime(2026, 12, 4, 2, 59)}

    def daily():
        calls.append(clock["now"])
        raise UpdateError("update refused: its signed metadata has expired", code="E701")

    w = ModelWatcher(city.store, load, lambda clf: None, poll_s=3600, daily=daily, check_hour=3,
                     now=lambda: clock["now"])
    try:
        w.poll()
        assert calls == []
        clock["now"] = dt.datetime(2026, 12, 4, 3, 0)
        w.poll()
        clock["now"] = dt.datetime(2026, 12, 4, 3, 30)
        w.poll()
        assert len(calls) == 1
        [fault] = w.faults()
        assert fault.code == "E701" and fault.blocking is False  # a warning: the kiosk sorts on
        clock["now"] = dt.datetime(2026, 12, 5, 3, 1)
        w.poll()
        assert len(calls) == 2
    finally:
        w.close()


# ---- the review's findings: root and the kiosk user, races, repair ---------------------------------
KIOSK_UID = 12345  # an unprivileged "kiosk user" with no account: only its numbers matter


def as_uid(uid, fn):
    """Run ``fn()`` in a child process as ``uid``; its return value must be an int (the exit code)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            code = int(fn())
        except BaseException as e:  # noqa: BLE001
            print(f"child failed: {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root)")


@pytest.fixture
def shared_tmp():
    """A folder other users can traverse (pytest's own tmp folders are root-only)."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="kiosk-upd-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@needs_root
def test_sudo_update_works_as_the_kiosk_user_and_a_planted_link_gets_nothing(shared_tmp, config_dict):
    """Root's update runs as the data partition's owner: a symlink that user planted cannot aim root's writes."""
    import yaml

    from kiosk.cli import main as cli_main

    keys, repo_dir = shared_tmp / "keys", shared_tmp / "repo"
    root = rp.make_keys(keys, repo_dir, ONE, ONE)
    model = build_tiny_model(shared_tmp / "kiosk-tiny-int8.onnx")
    rp.publish(rp.Repository(repo_dir, rp.Keyring.load([keys])), model, canary_photos(shared_tmp / "photos"))
    for p in [repo_dir, *repo_dir.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    data = shared_tmp / "data"
    data.mkdir()
    os.chown(data, KIOSK_UID, KIOSK_UID)
    victim = shared_tmp / "victim"
    victim.write_text("root's secret\n")
    os.chmod(victim, 0o600)
    versions = data / "models" / "versions"

    def plant() -> int:  # the kiosk user prepares a trap where root's install would write
        (versions / ".000001-kiosk-tiny.partial").mkdir(parents=True)
        os.symlink(victim, versions / ".000001-kiosk-tiny.partial" / "kiosk-tiny-int8.onnx")
        return 0

    assert as_uid(KIOSK_UID, plant) == 0
    config_dict["model"]["path"] = str(model)
    config_dict["storage"]["data_dir"] = str(data)
    config_dict["updates"] = {"trusted_root": str(root), "source": str(repo_dir)}
    conf = shared_tmp / "kiosk.yaml"
    conf.write_text(yaml.safe_dump(config_dict), encoding="utf-8")
    os.chmod(conf, 0o644)
    assert cli_main(["model", "update", "--config", str(conf)]) == 0
    assert victim.read_text() == "root's secret\n" and oct(victim.stat().st_mode & 0o777) == "0o600"
    store = ModelStore(data / "models", model)
    assert store.installed("active").manifest.version == 1
    owners = {(p.lstat().st_uid, str(p.relative_to(data))) for p in (data / "models").rglob("*")}
    assert {uid for uid, _ in owners} == {KIOSK_UID}, sorted(o for o in owners if o[0] != KIOSK_UID)[:5]

    def kiosk_rolls_back() -> int:  # and the kiosk itself can still change it: lock, rollback
        with store.locked():
            store.rollback("kiosk's own rollback")
        return 0 if store.installed("active") is None else 1

    assert as_uid(KIOSK_UID, kiosk_rolls_back) == 0


def test_a_rollback_for_a_model_that_is_no_longer_active_does_nothing(city):
    update(city.store, city.server.url, city.root, load)
    seen = city.store.active_link()  # the watcher found this one bad ...
    publish_v(city, 9.0)
    update(city.store, city.server.url, city.root, load)  # ... while a technician installed v2
    with city.store.locked():
        city.store.rollback("v1 did not load", expected=seen)
    assert city.store.installed("active").manifest.version == 2 and city.store.rejected() == {}


def test_a_switch_that_breaks_is_a_fault_and_the_classifier_is_closed(city, monkeypatch):
    import kiosk.updates.watcher as watcher_mod

    closed = []

    class Loaded:
        path = "x"

        def close(self):
            closed.append(True)

    monkeypatch.setattr(watcher_mod, "run_canary", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("onnx boom")))
    w = ModelWatcher(city.store, lambda p: Loaded(), lambda c: None, poll_s=3600)
    try:
        update(city.store, city.server.url, city.root, load)
        w.poll()
        [fault] = w.faults()
        assert fault.code == "E702" and "onnx boom" in fault.message and closed == [True]
    finally:
        w.close()


def test_a_renewed_root_reaches_the_kiosk(city):
    assert city.repo.renew_root(400) == 2
    publish_v(city, 9.0)
    assert update(city.store, city.server.url, city.root, load).version == 2
    trusted = json.loads((city.store.tuf_dir / "root.json").read_text())
    assert trusted["signed"]["version"] == 2


def test_a_target_file_cut_short_by_a_killed_publish_is_written_again(city):
    onnx = next((city.repo_dir / "targets" / "kiosk-tiny" / "1").glob("*.onnx"))
    onnx.write_bytes(onnx.read_bytes()[:100])  # the copy a kill left
    model = city.models / "kiosk-tiny-int8.onnx"
    targets = city.repo.load("targets")
    city.repo.add_target(targets, "kiosk-tiny/1/kiosk-tiny-int8.onnx", model)
    assert onnx.read_bytes() == model.read_bytes()


def test_prune_keeps_an_active_model_named_by_an_absolute_link(city):
    update(city.store, city.server.url, city.root, load)
    folder = city.store.installed("active").folder
    os.remove(city.store.root / "active")
    os.symlink(folder.resolve(), city.store.root / "active")
    city.store.prune()
    assert folder.is_dir() and city.store.installed("active") is not None


def test_file_system_refusals_are_coded_lines(capsys):
    import errno as e

    from kiosk.updates.cli import os_error

    assert os_error(PermissionError(e.EACCES, "Permission denied", "/var/lib/kiosk/models/.lock")).code == "E705"
    assert "sudo" in str(os_error(PermissionError(e.EACCES, "Permission denied", "x")))
    assert os_error(OSError(e.ENOSPC, "No space left on device", "x")).code == "E704"
