import logging
import sys
import time
import types

import cv2
import numpy as np
import pytest

from kiosk.camera import EndOfStream, OpenCVCamera, Picamera2Camera, ThreadedSource, open_camera
from kiosk.devices.replay_camera import ReplayCamera
from kiosk.devices.synthetic_camera import SyntheticCamera, SyntheticScene
from kiosk.config import CameraConfig
from kiosk.errors import CameraError

RED_BGR = (0, 0, 255)  # OpenCV writes BGR: this is pure red


def solid_bgr(colour, w=160, h=120):
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = colour
    return img


def test_known_colour_replay_folder_is_rgb(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), solid_bgr(RED_BGR))
    cv2.imwrite(str(tmp_path / "b.png"), solid_bgr((255, 0, 0)))  # pure blue
    with ReplayCamera(CameraConfig(backend="replay", path=str(tmp_path), size=(160, 120), loop=False), realtime=False) as cam:
        red, blue = cam.read().image, cam.read().image
        with pytest.raises(EndOfStream):
            cam.read()
    assert red.dtype == np.uint8 and red.shape == (120, 160, 3)
    assert tuple(red[10, 10]) == (255, 0, 0)
    assert tuple(blue[10, 10]) == (0, 0, 255)


def test_known_colour_replay_video_is_rgb_and_loops(tmp_path):
    path = tmp_path / "v.avi"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(3):
        out.write(solid_bgr(RED_BGR))
    out.release()
    cfg = CameraConfig(backend="replay", path=str(path), size=(160, 120), loop=True)
    with ReplayCamera(cfg, realtime=False) as cam:
        frames = [cam.read() for _ in range(7)]  # past the end: loops
    r, g, b = frames[-1].image[20, 30].astype(int)
    assert r > 200 and g < 60 and b < 60
    assert [f.seq for f in frames] == list(range(7))


def test_replay_errors_are_clear(tmp_path):
    with pytest.raises(CameraError, match="not found"):
        ReplayCamera(CameraConfig(backend="replay", path=str(tmp_path / "nope"))).open()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CameraError, match="no images"):
        ReplayCamera(CameraConfig(backend="replay", path=str(tmp_path / "empty"))).open()
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(CameraError, match="neither"):
        ReplayCamera(CameraConfig(backend="replay", path=str(tmp_path / "x.txt"))).open()


def test_synthetic_frames_are_deterministic_rgb_with_timestamps():
    cfg = CameraConfig(backend="synthetic", size=(320, 240), fps=30)
    with SyntheticCamera(cfg, realtime=False) as a, SyntheticCamera(cfg, realtime=False) as b:
        fa = [a.read() for _ in range(5)]
        fb = [b.read() for _ in range(5)]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(fa, fb))
    assert [f.seq for f in fa] == [0, 1, 2, 3, 4]
    assert all(f2.t > f1.t for f1, f2 in zip(fa, fa[1:]))
    assert fa[0].image.shape == (240, 320, 3) and fa[0].image.dtype == np.uint8


def test_synthetic_item_is_drawn_in_rgb():
    scene = SyntheticScene((320, 240), noise=0, drift=0)
    t_hold = scene.empty_s + scene.enter_s + 1.0  # item 0 (green bottle) held
    img = scene.render(t_hold)
    r, g, b = img[150, 160].astype(int)
    assert g > r + 60 and g > b + 60  # green in RGB order


def test_realtime_source_skips_to_the_newest_frame():
    cfg = CameraConfig(backend="synthetic", size=(160, 120), fps=50)
    with SyntheticCamera(cfg, realtime=True) as cam:
        first = cam.read()
        time.sleep(0.2)  # 10 frames are due meanwhile
        later = cam.read()
    assert later.seq - first.seq >= 8


class CountingSource(ThreadedSource):
    """A fast fake device: frames numbered by the grab thread."""

    name = "counting"

    def __init__(self, fail_at=None):
        super().__init__()
        self.n, self.fail_at = 0, fail_at

    def _open_device(self):
        pass

    def _grab(self):
        time.sleep(0.002)
        self.n += 1
        if self.fail_at is not None and self.n >= self.fail_at:
            raise OSError("unplugged")
        return np.full((8, 8, 3), self.n % 256, np.uint8), None


def test_threaded_source_never_hands_out_a_stale_frame():
    with CountingSource() as cam:
        a = cam.read()
        time.sleep(0.1)
        b = cam.read()
        c = cam.read()
    assert b.seq > a.seq + 5  # jumped to the newest, not the next queued
    assert c.seq > b.seq  # and never the same frame twice


def test_threaded_source_failure_becomes_camera_error():
    cam = CountingSource(fail_at=3).open()
    with pytest.raises(CameraError, match="unplugged"):
        for _ in range(100):
            cam.read(timeout=1.0)
    cam.close()
    cam.close()  # idempotent


def test_read_after_close_is_an_error():
    cam = SyntheticCamera(CameraConfig(backend="synthetic"), realtime=False).open()
    cam.close()
    with pytest.raises(CameraError, match="closed"):
        cam.read()


