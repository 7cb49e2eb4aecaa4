"""Technician sub-commands for flaps and scales (``kiosk flaps ...``, ``kiosk scale ...``).

``register(subparsers)`` adds them to the top-level parser; each handler
takes the parsed args and returns an exit code. Errors are ``KioskError``s
and propagate: the top-level CLI prints ``error: ...`` and exits 1.

- ``kiosk flaps close-all``: drive every flap closed, then release the pins.
  For systemd's ``ExecStopPost=``, so the flaps close even if the kiosk was
  killed without a chance to clean up.
- ``kiosk flaps test BIN``: open one flap, close it, check its switch.
- ``kiosk flaps reset BIN``: clear a bin's flap lockout and "full" flag (both
  kept on the data partition across restarts), as the service screen's Reset
  does; a running kiosk picks it up within a second. Needs no pins, so it
  works while the kiosk runs.
- ``kiosk scale tare [BIN]``: zero empty bins (all bins with a scale if no BIN).
- ``kiosk scale calibrate BIN --known-mass GRAMS``: counts per gram from a
  known mass on a tared bin.

Tare and calibrate refuse to run while readings are unstable or faulty.
They need the GPIO pins, so stop the kiosk first (or use the service screen,
which calls the same ``ScaleBank.tare``/``calibrate`` in-process).
``--simulate`` runs any of them on mock pins with simulated chips, writing
``calibration-simulated.json``, never the real calibration.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack, closing

from kiosk.errors import ConfigError, HardwareError

FLAP_TEST_OPEN_S = 1.5


def _add_common(p) -> None:
    # SUPPRESS: a --config given to a parent parser is not overwritten by this one's default
    from kiosk.appliance.configpath import CONFIG_HELP

    p.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE", help=CONFIG_HELP)
    p.add_argument("--simulate", action="store_true",
                   help="use simulated pins and devices (desktop; never touches real GPIO or the real calibration)")


def register(subparsers) -> None:
    flaps = subparsers.add_parser("flaps", help="bin flaps: close all, test one")
    fsub = flaps.add_subparsers(dest="flaps_command", metavar="COMMAND")
    fsub.required = True
    p = fsub.add_parser("close-all", help="drive every flap closed, then release the pins (systemd ExecStopPost=)")
    _add_common(p)
    p.set_defaults(func=cmd_flaps_close_all)
    p = fsub.add_parser("test", help="open and close one flap (technician check)")
    p.add_argument("bin", metavar="BIN", help="bin id, as in the config")
    p.add_argument("--open-s", type=float, default=FLAP_TEST_OPEN_S, help="how long to hold it open (seconds)")
    _add_common(p)
    p.set_defaults(func=cmd_flaps_test)
    p = fsub.add_parser("reset", help="clear a bin's flap lockout and full flag, as the service screen's Reset (works while the kiosk runs)")
    p.add_argument("bin", metavar="BIN", help="bin id, as in the config")
    _add_common(p)
    p.set_defaults(func=cmd_flaps_reset)

    scale = subparsers.add_parser("scale", help="load cells: tare, calibrate")
    ssub = scale.add_subparsers(dest="scale_command", metavar="COMMAND")
    ssub.required = True
    p = ssub.add_parser("tare", help="zero the scale of an empty bin (every bin with a scale if BIN is left out)")
    p.add_argument("bin", metavar="BIN", nargs="?", help="bin id (default: all bins with a scale)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for stable readings")
    _add_common(p)
    p.set_defaults(func=cmd_scale_tare)
    p = ssub.add_parser("calibrate", help="calibrate a tared bin with a known mass on it")
    p.add_argument("bin", metavar="BIN", help="bin id")
    p.add_argument("--known-mass", type=float, required=True, metavar="GRAMS", help="the mass on the bin, in grams")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for stable readings")
    _add_common(p)
    p.set_defaults(func=cmd_scale_calibrate)


# --------------------------------------------------------------------------
def _config(args):
    from kiosk.config import load_config

    from kiosk.appliance.configpath import resolve_config_arg

    # None/"auto": the usual places; ConfigError naming them all
    return load_config(resolve_config_arg(getattr(args, "config", None)), check_model=False)


def _devices(cfg, args, stack: ExitStack):
    """(pin factory, simulation or None): mock pins with simulated chips for --simulate, else the config's pins.

    The simulation is closed by ``stack``, after the devices entered later.
    """
    if getattr(args, "simulate", False):
        from kiosk.devices.simulation import Simulation

        sim = stack.enter_context(Simulation())
        return sim.pin_factory, sim
    from kiosk.devices.pins import make_pin_factory

    return make_pin_factory(cfg.gpio.pin_factory, fallback_to_mock=False), None


def _bin(cfg, bin_id: str):
    try:
        return cfg.bin(bin_id)
    except KeyError:
        raise ConfigError([f"unknown bin '{bin_id}' (bins are {', '.join(b.id for b in cfg.bins)})"]) from None


def _close_all_pins(args):
    """The flaps to close: the last good start's pin map, else the config file's flap sections.

    Never the whole config: after a crash, a typo or a missing model file
    made while the kiosk ran must not leave a flap pin undriven. A --config
    or --simulate given by hand means that file.
    """
    from kiosk.devices import pinmap
    from kiosk.appliance.configpath import resolve_config_arg

    by_hand = getattr(args, "config", None) is not None or getattr(args, "simulate", False)
    if not by_hand:
        try:
            kept = pinmap.load_last_good()
        except ConfigError as e:
            print(f"warning: [{e.code}] {e}; using the config file's flap sections", file=sys.stderr, flush=True)
            kept = None
        if kept is not None:
            return kept
    return pinmap.from_config_file(resolve_config_arg(getattr(args, "config", None)))


def cmd_flaps_close_all(args) -> int:
    """Constructing the bank drives every flap closed; closing it waits, then releases."""
    from kiosk.devices.hardware import build_flaps

    from kiosk.actuators import FlapJammed

    target = _close_all_pins(args)
    with ExitStack() as stack:
        if getattr(args, "simulate", False):
            from kiosk.devices.simulation import Simulation

            pins, sim = None, stack.enter_context(Simulation())
        else:
            from kiosk.devices.pins import make_pin_factory

            pins, sim = make_pin_factory(target.pin_factory, fallback_to_mock=False), None
        bank = stack.enter_context(closing(build_flaps(target.bins, pins, simulation=sim, watchdog_s=None)))
        names = list(bank.flaps)
        # read the closed switches, but never poll(): a jam retry would open a flap
        flaps = [f for f in bank.flaps.values() if f.has_switch]
        deadline = time.monotonic() + max((f.cfg.close_check_s for f in flaps), default=0.0)
        while any(f.switch_closed() is False for f in flaps) and time.monotonic() < deadline:
            time.sleep(0.05)
        not_closed = [f.bin_id for f in flaps if f.switch_closed() is False]
    print(f"flaps closed and released: {', '.join(names) if names else '(no bin has a flap)'} "
          f"(pins from the {target.source})")
    if target.problems:
        raise ConfigError([*target.problems, "the other flaps were driven closed"], None)
    if not_closed:
        raise FlapJammed(f"driven closed, but the closed switch of {', '.join(not_closed)} does not read closed: check it")
    return 0


def cmd_flaps_test(args) -> int:
    from kiosk.actuators import FlapState
    from kiosk.devices.hardware import build_flaps
    from kiosk.appliance.lifecycle import StopFlag, graceful_signals

    cfg = _config(args)
    b = _bin(cfg, args.bin)
    if b.flap is None:
        raise HardwareError(f"bin {b.id} has no flap to test")
    stop = StopFlag()
    with ExitStack() as stack:
        pins, sim = _devices(cfg, args, stack)
        bank = stack.enter_context(closing(build_flaps(cfg.bins, pins, simulation=sim)))
        with graceful_signals(stop):
            # start-up check of the closed switches (every flap: another one not yet
            # confirmed closed blocks this one from opening)
            settle = time.monotonic() + max(f.cfg.close_check_s for f in bank.flaps.values()) * 2 + bank.retry_open_s + 1
            while (any(bank.state(x) in (FlapState.CLOSING, FlapState.RETRY) for x in bank.flaps)
                   and time.monotonic() < settle and not stop):
                time.sleep(0.05)
            if not bank.open(b.id):
                st = bank.state(b.id)
                raise HardwareError(f"bin {b.id}: the flap refused to open (state {st.value})")
            print(f"{b.id}: open ({b.flap.type} on GPIO{b.flap.pin})", flush=True)
            stop.wait(max(0.0, args.open_s))
            bank.close_flap(b.id)
            deadline = time.monotonic() + 2 * b.flap.close_check_s + bank.retry_open_s + 1.0
            while bank.state(b.id) not in (FlapState.CLOSED, FlapState.LOCKED_OUT) and time.monotonic() < deadline:
                time.sleep(0.05)  # the watchdog thread verifies the switch and retries
            st = bank.state(b.id)
        faults = list(bank.faults)
    if st is FlapState.LOCKED_OUT:
        raise HardwareError(faults[-1].message if faults else f"bin {b.id}: flap jammed")
    if st is not FlapState.CLOSED:
        raise HardwareError(f"bin {b.id}: flap did not confirm closed (state {st.value})")
    how = "switch confirms closed" if b.flap.closed_switch_pin is not None else "no closed switch fitted: check by eye"
    print(f"{b.id}: closed ({how})")
    return 0


def cmd_flaps_reset(args) -> int:
    from kiosk.devices.holds import HoldStore, holds_path

    cfg = _config(args)
    b = _bin(cfg, args.bin)
    store = HoldStore(holds_path(cfg.data_dir, simulated=bool(getattr(args, "simulate", False))))
    holds = store.load()
    cleared = [what for what, kept in (("flap lockout", holds.locked_out), ("full flag", holds.full))
               if kept.pop(b.id, None) is not None]
    if not cleared:
        print(f"{b.id}: nothing to reset (not locked out, not marked full)")
        return 0
    store.save(holds)
    print(f"{b.id}: {' and '.join(cleared)} cleared; the kiosk applies it at its next start, or within a second "
          "if it is running (a jam still there locks the bin out again; a bin still full is weighed full again).")
    return 0


def _scales(cfg, args, bins, stack: ExitStack):
    """The scale bank for ``bins`` (closed by ``stack``) and the simulation, if any."""
    from kiosk.devices.hardware import build_scales

    pins, sim = _devices(cfg, args, stack)
    return stack.enter_context(closing(build_scales(cfg, pins, simulation=sim, bins=bins))), sim


def cmd_scale_tare(args) -> int:
    from kiosk.weighing.calibration import CalibrationError
    from kiosk.errors import KioskError

    cfg = _config(args)
    if args.bin:
        b = _bin(cfg, args.bin)
        if b.scale.type == "none":
            raise CalibrationError(f"bin {b.id} has no scale (scale.type is none)")
        targets = [b.id]
    else:
        targets = [b.id for b in cfg.bins if b.scale.type != "none"]
        if not targets:
            raise CalibrationError("no bin has a scale")
    done, failed = [], []
    with ExitStack() as stack:
        bank, _ = _scales(cfg, args, targets, stack)
        for bin_id in targets:
            try:
                cal = bank.tare(bin_id, timeout_s=args.timeout)
            except KioskError as e:
                if len(targets) == 1:
                    raise
                failed.append((bin_id, e))
                print(f"{bin_id}: not tared [{e.code}] {e}", file=sys.stderr, flush=True)  # one line per bin
                continue
            done.append(bin_id)
            print(f"{bin_id}: tared (zero at raw {cal.offset:.0f})", flush=True)
    if failed:
        raise CalibrationError(f"tared {', '.join(done) or 'nothing'}; not tared: {', '.join(b for b, _ in failed)}",
                               code=failed[0][1].code)
    print(f"saved to {bank.calibration.path}")
    return 0


def cmd_scale_calibrate(args) -> int:
    from kiosk.weighing.calibration import CalibrationError

    cfg = _config(args)
    b = _bin(cfg, args.bin)
    if b.scale.type == "none":
        raise CalibrationError(f"bin {b.id} has no scale (scale.type is none)")
    with ExitStack() as stack:
        bank, sim = _scales(cfg, args, [b.id], stack)
        if sim is not None:
            sim.models[b.id].grams += args.known_mass  # simulated technician puts the mass on
            print(f"simulated: {args.known_mass:g} g put on bin {b.id}", flush=True)
        cal = bank.calibrate(b.id, args.known_mass, timeout_s=args.timeout)
    print(f"{b.id}: calibrated, {cal.scale:.3f} counts per gram; saved to {bank.calibration.path}")
    return 0


__all__ = ["register", "cmd_flaps_close_all", "cmd_flaps_test", "cmd_flaps_reset", "cmd_scale_tare",
           "cmd_scale_calibrate"]
