"""Flaps on gpiozero's MockFactory (MockPWMPin for servos): safe states, one open, deadlines, jams, exits."""

from __future__ import annotations

import json
import logging
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from kiosk.actuators import FlapBank, FlapJammed, FlapState
from kiosk.devices.simpins import SimulatedFlapSwitch
from kiosk.devices.pins import make_pin_factory
from kiosk.errors import HardwareError

from tests.conftest_hardware import make_bin, minimal_config_dict, wait_for  # noqa: E402

pytest_plugins = ["tests.conftest_hardware"]

REPO = Path(__file__).resolve().parents[1]
CLOSED, OPEN = 1.0 / 20, 2.0 / 20  # servo duty cycles: 1.0 ms and 2.0 ms pulses in a 20 ms frame
FAST = dict(watchdog_s=None, release_delay_s=0.05)


def servo_bins(n=3, **flap):
    pins = [12, 13, 18, 19]
    return [make_bin(f"b{i}", flap=dict(type="servo", pin=pins[i], **flap)) for i in range(n)]


def states(pin):
    return [round(float(s.state), 4) for s in pin.states]


# ------------------------------------------------------------------ pin factory
def test_mock_pin_factory_supports_pwm():
    f = make_pin_factory("mock")
    assert isinstance(f, MockFactory) and f.pin_class is MockPWMPin


def test_auto_falls_back_to_mock_off_a_pi_with_a_warning(caplog):
    try:
        import lgpio  # noqa: F401
        pytest.skip("lgpio is installed here")
    except ImportError:
        pass
    with caplog.at_level(logging.WARNING, logger="kiosk.actuators"):
        f = make_pin_factory("auto", on_pi=False)
    assert isinstance(f, MockFactory)
    assert "simulated pins" in caplog.text


def test_auto_on_a_pi_without_gpio_library_refuses():
    try:
        import lgpio  # noqa: F401
        pytest.skip("lgpio is installed here")
    except ImportError:
        pass
    with pytest.raises(HardwareError, match="no GPIO library works"):
        make_pin_factory("auto", on_pi=True)
    with pytest.raises(HardwareError, match="unknown pin factory"):
        make_pin_factory("bogus")


def test_no_hardware_library_imported_at_module_level():
    code = "import sys, kiosk.actuators, kiosk.weighing.hx711, kiosk.weighing.scale, kiosk.devices.hardware, kiosk.appliance.hardware_cli; " \
           "print([m for m in ('lgpio', 'RPi', 'RPi.GPIO', 'pigpio') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ safe states
def test_servo_starts_closed_and_moves_in_order(mock_factory):
    bins = servo_bins(1)
    pin = mock_factory.pin(12)
    with FlapBank(bins, mock_factory, **FAST) as bank:
        assert states(pin) == [0.0, CLOSED]  # input at rest, then straight to the closed pulse
        pin.clear_states()
        assert bank.open("b0")
        time.sleep(0.1)
        bank.close_flap("b0")
        time.sleep(0.1)
        pin.assert_states_and_times([(0.0, CLOSED), (0.0, OPEN), (0.1, CLOSED)])
        assert states(pin) == [CLOSED, OPEN, CLOSED]
    # close(): closed first (already), then released: no pulses, pin an input again
    assert states(pin)[-1] == 0.0 and pin.function == "input" and pin.frequency is None


def test_reversed_servo_pulses(mock_factory):
    bins = [make_bin("b0", flap=dict(type="servo", pin=12, open_pulse_ms=0.8, closed_pulse_ms=2.2))]
    pin = mock_factory.pin(12)
    with FlapBank(bins, mock_factory, **FAST) as bank:
        assert states(pin)[-1] == round(2.2 / 20, 4)
        bank.open("b0")
        assert states(pin)[-1] == round(0.8 / 20, 4)