def test_injected_failure():
    cam = SyntheticCamera(CameraConfig(backend="synthetic", size=(160, 120)), realtime=False, fail_after=2).open()
    cam.read(), cam.read()
    with pytest.raises(CameraError):
        cam.read()


class FakeRequest:
    def __init__(self, bgr, yuv):
        self.bgr, self.yuv, self.released = bgr, yuv, False

    def make_array(self, name):
        return self.bgr if name == "main" else self.yuv

    def release(self):
        self.released = True


def fake_picamera2_module(log):
    class Picamera2:
        def __init__(self):
            log.append("init")

        def create_video_configuration(self, **kw):
            log.append(("config", kw))
            return kw

        def configure(self, config):
            log.append("configure")

        def start(self):
            log.append("start")

        def capture_request(self):
            time.sleep(0.005)
            w, h = 320, 240
            yuv = cv2.cvtColor(np.full((h, w, 3), (255, 0, 0), np.uint8), cv2.COLOR_RGB2YUV_I420)
            req = FakeRequest(solid_bgr(RED_BGR, 640, 480), yuv)
            log.append(req)
            return req

        def stop(self):
            log.append("stop")

        def close(self):
            log.append("close")

    return types.SimpleNamespace(Picamera2=Picamera2)


def test_picamera2_two_streams_rgb_and_release():
    log = []
    cfg = CameraConfig(backend="picamera2", size=(320, 240), preview_size=(640, 480))
    with Picamera2Camera(cfg, module=fake_picamera2_module(log)) as cam:
        f = cam.read()
    config = [x for x in log if isinstance(x, tuple)][0][1]
    assert config["lores"] == {"size": (320, 240), "format": "YUV420"}
    assert config["main"]["size"] == (640, 480)
    assert f.image.shape == (240, 320, 3) and f.preview.shape == (480, 640, 3)
    assert tuple(f.preview[5, 5]) == (255, 0, 0)  # BGR "RGB888" turned into RGB
    r, g, b = f.image[5, 5].astype(int)
    assert r > 200 and g < 40 and b < 40
    assert all(req.released for req in log if isinstance(req, FakeRequest))
    assert log[-2:] == ["stop", "close"]


def test_picamera2_missing_is_a_camera_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(CameraError, match="picamera2 is not installed"):
        Picamera2Camera(CameraConfig(backend="picamera2")).open()


def test_opencv_missing_device_is_a_camera_error():
    with pytest.raises(CameraError, match="cannot open webcam"):
        OpenCVCamera(CameraConfig(backend="opencv", device="/dev/video-does-not-exist")).open()


def test_auto_falls_back_to_synthetic_only_for_the_demo(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    monkeypatch.setattr(OpenCVCamera, "_open_device", lambda self: (_ for _ in ()).throw(CameraError("no webcam")))
    with pytest.raises(CameraError, match="no camera found"):  # a real kiosk never invents frames
        open_camera(CameraConfig(backend="auto", size=(160, 120)), realtime=False)
    with caplog.at_level(logging.INFO, logger="kiosk.camera"):
        cam = open_camera(CameraConfig(backend="auto", size=(160, 120)), realtime=False, allow_synthetic=True)
    try:
        assert isinstance(cam, SyntheticCamera)
        assert "synthetic" in caplog.text and "picamera2 not available" in caplog.text
        assert cam.read().image.shape == (120, 160, 3)
    finally:
        cam.close()


def test_synthetic_photos_are_held_up_by_a_hand_and_the_classes_take_turns(tmp_path):
    from kiosk.devices.synthetic_camera import _load_item_folder

    colours = {"glass": (40, 160, 70), "metal": (200, 40, 50)}
    for name, rgb in colours.items():
        (tmp_path / name).mkdir()
        for i in range(3):
            img = np.full((80, 60, 3), 235, np.uint8)  # a pale board ...
            img[20:60, 15:45] = rgb  # ... with the item on it
            cv2.imwrite(str(tmp_path / name / f"{i}.png"), img[..., ::-1])
    items = _load_item_folder(tmp_path)
    firsts = [tuple(int(v) for v in it[40, 30]) for it in items[:4]]
    assert firsts == [colours["glass"], colours["metal"]] * 2  # not three of one class first
    scene = SyntheticScene((320, 240), seed=0, items=items, noise=0, drift=0)
    held = scene.render(scene.empty_s + scene.enter_s + 0.1).astype(int)
    empty = scene.render(0.1).astype(int)
    assert np.abs(held[-3:] - empty[-3:]).max() > 30  # the arm runs out at the bottom of the view
    centre = held[100:140, 150:170].reshape(-1, 3).mean(0)
    assert np.abs(centre - colours["glass"]).max() < 30  # the first item, cut from its board, in the middle


def test_the_demo_holds_up_real_photos_when_they_are_beside_the_checkout(repo):
    from kiosk.cli import DEMO_PHOTOS, demo_config

    cfg = demo_config(str(repo / "config.yaml"))
    if not DEMO_PHOTOS.is_dir():
        assert cfg.camera.path is None  # the drawn shapes, as before
        pytest.skip("../shared/data/trashnet/val is not present")
    assert cfg.camera.path == str(DEMO_PHOTOS)
