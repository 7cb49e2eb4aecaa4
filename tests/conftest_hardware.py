"""Fixtures for the hardware-layer tests (loaded with ``pytest_plugins``).

The pin factory is gpiozero's own MockFactory (MockPWMPin so servos work),
injected with ``pin_factory=``. After each test the factory is reset, and the
global ``Device.pin_factory`` must still be unset: a device created without
``pin_factory=`` would have set it.
"""

from __future__ import annotations

import threading
import time

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from kiosk.config import BinConfig, FlapConfig, ScaleConfig


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, t: float = 1000.0):
        self.t = t
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.t

    def advance(self, dt: float) -> float:
        with self._lock:
            self.t += dt
            return self.t


@pytest.fixture
def mock_factory():
    before = Device.pin_factory
    factory = MockFactory(pin_class=MockPWMPin)
    try:
        yield factory
    finally:
        factory.reset()
        leaked = Device.pin_factory is not before
        Device.pin_factory = before
        assert not leaked, "a device was created without pin_factory= (the global default factory got set)"


@pytest.fixture
def fake_clock():
    return FakeClock()


def make_bin(bin_id: str, *, flap: dict | None = None, scale: dict | None = None, capacity_kg: float = 20.0,
             near_full: float = 0.85) -> BinConfig:
    return BinConfig(
        id=bin_id,
        name={"en": bin_id.title()},
        colour="#123456",
        flap=FlapConfig(**flap) if flap is not None else None,
        scale=ScaleConfig(**scale) if scale is not None else ScaleConfig(type="none"),
        capacity_kg=capacity_kg,
        near_full=near_full,
    )


def wait_for(predicate, timeout: float = 2.0, interval: float = 0.005) -> bool:
    """Poll until predicate() is true (for thread-driven behaviour; no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def minimal_config_dict(data_dir: str, bins: list[dict]) -> dict:
    """A valid kiosk config with the given bins (for Hardware and CLI tests)."""
    return {
        "bins": bins,
        "rules": {"thing": {"bin": bins[0]["id"], "guidance": {"en": ["ok"]}}},
        "ui": {"languages": ["en"], "default_language": "en", "tips": {"en": ["hi"]}},
        "storage": {"data_dir": data_dir},
        "gpio": {"pin_factory": "mock"},
    }
