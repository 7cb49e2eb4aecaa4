"""The simulation backend: the demo's, ``--simulate``'s and the tests' flaps, chips and items.

Like gpiozero's MockFactory it is handed in, never switched on inside the
real device classes: ``build_flaps``/``build_scales``/``Hardware`` take a
``Simulation`` (None means real pins) and ask it for each scale's backend and
each flap's closed switch, and ``Hardware`` tells its listeners when a flap
opens, which is how a simulated item of a few hundred grams lands on the
scale ~0.5 s later. The drivers and the decoding stay the real ones, so the
whole open -> drop -> weigh -> close path runs on a desktop. Whoever makes a
Simulation closes it, after the devices on its pins.
"""

from __future__ import annotations

import logging
import random
from typing import Optional

from kiosk.closing import Closable
from kiosk.config import BinConfig
from kiosk.devices.pins import is_mock, make_pin_factory
from kiosk.devices.simpins import SimulatedFlapSwitch
from kiosk.errors import HardwareError
from kiosk.weighing.calibration import BinCalibration, Calibration
from kiosk.weighing.hx711 import HX711
from kiosk.weighing.hx711_sim import LoadCellModel, SimulatedADC, SimulatedHX711

log = logging.getLogger(__name__)

SIM_PULSE_LIMIT_S = 0.02  # mock pins on a busy desktop: both the simulated chip and the driver use this
SIM_RATE_HZ = 10.0  # HX711 with RATE tied low, as on most breakout boards
SIM_DROP_DELAY_S = 0.5
SIM_ITEM_G = (120.0, 450.0)


def sim_model(index: int) -> LoadCellModel:
    """A plausible load cell per bin (deterministic, so a simulated calibration stays valid)."""
    return LoadCellModel(offset_mv=0.2 + 0.05 * index, noise_counts=15.0, seed=index)


class Simulation(Closable):
    """Mock pins with simulated chips attached, and the items that land in the bins."""

    def __init__(self, pin_factory=None, *, rate_hz: float = SIM_RATE_HZ, seed: int = 0):
        if pin_factory is None:
            pin_factory = make_pin_factory("mock")
        elif not is_mock(pin_factory):
            raise HardwareError("simulation needs gpiozero's MockFactory pins, not real ones")
        self.pin_factory = pin_factory
        self.rate_hz = rate_hz
        self.models: dict[str, LoadCellModel] = {}  # bin id -> its simulated load cell
        self._owned: list = []  # chips and switches, closed with the simulation
        self._rng = random.Random(seed)
        self.closed = False

    def attach_flap_switches(self, bins: list[BinConfig]) -> None:
        """A closed switch that follows each flap's own pin (before the flaps open their pins)."""
        for b in bins:
            if b.flap is not None and b.flap.closed_switch_pin is not None:
                self._owned.append(SimulatedFlapSwitch(b.flap, pin_factory=self.pin_factory))

    def scale_backend(self, b: BinConfig, index: int):
        """The bin's scale reader, on a simulated chip (HX711) or a simulated IIO channel."""
        sc = b.scale
        name = f"bin {b.id} scale"
        self.models[b.id] = model = sim_model(index)
        if sc.type == "iio":
            return SimulatedADC(model, sc.gain, period_s=1.0 / self.rate_hz, name=name)
        self._owned.append(SimulatedHX711(sc.data_pin, sc.clock_pin, pin_factory=self.pin_factory, model=model,
                                          rate_hz=self.rate_hz, powerdown_s=SIM_PULSE_LIMIT_S))
        return HX711(sc.data_pin, sc.clock_pin, sc.gain, pin_factory=self.pin_factory, name=name,
                     max_pulse_s=SIM_PULSE_LIMIT_S)

    def factory_calibrate(self, b: BinConfig, calibration: Calibration) -> None:
        """A simulated cell is "factory calibrated" (in memory only) until someone tares it."""
        if calibration.get(b.id) is None and b.id in self.models:
            m = self.models[b.id]
            calibration.bins[b.id] = BinCalibration(offset=m.zero_code(b.scale.gain), scale=m.counts_per_gram(b.scale.gain),
                                                    gain=b.scale.gain, source=b.scale.type)

    def flap_opened(self, bin_id: str) -> None:
        """A passer-by drops their item: it lands on the bin's scale shortly after the flap opens."""
        model: Optional[LoadCellModel] = self.models.get(bin_id)
        if model is not None:
            grams = round(self._rng.uniform(*SIM_ITEM_G))
            model.add_load(grams, SIM_DROP_DELAY_S)
            log.info("simulated: a %d g item will land in %s", grams, bin_id)

    def _close(self) -> None:
        for thing in reversed(self._owned):
            thing.close()
