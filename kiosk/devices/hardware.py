"""Everything the kiosk drives or weighs, built from the config in one place.

``Hardware.from_config(cfg)`` opens the flaps (all closed) and starts a
reader thread per scale; ``close()`` closes the flaps first (they are the
part that is unsafe to leave), then stops the scales. ``Hardware`` offers
the interface the worker drives (``kiosk.devices.front.HardwareFront``).

With a ``kiosk.devices.simulation.Simulation`` (``kiosk demo``, the
``--simulate`` CLI flags, tests) the same drivers run on gpiozero MockFactory
pins with simulated chips attached; the simulation listens for flap openings
to land items. Nothing here branches on it beyond asking it for backends.
Simulated calibration lives in its own file so it never overwrites a real one.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable, Optional

from kiosk.actuators import RELEASE_DELAY_S, WATCHDOG_S, FlapBank, FlapJammed, FlapState
from kiosk.closing import Closable
from kiosk.commands import ServiceAction
from kiosk.config import BinConfig, KioskConfig
from kiosk.devices.holds import Holds, HoldStore, holds_path
from kiosk.devices.pins import is_mock, make_pin_factory
from kiosk.devices.simulation import Simulation
from kiosk.errors import HardwareError
from kiosk.faults import Fault, PartKind
from kiosk.weighing.bank import Drop, ScaleBank
from kiosk.weighing.calibration import Calibration, calibration_path
from kiosk.weighing.hx711 import CHIP_POWER_DOWN_S, HX711
from kiosk.weighing.iio import IIOHX711
from kiosk.weighing.scale import Scale

log = logging.getLogger(__name__)

SERVICE_STABLE_WAIT_S = 5.0  # the service screen blocks the worker while it waits
SERVICE_FLAP_OPEN_S = 1.0
SELF_TEST_WAIT_S = 4.0  # readings need ~1 s to settle, a dead HX711 ~2 s to time out
HOLDS_SYNC_S = 1.0  # how often lockouts and full flags are compared with their file (a reset from the CLI)


def build_flaps(bins, pin_factory, *, simulation: Optional[Simulation] = None,
                clock: Callable[[], float] = time.monotonic, watchdog_s: Optional[float] = WATCHDOG_S,
                release_delay_s: float = RELEASE_DELAY_S, on_fault=None) -> FlapBank:
    """The flap bank (every flap driven closed); with a simulation, its closed switches attached first.

    ``bins``: the config's, or anything with ``id`` and ``flap`` (close-all's kept pin map).
    """
    bins = list(bins)
    if simulation is not None:
        pin_factory = simulation.pin_factory
        simulation.attach_flap_switches(bins)
    return FlapBank(bins, pin_factory, clock, watchdog_s=watchdog_s, release_delay_s=release_delay_s,
                    on_fault=on_fault)


def build_scales(cfg: KioskConfig, pin_factory, *, simulation: Optional[Simulation] = None,
                 bins: Optional[list[str]] = None, calibration: Optional[Calibration] = None,
                 clock: Callable[[], float] = time.monotonic, on_event=None) -> ScaleBank:
    """A ScaleBank for the bins with a scale (or just ``bins``)."""
    if calibration is None:
        calibration = Calibration.load(calibration_path(cfg.data_dir, simulation is not None))
    scales: dict[str, Scale] = {}
    try:
        for i, b in enumerate(cfg.bins):
            if b.scale.type == "none" or (bins is not None and b.id not in bins):
                continue
            if simulation is not None:
                backend = simulation.scale_backend(b, i)
                simulation.factory_calibrate(b, calibration)
            else:
                backend = _real_backend(b, pin_factory)
            cal, why = calibration.for_scale(b.id, b.scale.gain, b.scale.type)
            scales[b.id] = Scale(b.id, backend, cal, not_calibrated=why, clock=clock)
    except BaseException:
        for s in scales.values():
            s.close()
        raise
    return ScaleBank(scales, cfg.bins, calibration=calibration, clock=clock, on_event=on_event)


def _real_backend(b: BinConfig, pin_factory):
    sc = b.scale
    name = f"bin {b.id} scale"
    if sc.type == "iio":
        return IIOHX711(sc.iio_device, sc.gain, name=name)
    if is_mock(pin_factory):
        log.warning("%s: HX711 on simulated pins with no simulated chip: it will report no data (use --simulate)", name)
    return HX711(sc.data_pin, sc.clock_pin, sc.gain, pin_factory=pin_factory, name=name, max_pulse_s=CHIP_POWER_DOWN_S)


class Hardware(Closable):
    """Flaps + scales, with the interface the worker drives (``kiosk.devices.front.HardwareFront``).

    Per frame: ``poll(now)`` (flap deadlines and jams, fill levels, drop
    detection), then ``drops()``; ``open_flap``/``close_flap`` for the
    decision engine's effects; ``refused_bins()`` for ``Decider.set_full``;
    ``faults()`` for the out-of-service screen and the log.
    """

    def __init__(self, flaps: FlapBank, scales: ScaleBank, *, simulation: Optional[Simulation] = None,
                 holds: Optional[HoldStore] = None, clock: Callable[[], float] = time.monotonic):
        self.flaps = flaps
        self.scales = scales
        self.holds = holds
        self._saved_holds: Optional[Holds] = None
        self._next_holds_sync = 0.0
        self.simulation = simulation  # closed last, after the devices on its pins
        self.clock = clock
        self.on_flap_opened: list[Callable[[str], None]] = [simulation.flap_opened] if simulation else []
        self._drops: list[Drop] = []
        self._lock = threading.Lock()
        self.closed = False

    @classmethod
    def from_config(cls, cfg: KioskConfig, pin_factory=None, *, simulation: Optional[Simulation] = None,
                    clock: Callable[[], float] = time.monotonic, watchdog_s: Optional[float] = WATCHDOG_S,
                    release_delay_s: float = RELEASE_DELAY_S, on_fault=None, on_event=None) -> "Hardware":
        """Open everything the config describes. Every flap starts closed. A given simulation is owned from here."""
        if simulation is None and pin_factory is None:
            pin_factory = make_pin_factory(cfg.gpio.pin_factory)
        calibration = Calibration.load(calibration_path(cfg.data_dir, simulation is not None))
        flaps = None
        try:
            flaps = build_flaps(cfg.bins, pin_factory, simulation=simulation, clock=clock, watchdog_s=watchdog_s,
                                release_delay_s=release_delay_s, on_fault=on_fault)
            scales = build_scales(cfg, pin_factory, simulation=simulation, calibration=calibration, clock=clock,
                                  on_event=on_event)
            holds = HoldStore(holds_path(cfg.data_dir, simulation is not None))
            kept = holds.load()
            for b, why in kept.locked_out.items():  # a jam from before the restart is still a jam
                if b in flaps.flaps:
                    flaps.lock_out(b, f"locked out before the restart ({why}); Reset it once the flap is checked")
            for b in kept.full:  # and a full bin is still full until emptied or reset
                if b in scales.bins:
                    scales.hold_full(b)
        except BaseException:
            if flaps is not None:
                flaps.close()
            if simulation is not None:
                simulation.close()
            raise
        return cls(flaps, scales, simulation=simulation, holds=holds, clock=clock)

    # ---- the main loop's interface ---------------------------------------------------
    def open_flap(self, bin_id: str, now: Optional[float] = None) -> bool:
        """Open a flap and watch its scale for the drop. False if the flap refused (never pretend)."""
        if self.closed or not self.flaps.open(bin_id):
            return False
        with self._lock:
            self._drops.clear()  # a drop seen before this open is not this item's
        self.scales.arm_drop(bin_id, self.clock() if now is None else now)
        for listener in self.on_flap_opened:
            listener(bin_id)
        return True

    def close_flap(self, bin_id: str) -> None:
        self.flaps.close_flap(bin_id)
        self.scales.disarm_drop(bin_id)

    def close_all(self) -> None:
        """Every flap closed now (the bank stays usable)."""
        self.flaps.close_all()
        self.scales.disarm_drop()
        with self._lock:
            self._drops.clear()

    def poll(self, now: Optional[float] = None) -> list[Drop]:
        """Once per frame: flap deadlines/jams, fill levels, drop detection. Returns new drops."""
        if self.closed:
            return []
        self.flaps.poll()  # the flap bank keeps its own clock (the watchdog thread uses it too)
        self._sync_holds()
        new = self.scales.update(now)
        if new:
            with self._lock:
                self._drops.extend(new)
        return new

    def _sync_holds(self) -> None:
        """Lockouts and full flags to the data partition when they change; resets from ``kiosk flaps reset`` applied."""
        if self.holds is None or self.clock() < self._next_holds_sync:
            return
        self._next_holds_sync = self.clock() + HOLDS_SYNC_S
        try:
            if self.holds.changed():  # someone else wrote it: a bin they removed was reset by a technician
                kept = self.holds.load()
                for b in sorted(self.flaps.locked_out - set(kept.locked_out)):
                    self.flaps.reset_lockout(b)
                for b in sorted(self.scales.full_bins() - set(kept.full)):
                    self.scales.reset_full(b)
                self._saved_holds = None
            latest = {f.bin_id: f.message for f in self.flaps.faults}
            now = Holds({b: latest.get(b, "flap jammed") for b in self.flaps.locked_out},
                        {b: "full" for b in self.scales.full_bins()})
            if self._saved_holds is None or not now.same_bins(self._saved_holds):
                self.holds.save(now)
                self._saved_holds = now
        except OSError as e:  # the data partition is gone or full: the holds still apply in memory
            log.error("bin holds: cannot keep them in %s: %s", self.holds.path, e)

    def drops(self) -> list[tuple[str, float]]:
        """Confirmed drops since the last call: (bin id, grams)."""
        with self._lock:
            out, self._drops = self._drops, []
        return [(d.bin_id, d.grams) for d in out]

    def fill_levels(self) -> dict[str, float]:
        """Bin id -> fill fraction, for bins whose fill is known."""
        return {b: f.fraction for b, f in self.scales.fill_levels().items() if f.known}

    def refused_bins(self) -> set[str]:
        """Bins that must refuse items: full, or flap locked out after a jam."""
        return self.scales.full_bins() | self.flaps.locked_out

    def faults(self) -> list[Fault]:
        """Current faults, as the scales and flaps made them; empty when all is well."""
        latest = {f.bin_id: f for f in self.flaps.faults}
        locked = [latest.get(b) or Fault(FlapJammed.code, PartKind.FLAP, f"bin {b}: flap locked out", b)
                  for b in sorted(self.flaps.locked_out)]
        return self.scales.faults() + locked

    def service(self, action: ServiceAction, bin_id: Optional[str] = None) -> str:
        """The service screen's actions (kiosk.commands.ServiceAction). Blocks a few seconds at most."""
        if action is ServiceAction.TARE:
            bins = [bin_id] if bin_id else sorted(self.scales.bins)
            done = [f"{b} zero at raw {self.scales.tare(b, timeout_s=SERVICE_STABLE_WAIT_S).offset:.0f}" for b in bins]
            return "tared: " + ", ".join(done) if done else "no scale to tare"
        if action is ServiceAction.FLAP_TEST:
            return self._flap_test(self._need_bin(bin_id))
        if action is ServiceAction.RESET:
            b = self._need_bin(bin_id)
            done = []
            if b in self.scales.bins:
                self.scales.reset_full(b)
                done.append("full flag cleared")
            if b in self.flaps.flaps:
                self.flaps.reset_lockout(b)
                done.append("flap lockout cleared, closing and checking again")
            return f"{b}: " + ("; ".join(done) or "nothing to reset")
        raise HardwareError(f"unknown service action {action!r} ({', '.join(a.value for a in ServiceAction)})")

    def _need_bin(self, bin_id: Optional[str]) -> str:
        if not bin_id:
            raise HardwareError("choose a bin first")
        self.flaps.state(bin_id)  # KeyError for an unknown bin
        return bin_id

    def _flap_test(self, bin_id: str) -> str:
        if bin_id not in self.flaps.flaps:
            raise HardwareError(f"bin {bin_id} has no flap")
        if not self.flaps.open(bin_id):
            raise HardwareError(f"bin {bin_id}: the flap refused to open (state {self.flaps.state(bin_id).value})")
        time.sleep(SERVICE_FLAP_OPEN_S)
        self.flaps.close_flap(bin_id)
        cfg = self.flaps.flaps[bin_id].cfg
        deadline = time.monotonic() + 2 * cfg.close_check_s + self.flaps.retry_open_s + 1.0
        while self.flaps.state(bin_id) not in (FlapState.CLOSED, FlapState.LOCKED_OUT) and time.monotonic() < deadline:
            time.sleep(0.05)
            self.flaps.poll()
        st = self.flaps.state(bin_id)
        if st is FlapState.LOCKED_OUT:
            raise FlapJammed(self.flaps.faults[-1].message if self.flaps.faults else f"bin {bin_id}: flap jammed")
        if cfg.closed_switch_pin is None:
            return f"{bin_id}: opened and closed (no closed switch: check by eye)"
        return f"{bin_id}: opened and closed, switch confirms closed" if st is FlapState.CLOSED else f"{bin_id}: {st.value}"

    def self_test(self, wait_s: float = SELF_TEST_WAIT_S) -> list[tuple[str, bool, str]]:
        """``kiosk doctor`` rows (name, ok, detail): each scale's reading, each flap's state. Moves nothing."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            pending = [b for b in self.scales.bins if not self._settled(b)]
            pending += [b for b in self.flaps.flaps if self.flaps.state(b) in (FlapState.CLOSING, FlapState.RETRY)]
            if not pending:
                break
            time.sleep(0.05)
        rows = []
        for b in sorted(self.scales.bins):
            r, code = self.scales.scales[b].status()
            if r.fault:
                rows.append((f"scale {b}", False, f"[{code}] {r.fault}"))
            elif math.isnan(r.grams):
                rows.append((f"scale {b}", False, "no reading yet"))
            else:
                rows.append((f"scale {b}", True, f"{round(r.grams)} g{'' if r.stable else ' (not settled)'}"))
        for b, flap in sorted(self.flaps.flaps.items()):
            st = self.flaps.state(b)
            sw = flap.switch_closed()
            how = f"{flap.cfg.type} on GPIO{flap.cfg.pin}"
            if sw is not None:
                how += f", switch reads {'closed' if sw else 'OPEN'}"
            rows.append((f"flap {b}", st is FlapState.CLOSED, f"{st.value} ({how})"))
        return rows

    def _settled(self, bin_id: str) -> bool:
        r = self.scales.reading(bin_id)
        return bool(r.fault) or r.stable

    # ---- shutdown -----------------------------------------------------------------------
    def _close(self) -> None:
        """Flaps first (closed, then released), then scales, then the simulation under them."""
        try:
            self.flaps.close()
        finally:
            try:
                self.scales.close()
            finally:
                if self.simulation is not None:
                    self.simulation.close()


def open_hardware(cfg: KioskConfig, simulate: bool = False, **kw) -> Hardware:
    """The config's hardware; ``simulate``: on a fresh ``Simulation`` (the demo, ``kiosk doctor`` on mock pins)."""
    return Hardware.from_config(cfg, simulation=Simulation() if simulate else None, **kw)


__all__ = ["Hardware", "open_hardware", "build_flaps", "build_scales"]
