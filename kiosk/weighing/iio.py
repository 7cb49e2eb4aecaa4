"""The kernel's HX711 driver (IIO ``hx711``) as a reading backend: the same codes, read from sysfs.

Where the device tree has the ``hx711`` overlay, the kernel times the clock and
a pre-empted Python thread can no longer corrupt a read.
"""

from __future__ import annotations

import time
from pathlib import Path


from kiosk.weighing.hx711 import DataReadyTimeout, ScaleError, check_code, extra_pulses, from_iio_raw

IIO_ROOT = Path("/sys/bus/iio/devices")


class IIOHX711:
    """The Linux ``hx711`` IIO driver (``dtoverlay=hx711``...): the kernel bit-bangs with
    pre-emption off, so no pulse runs long. Gain is set on the kernel side.

    ``device`` is ``iio:deviceN`` (under ``root``) or an absolute directory.
    """

    def __init__(self, device: str, gain: int = 128, *, root: Path = IIO_ROOT, name: str = "HX711 (iio)",
                 period_s: float = 0.1):
        extra_pulses(gain)
        self.name = name
        self.gain = gain
        d = Path(device)
        self.dir = d if d.is_absolute() else Path(root) / device
        channel = 1 if gain == 32 else 0  # channel B is in_voltage1
        self.path = self.dir / f"in_voltage{channel}_raw"
        self.period_s = period_s
        self._last = 0.0
        self._closed = False
        if not self.dir.is_dir():
            raise ScaleError(f"{name}: no IIO device at {self.dir} (is the hx711 overlay enabled? ls {Path(root)})")
        if not self.path.exists():
            raise ScaleError(f"{name}: {self.path} does not exist: is {self.dir} an hx711?")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    def read_raw(self) -> int:
        """One conversion as a signed code; the kernel waits for data-ready itself."""
        if self._closed:
            raise ScaleError(f"{self.name}: read after close")
        wait = self._last + self.period_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # a sysfs read of a fake or cached value must not spin
        self._last = time.monotonic()
        try:
            text = self.path.read_text().strip()
        except OSError as e:
            # the kernel returns EIO when DOUT never went low
            raise DataReadyTimeout(f"{self.name}: reading {self.path} failed: {e.strerror or e}") from e
        try:
            raw = int(text)
            code = from_iio_raw(raw)
        except ValueError as e:
            raise ScaleError(f"{self.name}: {self.path} gave {text!r}, not a 24-bit raw value") from e
        return check_code(code, self.name)
