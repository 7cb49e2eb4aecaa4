"""Weighing's pure logic: median filter and stability, drop confirmation, fill levels.

No threads, no pins: these take plain numbers and ``Reading``s, so they are
tested with scripted data. ``kiosk.weighing.scale`` runs them on the reader
threads.

Why medians: HX711 boards glitch now and then (a shifted bit is a spike of
kilograms). A median of five throws away up to two such codes without
smoothing a real step away, and stability is judged on the medians so a
single spike does not make a settled bin look unsettled.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Optional

from kiosk.datatypes import Reading

# Would be config fields: scale.median_window, scale.stable_g, ...
MEDIAN_WINDOW = 5  # raw codes per median
STABLE_S = 0.5  # the medians of this long must agree for "stable"
STABLE_G = 2.0  # spread of those medians that still counts as settled
DROP_SETTLED_READINGS = 2  # consecutive stable readings above the rise that confirm a drop
FULL_HOLD_S = 2.0  # at/above capacity this long (stable) before a bin counts as full
EMPTIED_BELOW = 0.2  # fill fraction under which a full bin counts as emptied
NEAR_FULL_HYSTERESIS = 0.02
RESET_MARGIN = 0.05  # after a manual reset, full again only this much (of capacity) above the reset weight



class WeightFilter:
    """Median of the last ``median_window`` raw codes; stable when the medians of
    the last ``stable_s`` seconds lie within a tolerance.

    Stability is judged over *time*, not a count of samples: an HX711 runs at
    10 or 80 samples/s depending on a pin, and an item bouncing in a bin for
    a tenth of a second must not look settled at either rate.
    """

    def __init__(self, median_window: int = MEDIAN_WINDOW, stable_s: float = STABLE_S, min_medians: int = 3):
        if median_window < 1 or stable_s <= 0:
            raise ValueError("median_window must be >= 1 and stable_s > 0")
        self.median_window = median_window
        self.stable_s = stable_s
        self.min_medians = min_medians
        self._raw: deque[float] = deque(maxlen=median_window)
        self._medians: deque[tuple[float, float]] = deque()  # (t, median)

    def reset(self) -> None:
        self._raw.clear()
        self._medians.clear()

    def add(self, raw: float, t: float) -> Optional[float]:
        """Add a code read at time ``t``; returns the new median once the window is full."""
        self._raw.append(float(raw))
        if len(self._raw) < self.median_window:
            return None
        m = statistics.median(self._raw)
        self._medians.append((t, m))
        # keep everything inside the window plus the newest median from before it (coverage)
        while len(self._medians) >= 2 and self._medians[1][0] <= t - self.stable_s:
            self._medians.popleft()
        return m

    @property
    def median(self) -> Optional[float]:
        return self._medians[-1][1] if self._medians else None

    @property
    def window_start(self) -> Optional[float]:
        """Time of the oldest median that stability is judged on."""
        return self._medians[0][0] if self._medians else None

    @property
    def spread(self) -> Optional[float]:
        """Max - min of the medians over the last ``stable_s`` (None until they span that long)."""
        m = self._medians
        if len(m) < self.min_medians or m[-1][0] - m[0][0] < self.stable_s:
            return None
        values = [v for _, v in m]
        return max(values) - min(values)

    def stable(self, tolerance: float) -> bool:
        s = self.spread
        return s is not None and s <= tolerance


class DropDetector:
    """Confirms that an item landed in a bin after its flap opened.

    Armed with the weight before the flap opened; confirms once the weight
    has risen by at least ``min_rise_g`` *and* settled (``stable`` readings,
    ``settled_readings`` in a row), so an impact spike or a bump on the bin
    alone never counts. Returns the item's weight (settled minus baseline).
    Readings with a fault or taken before arming are ignored.
    """

    def __init__(self, min_rise_g: float, settled_readings: int = DROP_SETTLED_READINGS):
        if not min_rise_g > 0:
            raise ValueError("min_rise_g must be positive")
        self.min_rise_g = min_rise_g
        self.settled_readings = max(1, settled_readings)
        self.baseline: Optional[float] = None
        self.armed_t: Optional[float] = None
        self._count = 0

    @property
    def armed(self) -> bool:
        return self.baseline is not None

    def arm(self, t: float, baseline: Reading) -> bool:
        """Start watching from time ``t``. False (not armed) if the baseline is unusable."""
        self.disarm()
        if baseline is None or baseline.fault or not math.isfinite(baseline.grams):
            return False
        self.baseline, self.armed_t = baseline.grams, t
        return True

    def disarm(self) -> None:
        self.baseline = self.armed_t = None
        self._count = 0

    def update(self, r: Reading) -> Optional[float]:
        """Feed a reading; the dropped grams once confirmed (then disarmed), else None."""
        if self.baseline is None or r.fault or not math.isfinite(r.grams) or r.t <= self.armed_t:
            return None
        rise = r.grams - self.baseline
        if r.stable and rise >= self.min_rise_g:
            self._count += 1
        else:
            self._count = 0
        if self._count >= self.settled_readings:
            self.disarm()
            return rise
        return None


@dataclass(frozen=True)
class FillState:
    """How full a bin is. ``known`` is False until a stable, fault-free reading came in."""

    fraction: float = 0.0
    grams: float = math.nan
    near_full: bool = False
    full: bool = False
    known: bool = False


class FillLevel:
    """Fill fraction from weight against capacity, with a latched "full".

    Full needs ``full_hold_s`` of stable readings at or above capacity (a
    person leaning on the bin is not a full bin) and clears only when the
    weight falls below ``emptied_below`` of capacity (the bin was emptied),
    or when a technician calls ``reset()``. After a reset the bin counts as
    full again only once it is clearly heavier than at the reset, so a
    drifting or mis-calibrated scale cannot re-latch it at once. Unstable or
    faulty readings change nothing: a fault must never make a bin look empty.
    """

    def __init__(self, capacity_g: float, near_full: float = 0.85, *, emptied_below: float = EMPTIED_BELOW,
                 full_hold_s: float = FULL_HOLD_S, hysteresis: float = NEAR_FULL_HYSTERESIS):
        if not capacity_g > 0:
            raise ValueError("capacity must be positive")
        if not 0 < emptied_below < near_full <= 1.0:
            raise ValueError("need 0 < emptied_below < near_full <= 1")
        self.capacity_g = capacity_g
        self.near_full_at = near_full
        self.emptied_below = emptied_below
        self.full_hold_s = full_hold_s
        self.hysteresis = hysteresis
        self.state = FillState()
        self._over_since: Optional[float] = None
        self._rearm_above_g: Optional[float] = None

    def update(self, r: Reading) -> FillState:
        if r.fault or not r.stable or not math.isfinite(r.grams):
            return self.state
        s = self.state
        frac = r.grams / self.capacity_g
        near = frac >= self.near_full_at or (s.near_full and frac >= self.near_full_at - self.hysteresis)
        full = s.full
        if full:
            if frac < self.emptied_below:
                full = False
                self._rearm_above_g = None
        else:
            if frac < self.emptied_below:
                self._rearm_above_g = None
            over = frac >= 1.0 and (self._rearm_above_g is None or r.grams >= self._rearm_above_g)
            if not over:
                self._over_since = None
            elif self._over_since is None:
                self._over_since = r.t
            if over and r.t - self._over_since >= self.full_hold_s:
                full = True
                self._over_since = None
        self.state = FillState(fraction=max(0.0, frac), grams=r.grams, near_full=near or full, full=full, known=True)
        return self.state

    def hold_full(self) -> FillState:
        """Full from before a restart: refused until the scale sees it emptied, or a technician resets it."""
        s = self.state
        self.state = FillState(fraction=s.fraction, grams=s.grams, near_full=True, full=True, known=s.known)
        return self.state

    def reset(self) -> FillState:
        """A technician says the bin is not full (emptied with the scale off, or a bad reading)."""
        s = self.state
        self._over_since = None
        if s.known and math.isfinite(s.grams):
            self._rearm_above_g = s.grams + RESET_MARGIN * self.capacity_g
        self.state = FillState(fraction=s.fraction, grams=s.grams, near_full=s.fraction >= self.near_full_at,
                               full=False, known=s.known)
        return self.state
