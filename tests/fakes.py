"""Test doubles shared by several test modules (real backends stay real; these stand in for wiring)."""

from __future__ import annotations

from kiosk.devices.front import NullHardware
from kiosk.view import Fault


class FakeHardware(NullHardware):
    """Records flap commands; an item lands ``drop_after`` frames after an open."""

    def __init__(self, drop_after=15, grams=180.0):
        self.log, self.open = [], None
        self.drop_after, self.grams, self.frames_open = drop_after, grams, 0
        self.fault_list: list[Fault] = []
        self.refused: set[str] = set()

    def open_flap(self, bin_id):
        assert self.open is None, "two flaps open"
        self.open, self.frames_open = bin_id, 0
        self.log.append(("open", bin_id))
        return True

    def close_flap(self, bin_id):
        if self.open == bin_id:
            self.open = None
            self.log.append(("close", bin_id))

    def close_all(self):
        if self.open:
            self.close_flap(self.open)

    def poll(self, now):
        if self.open:
            self.frames_open += 1

    def drops(self):
        if self.open and self.drop_after and self.frames_open == self.drop_after:
            return [(self.open, self.grams)]
        return []

    def refused_bins(self):
        return set(self.refused)

    def faults(self):
        return list(self.fault_list)


def run_hardware_cli(tmp_path, argv, bins):
    """``kiosk flaps/scale ...`` in-process, on a config with ``bins`` (mock pins) written to ``tmp_path``."""
    import argparse

    from kiosk.appliance import hardware_cli
    from tests.conftest_hardware import minimal_config_dict

    cfg = tmp_path / "config.yaml"
    cfg.write_text(dump_yaml(minimal_config_dict(str(tmp_path / "data"), bins)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="config.yaml")
    hardware_cli.register(ap.add_subparsers(dest="command"))
    args = ap.parse_args(["--config", str(cfg), *argv])
    return args.func(args)


def dump_yaml(data) -> str:
    """YAML as a technician writes it: values written out, never ``&anchor``/``*alias`` (the kiosk refuses those)."""
    import yaml

    class Plain(yaml.SafeDumper):
        def ignore_aliases(self, data):
            return True

    return yaml.dump(data, Dumper=Plain, allow_unicode=True, sort_keys=False)
