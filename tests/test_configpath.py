"""Config file selection: boot partition first, then /etc, then the checkout."""

from pathlib import Path

import pytest

from kiosk.appliance import configpath as configpath
from kiosk.config import load_config
from kiosk.appliance.configpath import default_config_path, resolve_config_arg
from kiosk.errors import ConfigError


@pytest.fixture
def places(tmp_path):
    boot = tmp_path / "boot" / "firmware" / "kiosk.yaml"
    etc = tmp_path / "etc" / "kiosk" / "config.yaml"
    local = tmp_path / "checkout" / "config.yaml"
    for p in (boot, etc, local):
        p.parent.mkdir(parents=True)
    return boot, etc, local


def test_the_defaults_are_the_appliance_paths():
    assert configpath.DEFAULT_CANDIDATES == (
        Path("/boot/firmware/kiosk.yaml"),
        Path("/etc/kiosk/config.yaml"),
        Path("config.yaml"),
    )


def test_order_of_preference(places):
    boot, etc, local = places
    cands = (boot, etc, local)
    local.write_text("x")
    assert default_config_path(cands, env={}) == local
    etc.write_text("x")
    assert default_config_path(cands, env={}) == etc
    boot.write_text("x")
    assert default_config_path(cands, env={}) == boot


def test_a_broken_boot_file_is_still_chosen_and_its_error_names_the_key(places):
    """Never a silent fallback to the factory file: the technician must see the mistake."""
    boot, etc, local = places
    etc.write_text((Path(__file__).parents[1] / "config.yaml").read_text())
    boot.write_text("camera:\n  fps: 1000\n")
    chosen = default_config_path((boot, etc, local), env={})
    assert chosen == boot
    with pytest.raises(ConfigError) as e:
        load_config(chosen, check_model=False)
    assert any(p.startswith("camera.fps") for p in e.value.problems)


def test_nothing_found_names_every_place(places):
    boot, etc, local = places
    # As a parser default it never fails (a CLI builds its parser before it knows the command) ...
    assert default_config_path((boot, etc, local), env={}) == local
    # ... but resolving "use the usual places" says where it looked.
    for value in (None, "auto"):
        with pytest.raises(ConfigError) as e:
            resolve_config_arg(value, candidates=(boot, etc, local), env={})
        msg = e.value.problems[0]
        assert str(boot) in msg and str(etc) in msg and str(local) in msg


def test_environment_override(places, tmp_path):
    boot, etc, local = places
    boot.write_text("x")
    assert default_config_path((boot, etc, local), env={"KIOSK_CONFIG": "/srv/k.yaml"}) == Path("/srv/k.yaml")
    assert default_config_path((boot, etc, local), env={"KIOSK_CONFIG": "auto"}) == boot
    # an override that does not exist is returned as is: load_config then names it
    assert resolve_config_arg(None, candidates=(tmp_path / "x",), env={"KIOSK_CONFIG": "/nope.yaml"}) == Path("/nope.yaml")


def test_resolve_config_arg(places):
    boot, etc, local = places
    etc.write_text("x")
    kw = dict(candidates=(boot, etc, local), env={})
    assert resolve_config_arg(None, **kw) == etc
    assert resolve_config_arg("auto", **kw) == etc
    assert resolve_config_arg("", **kw) == etc
    assert resolve_config_arg("my.yaml", **kw) == Path("my.yaml")