@pytest.mark.parametrize("active_high, closed_level", [(True, 0.0), (False, 1.0)])
def test_output_flap_starts_closed(mock_factory, active_high, closed_level):
    bins = [make_bin("b0", flap=dict(type="output", pin=5, active_high=active_high))]
    pin = mock_factory.pin(5)
    with FlapBank(bins, mock_factory, **FAST) as bank:
        assert pin.function == "output" and float(pin.state) == closed_level
        if not active_high:
            assert states(pin) == [0.0, 1.0]  # driven straight to its closed (high) level
        bank.open("b0")
        assert float(pin.state) == 1.0 - closed_level
        bank.close_flap("b0")
        assert float(pin.state) == closed_level


# ---------------------------------------------------------------- one at a time
def test_only_one_flap_open(mock_factory):
    with FlapBank(servo_bins(3), mock_factory, **FAST) as bank:
        assert bank.open("b0")
        assert not bank.open("b1")
        assert bank.open("b0")  # already open: fine, deadline unchanged
        assert bank.open_bin == "b0"
        bank.close_flap("b0")
        assert bank.open("b1")
        assert [float(mock_factory.pin(p).state) for p in (12, 13, 18)] == [CLOSED, OPEN, CLOSED]
        with pytest.raises(KeyError, match="unknown bin"):
            bank.open("nope")


def test_never_two_open_under_concurrent_use(mock_factory):
    """Threads fight over the flaps; the pins' own histories show no overlap of open intervals."""
    bins = servo_bins(3)
    pins = [mock_factory.pin(p) for p in (12, 13, 18)]
    with FlapBank(bins, mock_factory, **FAST) as bank:
        opened = [0]

        def worker(seed):
            rng = random.Random(seed)
            for _ in range(200):
                b = f"b{rng.randrange(3)}"
                if rng.random() < 0.5:
                    opened[0] += bank.open(b)
                else:
                    bank.close_flap(b)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert opened[0] > 10
    intervals = []
    for pin in pins:
        t, start = pin._last_change - sum(s.timestamp for s in pin.states), None
        for s in pin.states:
            t += s.timestamp
            if s.state == OPEN:
                start = t
            elif start is not None:
                intervals.append((start, t))
                start = None
    intervals.sort()
    assert len(intervals) > 10
    for (s1, e1), (s2, e2) in zip(intervals, intervals[1:]):
        assert e1 <= s2, "two flaps were open at the same time"


# ------------------------------------------------------------------- deadlines
def test_open_closes_by_its_deadline(mock_factory, fake_clock):
    pin = mock_factory.pin(12)
    with FlapBank(servo_bins(1, max_open_s=10), mock_factory, fake_clock, **FAST) as bank:
        bank.open("b0")
        fake_clock.advance(9.99)
        bank.poll()
        assert bank.state("b0") is FlapState.OPEN and float(pin.state) == OPEN
        fake_clock.advance(0.01)
        bank.poll()
        assert bank.state("b0") is FlapState.CLOSED and float(pin.state) == CLOSED


def test_watchdog_thread_enforces_the_deadline_without_the_main_loop(mock_factory, fake_clock):
    pin = mock_factory.pin(12)
    with FlapBank(servo_bins(1, max_open_s=5), mock_factory, fake_clock, watchdog_s=0.01, release_delay_s=0.05) as bank:
        bank.open("b0")
        fake_clock.advance(5.0)  # nobody calls poll(): the watchdog must
        assert wait_for(lambda: float(pin.state) == CLOSED, 2.0)
        assert bank.state("b0") is FlapState.CLOSED


