"""Crafted config files are config errors, fast: no alias bombs, no duplicate sections, no stack exhaustion."""

import pytest

from kiosk.config import load_config
from kiosk.configfile import MAX_CONFIG_BYTES
from kiosk.errors import ConfigError


def problems(tmp_path, text: str):
    p = tmp_path / "kiosk.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p, check_model=False)
    return e.value.problems


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
    (p,) = problems(tmp_path, "camera:\n  backend: synthetic\n" + bomb)
    assert "aliases (*name) are not allowed" in p and p.startswith("YAML syntax error at line 4")


def test_a_second_section_of_the_same_name_is_refused(tmp_path):
    (p,) = problems(tmp_path, "storage:\n  capture_images: false\ncamera:\n  fps: 10\nstorage:\n  capture_images: true\n")
    assert "'storage' appears twice (first at line 1)" in p and "line 5" in p


def test_deep_nesting_is_a_config_error_not_a_crash(tmp_path):
    (p,) = problems(tmp_path, "camera: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested too deeply" in p or "YAML syntax error" in p


def test_a_huge_file_is_refused_without_reading_it(tmp_path):
    with open(tmp_path / "kiosk.yaml", "w") as f:
        f.write("# " + "x" * (MAX_CONFIG_BYTES + 10) + "\n")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "kiosk.yaml", check_model=False)
    assert "a kiosk config is a few KB" in e.value.problems[0]
