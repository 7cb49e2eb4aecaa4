"""Counts per day roll over at midnight; the frame rate follows the frame timestamps."""

import pytest

from kiosk.meters import DailyTally, FrameRate


def test_daily_tally_starts_from_the_log_and_rolls_over_at_midnight():
    day = ["2026-12-03"]
    tally = DailyTally({"glass": 2}, today=lambda: day[0])
    tally.count("glass")
    tally.count("paper")
    assert tally.snapshot() == {"glass": 3, "paper": 1}
    day[0] = "2026-12-04"
    assert tally.snapshot() == {}
    tally.count("paper")
    assert tally.snapshot() == {"paper": 1}


def test_frame_rate_smooths_and_ignores_repeated_timestamps():
    rate = FrameRate(smoothing=0.5)
    assert rate.update(0.0) == 0.0
    assert rate.update(0.1) == pytest.approx(10.0)
    assert rate.update(0.1) == pytest.approx(10.0)  # same timestamp: no division by zero, no change
    assert rate.update(0.15) == pytest.approx(15.0)  # halfway from 10 to 20