def test_every_open_is_closed_by_its_deadline_random_schedule(mock_factory, fake_clock):
    rng = random.Random(7)
    with FlapBank(servo_bins(3, max_open_s=3), mock_factory, fake_clock, **FAST) as bank:
        opened_at = {}
        for _ in range(400):
            b = f"b{rng.randrange(3)}"
            if rng.random() < 0.3 and bank.state(b) is FlapState.CLOSED and bank.open(b):
                opened_at.setdefault(b, fake_clock())
            fake_clock.advance(rng.uniform(0.0, 0.7))
            bank.poll()
            for x in list(opened_at):
                if bank.state(x) is FlapState.OPEN:
                    assert fake_clock() - opened_at[x] < 3.0, f"{x} open past its deadline"
                else:
                    del opened_at[x]


# ----------------------------------------------------------------------- jams
def jam_bins():
    return [make_bin("b0", flap=dict(type="servo", pin=12, closed_switch_pin=5, close_check_s=1.0)),
            make_bin("b1", flap=dict(type="servo", pin=13))]


def test_jam_is_retried_once_then_locked_out(mock_factory, fake_clock):
    pin, switch = mock_factory.pin(12), mock_factory.pin(5)
    faults = []
    with FlapBank(jam_bins(), mock_factory, fake_clock, on_fault=faults.append, retry_open_s=0.5, **FAST) as bank:
        switch.drive_low()  # pressed: closed
        bank.poll()
        assert bank.state("b0") is FlapState.CLOSED
        pin.clear_states()
        assert bank.open("b0")
        switch.drive_high()  # flap leaves the closed position...
        bank.close_flap("b0")  # ...and never gets back: something is wedged in it
        assert not bank.open("b1"), "a flap that has not reported closed still counts as open"
        fake_clock.advance(1.0)
        bank.poll()
        assert bank.state("b0") is FlapState.RETRY and float(pin.state) == OPEN
        fake_clock.advance(0.5)
        bank.poll()
        assert bank.state("b0") is FlapState.CLOSING and float(pin.state) == CLOSED
        fake_clock.advance(1.0)
        new = bank.poll()
        assert bank.state("b0") is FlapState.LOCKED_OUT
        assert states(pin) == [CLOSED, OPEN, CLOSED, OPEN, CLOSED]  # open, close, retry open, close
        assert new and faults == new and faults[0].code == FlapJammed.code == "E410"
        assert "jammed" in faults[0].message and "GPIO5" in faults[0].message
        assert bank.locked_out == {"b0"}
        assert not bank.open("b0")
        assert bank.open("b1"), "the other bins work on"
        bank.close_flap("b1")
        switch.drive_low()  # technician clears it
        bank.reset_lockout("b0")
        bank.poll()
        assert bank.state("b0") is FlapState.CLOSED and bank.open("b0")


def test_a_flap_that_cannot_be_driven_is_closed_locked_out_and_refused(mock_factory, fake_clock):
    pin = mock_factory.pin(12)
    faults = []
    with FlapBank(servo_bins(2), mock_factory, fake_clock, on_fault=faults.append, **FAST) as bank:
        flap = bank.flaps["b0"]

        def broken():
            raise OSError("GPIO busy")

        flap.drive_open = broken
        assert bank.open("b0") is False
        assert bank.state("b0") is FlapState.LOCKED_OUT and bank.locked_out == {"b0"}
        assert float(pin.state) == CLOSED  # driven to its safe position
        assert len(faults) == 1 and faults[0].code == "E410" and "GPIO busy" in faults[0].message
        assert bank.open("b1"), "the other bins work on"


def test_retry_that_works_is_not_a_fault(mock_factory, fake_clock):
    switch = mock_factory.pin(5)
    with FlapBank(jam_bins(), mock_factory, fake_clock, **FAST) as bank:
        switch.drive_low()
        bank.poll()
        bank.open("b0")
        switch.drive_high()
        bank.close_flap("b0")
        fake_clock.advance(1.0)
        bank.poll()
        assert bank.state("b0") is FlapState.RETRY
        fake_clock.advance(0.5)
        bank.poll()
        switch.drive_low()  # the wedged item fell through on the retry
        bank.poll()
        assert bank.state("b0") is FlapState.CLOSED and not bank.faults


