"""Frame sources: Pi camera, USB webcam here; replayed files and synthetic scenes as the
backends ``kiosk.devices.replay_camera`` and ``kiosk.devices.synthetic_camera``.

Every backend hands out :class:`~kiosk.datatypes.Frame` objects whose
``image`` is **RGB** uint8. The colour order is settled here, once:
OpenCV and picamera2's ``RGB888`` deliver BGR byte order and are swapped by
:func:`bgr_to_rgb`, the one place (pinned by a known-colour test).

``read()`` always returns the newest frame, never a queued stale one: live
backends grab on their own thread and keep only the latest; replay and
synthetic sources in real-time mode skip to the frame that is due now.
A camera that stops delivering raises :class:`~kiosk.errors.CameraError`.
"""

from __future__ import annotations

import logging
import threading
import time
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
        from kiosk.devices.synthetic_camera import SyntheticCamera  # a backend of its own, loaded when used

        return SyntheticCamera(cfg, realtime=realtime).open()
    from kiosk.devices.replay_camera import ReplayCamera
    from kiosk.devices.synthetic_camera import SyntheticCamera

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
