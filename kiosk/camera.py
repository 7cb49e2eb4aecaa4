"""Frame sources: Pi camera, USB webcam, replayed files, synthetic scenes.

Every backend hands out :class:`~kiosk.datatypes.Frame` objects whose
``image`` is **RGB** uint8. The colour order is settled here, once:
OpenCV and picamera2's ``RGB888`` deliver BGR byte order and are swapped in
this module only (pinned by a known-colour test).

``read()`` always returns the newest frame, never a queued stale one: live
backends grab on their own thread and keep only the latest; replay and
synthetic sources in real-time mode skip to the frame that is due now.
A camera that stops delivering raises :class:`~kiosk.errors.CameraError`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from kiosk.config import CameraBackend, CameraConfig
from kiosk.datatypes import Frame
from kiosk.errors import CameraError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".h264", ".mjpeg", ".webm"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class EndOfStream(CameraError):
    """A replay without looping reached its last frame."""


class FrameSource:
    """Context-managed frame source. ``close()`` may be called any number of times."""

    name = "source"

    def __init__(self):
        self._closed = False
        self._opened = False

    def open(self) -> "FrameSource":
        if not self._opened:
            self._open()
            self._opened = True
        return self

    def read(self, timeout: float = 2.0) -> Frame:
        if self._closed:
            raise CameraError(f"{self.name} camera is closed")
        if not self._opened:
            self.open()
        return self._read(timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._opened:
            try:
                self._close()
            except Exception as e:  # closing must never raise out of a shutdown path
                log.warning("closing %s camera: %s", self.name, e)

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    # backends implement these
    def _open(self) -> None:
        pass

    def _read(self, timeout: float) -> Frame:
        raise NotImplementedError

    def _close(self) -> None:
        pass


class ThreadedSource(FrameSource):
    """A live camera grabbed on its own thread; ``read`` returns only new frames."""

    def __init__(self):
        super().__init__()
        self._cond = threading.Condition()
        self._latest: Optional[Frame] = None
        self._error: Optional[BaseException] = None
        self._last_seq = -1
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._seq = 0

    def _open(self) -> None:
        self._open_device()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                image, preview = self._grab()
                frame = Frame(image=image, t=time.monotonic(), seq=self._seq, preview=preview)
                self._seq += 1
                with self._cond:
                    self._latest = frame
                    self._cond.notify_all()
        except BaseException as e:  # handed to the reader, which raises CameraError
            with self._cond:
                self._error = e
                self._cond.notify_all()

    def _read(self, timeout: float) -> Frame:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._latest is not None and self._latest.seq > self._last_seq:
                    self._last_seq = self._latest.seq
                    return self._latest
                if self._error is not None:
                    e = self._error
                    raise e if isinstance(e, CameraError) else CameraError(f"{self.name} camera failed: {e}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CameraError(f"{self.name} camera delivered no frame for {timeout:.1f} s")
                self._cond.wait(left)

    def _close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._close_device()

    def _open_device(self) -> None:
        raise NotImplementedError

    def _grab(self) -> tuple[np.ndarray, Optional[np.ndarray]]:
        raise NotImplementedError

    def _close_device(self) -> None:
        pass


class OpenCVCamera(ThreadedSource):
    """USB webcam through V4L2 (an index such as 0, or a path such as /dev/video0)."""

    name = "opencv"
    max_failures = 10

    def __init__(self, cfg: CameraConfig):
        super().__init__()
        self.cfg = cfg
        self.cap = None

    def _open_device(self) -> None:
        dev = self.cfg.device
        if isinstance(dev, str) and dev.isdigit():
            dev = int(dev)
        api = cv2.CAP_V4L2 if hasattr(cv2, "CAP_V4L2") else cv2.CAP_ANY
        cap = cv2.VideoCapture(dev, api)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"cannot open webcam {dev!r} (camera.device)")
        w, h = self.cfg.size
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
        cap.set(cv2.CAP_PROP_FPS, self.cfg.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise CameraError(f"webcam {dev!r} opened but gives no frames")
        self.cap = cap

    def _grab(self):
        failures = 0
        while True:
            ok, bgr = self.cap.read()
            if ok and bgr is not None:
                if bgr.shape[1] != self.cfg.size[0] or bgr.shape[0] != self.cfg.size[1]:
                    bgr = cv2.resize(bgr, tuple(self.cfg.size), interpolation=cv2.INTER_AREA)
                return bgr_to_rgb(bgr), None
            failures += 1
            if failures >= self.max_failures or self._stop.is_set():
                raise CameraError(f"webcam {self.cfg.device!r} stopped delivering frames (unplugged?)")
            time.sleep(0.05)

    def _close_device(self) -> None:
        if self.cap is not None:
            self.cap.release()


class Picamera2Camera(ThreadedSource):
    """Raspberry Pi camera: one continuous video configuration, two streams.

    ``lores`` (camera.size, YUV420) feeds the gate and the model; ``main``
    (camera.preview_size, RGB888) is only for the screen. Without a preview
    size, ``main`` at camera.size serves both.
    """

    name = "picamera2"

    def __init__(self, cfg: CameraConfig, module=None):
        super().__init__()
        self.cfg = cfg
        self._module = module
        self.cam = None

    def _open_device(self) -> None:
        try:
            mod = self._module
            if mod is None:
                import picamera2 as mod  # lazily: exists only on a Raspberry Pi
        except ImportError as e:
            raise CameraError(f"picamera2 is not installed ({e}); on Raspberry Pi OS: apt install python3-picamera2") from None
        try:
            cam = mod.Picamera2()
            w, h = self.cfg.size
            if self.cfg.preview_size:
                config = cam.create_video_configuration(
                    main={"size": tuple(self.cfg.preview_size), "format": "RGB888"},
                    lores={"size": (w, h), "format": "YUV420"},
                    controls={"FrameRate": self.cfg.fps},
                    buffer_count=4,
                )
            else:
                config = cam.create_video_configuration(
                    main={"size": (w, h), "format": "RGB888"}, controls={"FrameRate": self.cfg.fps}, buffer_count=4
                )
            cam.configure(config)
            cam.start()
        except Exception as e:
            raise CameraError(f"Pi camera failed to start: {e}") from None
        self.cam = cam

    def _grab(self):
        # capture_request waits for the next completed frame: never a stale one.
        request = self.cam.capture_request()
        try:
            main = bgr_to_rgb(request.make_array("main"))  # RGB888 is B,G,R in memory
            if self.cfg.preview_size:
                yuv = request.make_array("lores")
                return cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420), main
            return main, None
        finally:
            request.release()

    def _close_device(self) -> None:
        if self.cam is not None:
            try:
                self.cam.stop()
            finally:
                self.cam.close()


class PacedSource(FrameSource):
    """A source that makes frames on demand; in real time it skips to the frame due now."""

    def __init__(self, fps: float, realtime: bool, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.fps = fps
        self.realtime = realtime
        self.clock = clock
        self._start: Optional[float] = None
        self._next = 0

    def _due_index(self) -> int:
        if not self.realtime:
            return self._next
        now = self.clock()
        if self._start is None:
            self._start = now
        due = int((now - self._start) * self.fps)
        if due < self._next:  # not yet time for a new frame: wait for it
            time.sleep(max(0.0, self._start + self._next / self.fps - now))
            due = self._next
        return due

    def _read(self, timeout: float) -> Frame:
        i = self._due_index()
        self._next = i + 1
        image = self._make(i)
        t = self.clock() if self.realtime else i / self.fps
        return Frame(image=image, t=t, seq=i)

    def _make(self, index: int) -> np.ndarray:
        raise NotImplementedError


class ReplayCamera(PacedSource):
    """A folder of images (sorted by name) or a video file, optionally looped."""

    name = "replay"

    def __init__(self, cfg: CameraConfig, realtime: bool = True):
        super().__init__(cfg.fps, realtime)
        self.cfg = cfg
        self.path = Path(cfg.path or "")
        self.files: list[Path] = []
        self.cap = None
        self._video_pos = 0

    def _open(self) -> None:
        p = self.path
        if not p.exists():
            raise CameraError(f"replay source not found: {p} (camera.path)")
        if p.is_dir():
            self.files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not self.files:
                raise CameraError(f"replay folder has no images: {p}")
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            self.cap = cv2.VideoCapture(str(p))
            if not self.cap.isOpened():
                raise CameraError(f"cannot open replay video: {p}")
        else:
            raise CameraError(f"replay source is neither a folder nor a video file: {p}")

    def _make(self, index: int) -> np.ndarray:
        if self.files:
            n = len(self.files)
            if index >= n and not self.cfg.loop:
                raise EndOfStream(f"replay reached the end of {self.path}")
            f = self.files[index % n]
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                raise CameraError(f"replay image cannot be decoded: {f}")
        else:
            bgr = self._video_frame(index)
        return self._fit(bgr_to_rgb(bgr))

    def _video_frame(self, index: int) -> np.ndarray:
        while True:
            while self._video_pos < index:  # skip frames that are already late
                if not self.cap.grab():
                    break
                self._video_pos += 1
            ok, bgr = self.cap.read()
            if ok:
                self._video_pos += 1
                return bgr
            if not self.cfg.loop or self._video_pos == 0:
                raise EndOfStream(f"replay reached the end of {self.path}")
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            index -= self._video_pos
            self._video_pos = 0

    def _fit(self, rgb: np.ndarray) -> np.ndarray:
        w, h = self.cfg.size
        if rgb.shape[:2] == (h, w):
            return rgb
        return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)

    def _close(self) -> None:
        if self.cap is not None:
            self.cap.release()


class SyntheticScene:
    """A generated kiosk view: a fixed wall, slow light drift, items and shadows.

    The timeline repeats every ``period`` seconds: empty, an item slides in,
    is held still, slides out; a soft shadow passes in the empty part. Item
    pictures can come from a folder (``items``), otherwise coloured shapes are
    drawn. Everything is a pure function of time, so tests are repeatable.
    """

    def __init__(self, size=(640, 480), seed=0, items: Optional[list[np.ndarray]] = None,
                 drift=0.12, drift_period=20.0, empty_s=2.5, enter_s=0.4, hold_s=2.5, leave_s=0.4,
                 shadow=True, noise=2.0):
        self.w, self.h = size
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.items = items or []
        self.drift, self.drift_period, self.noise = drift, drift_period, noise
        self.empty_s, self.enter_s, self.hold_s, self.leave_s = empty_s, enter_s, hold_s, leave_s
        self.period = empty_s + enter_s + hold_s + leave_s
        self.shadow = shadow
        self.background = self._make_background()
        self._shapes = self._make_shapes()

    def _make_background(self) -> np.ndarray:
        w, h = self.w, self.h
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = 150 + 40 * (xx / w) - 25 * (yy / h)
        tex = cv2.GaussianBlur(self.rng.normal(0, 12, (h, w)).astype(np.float32), (0, 0), 3)
        bg = np.stack([base + tex, base + tex + 5, base + tex - 10], axis=2)
        return np.clip(bg, 0, 255).astype(np.uint8)

    def _make_shapes(self) -> list[np.ndarray]:
        """RGBA item sprites: a bottle, a box and a can in strong colours."""
        s = int(min(self.w, self.h) * 0.55)
        sprites = []
        for kind, colour in (("bottle", (40, 160, 70)), ("box", (170, 120, 60)), ("can", (200, 30, 40))):
            img = np.zeros((s, s, 4), np.uint8)
            c = (*colour, 255)
            if kind == "bottle":
                cv2.ellipse(img, (s // 2, int(s * 0.62)), (int(s * 0.2), int(s * 0.33)), 0, 0, 360, c, -1)
                cv2.rectangle(img, (int(s * 0.44), int(s * 0.08)), (int(s * 0.56), int(s * 0.32)), c, -1)
            elif kind == "box":
                cv2.rectangle(img, (int(s * 0.15), int(s * 0.2)), (int(s * 0.85), int(s * 0.8)), c, -1)
                cv2.line(img, (int(s * 0.15), int(s * 0.5)), (int(s * 0.85), int(s * 0.5)), (120, 80, 40, 255), 4)
            else:
                cv2.rectangle(img, (int(s * 0.3), int(s * 0.15)), (int(s * 0.7), int(s * 0.85)), c, -1)
                cv2.rectangle(img, (int(s * 0.3), int(s * 0.3)), (int(s * 0.7), int(s * 0.4)), (230, 230, 230, 255), -1)
            sprites.append(img)
        return sprites

    def item_index(self, t: float) -> int:
        return int(t // self.period)

    def phase(self, t: float) -> tuple[str, float]:
        """('empty'|'enter'|'hold'|'leave', fraction through it) at time t."""
        x = t % self.period
        for name, dur in (("empty", self.empty_s), ("enter", self.enter_s), ("hold", self.hold_s), ("leave", self.leave_s)):
            if x < dur:
                return name, x / dur
            x -= dur
        return "leave", 1.0

    def item_present(self, t: float) -> bool:
        """Ground truth for tests: is the item (mostly) in view?"""
        name, f = self.phase(t)
        return name == "hold" or (name == "enter" and f > 0.5) or (name == "leave" and f < 0.5)

    def _sprite(self, index: int) -> np.ndarray:
        if self.items:
            rgb = self.items[index % len(self.items)]
            s = int(min(self.w, self.h) * 0.6)
            rgb = cv2.resize(rgb, (s, int(s * rgb.shape[0] / rgb.shape[1])), interpolation=cv2.INTER_AREA)
            alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
            return np.concatenate([rgb, alpha], axis=2)
        return self._shapes[index % len(self._shapes)]

    def render(self, t: float) -> np.ndarray:
        gain = 1.0 + self.drift * math.sin(2 * math.pi * t / self.drift_period)
        img = self.background.astype(np.float32) * gain
        name, f = self.phase(t)
        if name == "empty" and self.shadow and 0.3 < f < 0.9:
            img *= self._shadow_mask((f - 0.3) / 0.6)[:, :, None]
        if name != "empty":
            sprite = self._sprite(self.item_index(t))
            sh, sw = sprite.shape[:2]
            cx = {"enter": -sw / 2 + f * (self.w / 2 + sw / 2), "hold": self.w / 2,
                  "leave": self.w / 2 + f * (self.w / 2 + sw / 2)}[name]
            cx += 4 * math.sin(t * 5) if name == "hold" else 0  # a hand is never quite still
            x0, y0 = int(cx - sw / 2), int(self.h / 2 - sh / 2)
            self._paste(img, sprite, x0, y0, gain)
        if self.noise:
            rng = np.random.default_rng((self.seed, int(t * 1000)))
            img += rng.normal(0, self.noise, img.shape).astype(np.float32)
        return np.clip(img, 0, 255).astype(np.uint8)

    def _shadow_mask(self, f: float) -> np.ndarray:
        """A soft dark band sweeping across (someone walking past a lamp)."""
        xx = np.arange(self.w, dtype=np.float32)
        cx = -0.3 * self.w + f * 1.6 * self.w
        band = np.exp(-((xx - cx) ** 2) / (2 * (0.12 * self.w) ** 2))
        return np.tile(1.0 - 0.35 * band, (self.h, 1))

    def _paste(self, img, sprite, x0, y0, gain) -> None:
        h, w = img.shape[:2]
        sh, sw = sprite.shape[:2]
        xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + sw), min(h, y0 + sh)
        if xa >= xb or ya >= yb:
            return
        s = sprite[ya - y0 : yb - y0, xa - x0 : xb - x0]
        a = s[:, :, 3:4].astype(np.float32) / 255.0
        img[ya:yb, xa:xb] = img[ya:yb, xa:xb] * (1 - a) + s[:, :, :3].astype(np.float32) * gain * a


class SyntheticCamera(PacedSource):
    """Generated frames of :class:`SyntheticScene`; needs no files or hardware.

    ``realtime=False`` makes frames as fast as they are asked for, with
    timestamps on a virtual clock (``seq / fps``): tests and benchmarks.
    ``fail_after`` raises CameraError after that many frames (fault injection).
    """

    name = "synthetic"

    def __init__(self, cfg: CameraConfig, realtime: bool = True, scene: Optional[SyntheticScene] = None,
                 fail_after: Optional[int] = None):
        super().__init__(cfg.fps, realtime)
        self.cfg = cfg
        self.scene = scene
        self.fail_after = fail_after

    def _open(self) -> None:
        if self.scene is None:
            items = _load_item_folder(Path(self.cfg.path)) if self.cfg.path else None
            self.scene = SyntheticScene(tuple(self.cfg.size), seed=self.cfg.seed, items=items)

    def _make(self, index: int) -> np.ndarray:
        if self.fail_after is not None and index >= self.fail_after:
            raise CameraError("synthetic camera: injected failure")
        return self.scene.render(index / self.fps)


def _load_item_folder(folder: Path, limit: int = 50) -> list[np.ndarray]:
    """Item photos for the synthetic scene (e.g. a data set's val/<class>/ files)."""
    files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise CameraError(f"synthetic: camera.path has no item images: {folder}")
    return [bgr_to_rgb(cv2.imread(str(f), cv2.IMREAD_COLOR)) for f in files]


def open_camera(cfg: CameraConfig, realtime: bool = True, allow_synthetic: bool = False) -> FrameSource:
    """The configured backend, opened. ``auto``: picamera2, then opencv.

    Only the desktop demo (``allow_synthetic``) falls back to generated
    frames: a real kiosk whose camera is missing must be out of service,
    never driving flaps on pictures it made up.
    """
    backend = cfg.backend
    if backend == CameraBackend.auto:
        tried = []
        for candidate in (Picamera2Camera, OpenCVCamera):
            src = candidate(cfg)
            try:
                src.open()
                log.info("camera: auto chose %s", src.name)
                return src
            except CameraError as e:
                log.info("camera: %s not available (%s)", src.name, e)
                tried.append(f"{src.name}: {e}")
                src.close()
        if not allow_synthetic:
            raise CameraError("no camera found (" + "; ".join(tried) + ")")
        log.warning("camera: no Pi camera or webcam found, using the synthetic camera (demo)")
        return SyntheticCamera(cfg, realtime=realtime).open()
    src = {
        CameraBackend.picamera2: lambda: Picamera2Camera(cfg),
        CameraBackend.opencv: lambda: OpenCVCamera(cfg),
        CameraBackend.replay: lambda: ReplayCamera(cfg, realtime=realtime),
        CameraBackend.synthetic: lambda: SyntheticCamera(cfg, realtime=realtime),
    }[backend]()
    try:
        return src.open()
    except CameraError:
        src.close()
        raise