def test_flap_found_open_at_start_is_checked_like_any_close(mock_factory, fake_clock):
    with FlapBank(jam_bins(), mock_factory, fake_clock, **FAST) as bank:
        assert bank.state("b0") is FlapState.CLOSING  # switch reads open (pull-up, not pressed)
        for _ in range(3):
            fake_clock.advance(1.0)
            bank.poll()
        assert bank.state("b0") is FlapState.LOCKED_OUT and bank.faults


def test_simulated_switch_follows_the_flap(mock_factory, fake_clock):
    cfg = jam_bins()
    sw = SimulatedFlapSwitch(cfg[0].flap, pin_factory=mock_factory)
    with FlapBank(cfg, mock_factory, fake_clock, **FAST) as bank:
        bank.poll()
        assert bank.state("b0") is FlapState.CLOSED
        bank.open("b0")
        assert mock_factory.pin(5).state  # open: switch released
        bank.close_flap("b0")
        bank.poll()
        assert bank.state("b0") is FlapState.CLOSED
        sw.jammed = True
        bank.open("b0")
        bank.close_flap("b0")
        for _ in range(4):
            fake_clock.advance(1.0)
            bank.poll()
        assert bank.locked_out == {"b0"}
    sw.close()


# ----------------------------------------------------------------- exit paths
def test_close_on_exception_drives_closed_then_releases(mock_factory):
    pin = mock_factory.pin(12)
    with pytest.raises(RuntimeError):
        with FlapBank(servo_bins(1), mock_factory, watchdog_s=None, release_delay_s=0.2) as bank:
            bank.open("b0")
            pin.clear_states()
            raise RuntimeError("main loop crashed")
    # closed pulse first, held for the release delay, only then no pulses (released)
    pin.assert_states_and_times([(0.0, OPEN), (0.0, CLOSED), (0.2, 0.0)])
    assert states(pin) == [OPEN, CLOSED, 0.0] and pin.function == "input"


def test_close_is_idempotent_and_refuses_later_opens(mock_factory):
    bank = FlapBank(servo_bins(2), mock_factory, **FAST)
    bank.open("b0")
    bank.close()
    bank.close()
    assert bank.closed and not bank.open("b1")
    assert float(mock_factory.pin(12).state) == 0.0


def test_close_all_keeps_the_bank_usable(mock_factory):
    with FlapBank(servo_bins(2), mock_factory, **FAST) as bank:
        bank.open("b1")
        bank.close_all()
        assert float(mock_factory.pin(13).state) == CLOSED
        assert bank.open("b0")


def test_busy_pin_is_a_clear_error(mock_factory):
    with FlapBank(servo_bins(1), mock_factory, **FAST):
        with pytest.raises(HardwareError, match="b0.*GPIO12"):
            FlapBank(servo_bins(1), mock_factory, **FAST)


SCRIPT = textwrap.dedent("""
    import json, sys
    from gpiozero.pins.mock import MockFactory, MockPWMPin
    from kiosk.actuators import FlapBank
    from kiosk.config import BinConfig, FlapConfig
    from kiosk.appliance.lifecycle import StopFlag, graceful_signals

    f = MockFactory(pin_class=MockPWMPin)
    pin = f.pin(12)
    bins = [BinConfig(id="paper", name={"en": "Paper"}, colour="#000000", flap=FlapConfig(pin=12))]
    mode = sys.argv[1]

    def report():
        print(json.dumps({"states": [float(s.state) for s in pin.states], "function": pin.function}), flush=True)

    if mode == "sigterm":
        stop = StopFlag()
        try:
            with graceful_signals(stop), FlapBank(bins, f, release_delay_s=0.05) as bank:
                bank.open("paper")
                print("OPEN", flush=True)
                while not stop:
                    stop.wait(0.05)  # the main loop
        finally:
            report()
    else:  # a normal exit that forgot close(): the atexit hook
        import atexit
        atexit.register(report)  # registered first, so it runs after the bank's hook
        bank = FlapBank(bins, f, release_delay_s=0.05)
        bank.open("paper")
        print("OPEN", flush=True)
""")


@pytest.mark.parametrize("mode", ["sigterm", "exit"])
def test_flaps_close_when_the_process_ends(mode):
    p = subprocess.Popen([sys.executable, "-c", SCRIPT, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=REPO)
    try:
        assert p.stdout.readline().strip() == "OPEN"
        if mode == "sigterm":
            p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["states"][-3:] == [OPEN, CLOSED, 0.0], report  # open, driven closed, then released
    assert report["function"] == "input"


# ----------------------------------------------------------------------- CLI
def _cli(tmp_path, argv, bins):
    from tests.fakes import run_hardware_cli

    return run_hardware_cli(tmp_path, argv, bins)


CLI_BINS = [
    {"id": "paper", "name": {"en": "Paper"}, "colour": "#0000ff",
     "flap": {"type": "servo", "pin": 12, "closed_switch_pin": 5, "close_check_s": 0.2}},
    {"id": "glass", "name": {"en": "Glass"}, "colour": "#00ff00", "flap": {"type": "output", "pin": 6}},
]


def test_cli_flaps_close_all_and_test(tmp_path, capsys):
    assert _cli(tmp_path, ["flaps", "close-all", "--simulate"], CLI_BINS) == 0
    assert "closed and released: paper, glass" in capsys.readouterr().out
    assert _cli(tmp_path, ["flaps", "test", "paper", "--open-s", "0.1", "--simulate"], CLI_BINS) == 0
    assert "switch confirms closed" in capsys.readouterr().out
    assert _cli(tmp_path, ["flaps", "test", "glass", "--open-s", "0.1", "--simulate"], CLI_BINS) == 0
    assert "check by eye" in capsys.readouterr().out
    from kiosk.errors import KioskError

    with pytest.raises(KioskError, match="unknown bin 'nope'"):
        _cli(tmp_path, ["flaps", "test", "nope", "--simulate"], CLI_BINS)


def test_cli_close_all_reports_a_switch_that_does_not_read_closed(tmp_path, capsys):
    # gpio.pin_factory is mock but nothing simulates the switch: it floats up, "not closed"
    with pytest.raises(FlapJammed, match="closed switch of paper does not read closed"):
        _cli(tmp_path, ["flaps", "close-all"], CLI_BINS)
    assert "closed and released: paper, glass" in capsys.readouterr().out  # still closed and released


def test_cli_without_gpio_and_without_simulate_is_a_clear_error(tmp_path, capsys, monkeypatch):
    """Pretend pins must never report that a real flap closed: no GPIO is E402, exit non-zero."""
    from kiosk.devices import pins
    from kiosk.devices.pins import NoGpio

    monkeypatch.setattr(pins, "on_raspberry_pi", lambda: False)  # this machine, said out loud
    bins = [dict(b) for b in CLI_BINS]
    import yaml

    cfg = minimal_config_dict(str(tmp_path / "data"), bins)
    cfg["gpio"] = {"pin_factory": "auto"}
    (tmp_path / "auto.yaml").write_text(yaml.safe_dump(cfg))
    from kiosk.cli import main as cli_main

    try:
        import lgpio  # noqa: F401
        pytest.skip("this machine has lgpio: auto finds real pins")
    except ImportError:
        pass
    assert cli_main(["flaps", "close-all", "--config", str(tmp_path / "auto.yaml")]) != 0
    out = capsys.readouterr()
    assert "closed and released" not in out.out and "E402" in out.err and "--simulate" in out.err
    with pytest.raises(NoGpio):
        pins.make_pin_factory("auto", fallback_to_mock=False)
    assert _cli(tmp_path, ["flaps", "close-all", "--simulate"], CLI_BINS) == 0  # the desktop way still works
