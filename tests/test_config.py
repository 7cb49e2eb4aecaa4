import json
from pathlib import Path

import pytest
import yaml

from kiosk.cli import main as cli_main
from kiosk.config import ConfigError, hash_pin, load_config, parse_config, verify_pin


def write(tmp_path, data, name="c.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, allow_unicode=True) if not isinstance(data, str) else data, encoding="utf-8")
    return p


def problems_of(tmp_path, data, check_model=False):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, data), check_model=check_model)
    return e.value.problems


def test_repo_config_is_valid(repo):
    cfg = load_config(repo / "config.yaml", check_model=False)
    assert {b.id for b in cfg.bins} == {"paper", "packaging", "glass", "residual"}
    assert cfg.rules["glass"].bin == "glass"
    assert cfg.bin("paper").colour == "#1A66CC"


def test_unknown_key_is_named_with_its_path(tmp_path, config_dict):
    config_dict["camera"]["bakend"] = "opencv"
    config_dict["bins"][1]["flap"]["speed"] = 3
    probs = problems_of(tmp_path, config_dict)
    assert any(p.startswith("camera.bakend: unknown key") for p in probs)
    assert any(p.startswith("bins[packaging].flap.speed: unknown key") for p in probs)


def test_bounds_and_enums(tmp_path, config_dict):
    config_dict["decision"]["threshold"] = 1.5
    config_dict["camera"]["backend"] = "kinect"
    config_dict["bins"][0]["colour"] = "blue"
    probs = problems_of(tmp_path, config_dict)
    assert any(p.startswith("decision.threshold:") and "1.5" in p for p in probs)
    assert any(p.startswith("camera.backend:") and "kinect" in p for p in probs)
    assert any(p.startswith("bins[paper].colour:") for p in probs)


def test_cross_checks_gpio_bins_languages(tmp_path, config_dict):
    config_dict["bins"][2]["flap"]["pin"] = config_dict["bins"][0]["flap"]["pin"]  # GPIO12 twice
    config_dict["rules"]["glass"]["bin"] = "bottles"
    del config_dict["rules"]["paper"]["guidance"]["zh-CN"]
    config_dict["decision"]["min_votes"] = 9
    probs = problems_of(tmp_path, config_dict)
    assert "bins[glass].flap.pin: GPIO12 is already used by bins[paper].flap.pin" in probs
    assert any(p.startswith("rules.glass.bin: unknown bin 'bottles'") for p in probs)
    assert "rules.paper.guidance: no guidance in language 'zh-CN'" in probs
    assert any(p.startswith("decision.min_votes:") for p in probs)


def test_every_model_class_needs_a_rule(tmp_path, config_dict, tiny_model):
    config_dict["model"]["path"] = str(tiny_model)
    del config_dict["rules"]["metal"]
    probs = problems_of(tmp_path, config_dict, check_model=True)
    assert "rules: class 'metal' of the model has no rule (which bin?)" in probs


def test_missing_model_file_is_a_config_problem(tmp_path, config_dict):
    config_dict["model"]["path"] = "models/nope.onnx"
    probs = problems_of(tmp_path, config_dict, check_model=True)
    assert len(probs) == 1 and probs[0].startswith("model.path: model file not found")


def test_malformed_yaml_reports_the_line(tmp_path):
    p = write(tmp_path, "camera:\n  backend: auto\n  size: [640, 480\nmodel:\n  threads: 2\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, check_model=False)
    assert "line" in e.value.problems[0] and "YAML syntax error" in e.value.problems[0]


def test_missing_empty_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="empty"):
        load_config(write(tmp_path, ""))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_yaml_is_never_executed(tmp_path):
    p = write(tmp_path, "camera: !!python/object/apply:os.system ['touch /tmp/kiosk-pwned']\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(p)


def test_check_config_cli(tmp_path, config_dict, tiny_model, capsys):
    config_dict["model"]["path"] = str(tiny_model)
    good = write(tmp_path, config_dict, "good.yaml")
    assert cli_main(["check-config", str(good)]) == 0
    assert capsys.readouterr().out.strip() == "OK"
    config_dict["presence"]["min_area"] = 0.5
    config_dict["presence"]["max_area"] = 0.4
    config_dict["ui"]["languages"] = ["en"]
    config_dict["ui"]["default_language"] = "fr"
    bad = write(tmp_path, config_dict, "bad.yaml")
    assert cli_main(["check-config", str(bad)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("presence.min_area: ") for line in out)
    assert any(line.startswith("ui.default_language: ") for line in out)
    assert cli_main(["check-config", str(tmp_path / "missing.yaml")]) == 1
    assert "config file not found" in capsys.readouterr().out


def test_relative_paths_follow_the_config_file(tmp_path, config_dict):
    cfg = parse_config(config_dict, base_dir=tmp_path, check_model=False)
    assert cfg.model_path == tmp_path / "models" / "kiosk-lite0-int8.onnx"


def test_pin_hash_roundtrip_and_format(tmp_path, config_dict):
    h = hash_pin("432187", salt=b"0123456789abcdef", iterations=1000)
    assert verify_pin("432187", h) and not verify_pin("432188", h)
    config_dict["service"]["pin_hash"] = h
    parse_config(config_dict, base_dir=tmp_path, check_model=False)
    config_dict["service"]["pin_hash"] = "4321"  # a plain PIN is refused
    with pytest.raises(ConfigError, match="service.pin_hash"):
        parse_config(config_dict, base_dir=tmp_path, check_model=False)
    for short in ("12", "4321", "12345"):  # new hashes: 6 digits at least
        with pytest.raises(ValueError, match="6 to 12 digits"):
            hash_pin(short)


def test_card_must_parse_for_class_check(tmp_path, config_dict, tiny_model):
    tiny_model.with_suffix(".json").write_text("{not json")
    config_dict["model"]["path"] = str(tiny_model)
    probs = problems_of(tmp_path, config_dict, check_model=True)
    assert probs[0].startswith("model.path: model card tiny.json: not valid JSON")  # ModelCard.load says so


def test_json_round_trip_of_defaults(tmp_path, config_dict):
    cfg = parse_config(config_dict, base_dir=tmp_path, check_model=False)
    again = parse_config(json.loads(cfg.model_dump_json(exclude={"base_dir"})), base_dir=tmp_path, check_model=False)
    assert again == cfg


def test_clahe_is_one_type_validated_in_place(cfg_with, tmp_path, config_dict):
    """enhance.clahe is the preprocessing's own ClaheSettings: bounds and unknown keys still checked."""
    from kiosk.config import parse_config
    from kiosk.errors import ConfigError
    from kiosk.preprocess import ClaheSettings

    cfg = cfg_with({"enhance.clahe.clip_limit": 3.0})
    assert isinstance(cfg.enhance.clahe, ClaheSettings) and cfg.enhance.clahe.clip_limit == 3.0
    for bad, words in (({"bogus": 1}, "unknown key"), ({"tile_grid": 0}, "greater than or equal to 2")):
        data = dict(config_dict, enhance={"clahe": bad})
        with pytest.raises(ConfigError) as e:
            parse_config(data, base_dir=tmp_path, check_model=False)
        assert any(p.startswith("enhance.clahe.") and words in p for p in e.value.problems), e.value.problems


def test_yaml_errors_name_the_line_to_fix_not_the_line_after(tmp_path):
    p = tmp_path / "k.yaml"
    p.write_text("camera:\n  fps: 10\n  size [640, 480]\nui:\n  fullscreen: false\n")  # line 3 lacks its colon
    with pytest.raises(ConfigError) as e:
        load_config(p, check_model=False)
    assert e.value.problems[0].startswith("YAML syntax error at line 3 "), e.value.problems


def test_check_config_passes_the_images_own_kiosk_yaml_on_a_laptop(tmp_path, repo, capsys):
    """The SD card's kiosk.yaml names /opt/kiosk/models/...: absent on a laptop, and not a mistake there."""
    import subprocess
    import sys

    if Path("/opt/kiosk/models/kiosk-lite0-int8.onnx").exists():
        pytest.skip("this machine is a kiosk (the model is at /opt/kiosk/models): nothing to miss here")

    made = subprocess.run([sys.executable, str(repo / "deploy" / "image_config.py"), str(repo / "config.yaml"),
                           "--data-dir", "/var/lib/kiosk", "--model", "/opt/kiosk/models/kiosk-lite0-int8.onnx"],
                          capture_output=True, text=True, check=True).stdout
    card = tmp_path / "bootfs" / "kiosk.yaml"  # a copy outside the repository
    card.parent.mkdir()
    card.write_text(made)
    assert cli_main(["check-config", str(card)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK (model not checked here: /opt/kiosk/models/kiosk-lite0-int8.onnx")
    card.write_text(made.replace("fps: ", "fps: -", 1))  # a real mistake still fails
    assert cli_main(["check-config", str(card)]) == 1
    assert "camera.fps" in capsys.readouterr().out


def test_a_bin_without_a_usable_id_is_named_by_position(tmp_path, config_dict):
    config_dict["bins"][1]["id"] = ""  # an empty id: the error cannot use it
    config_dict["bins"][3]["colour"] = "blue-ish"
    with pytest.raises(ConfigError) as e:
        parse_config(config_dict, base_dir=tmp_path, check_model=False)
    probs = e.value.problems
    assert any(p.startswith("bins.1.id") for p in probs) and any(p.startswith("bins[residual].colour") for p in probs)


@pytest.mark.parametrize("iterations", ["99999999999999999999", "2000000000", "999"])
def test_a_pin_hash_with_an_unbounded_iteration_count_is_a_config_error(tmp_path, config_dict, iterations):
    """A crafted count overflowed on the pad (a crash, then a reboot) or froze it for minutes."""
    good = hash_pin("246813", iterations=1000)
    config_dict.setdefault("service", {})["pin_hash"] = good.replace("$1000$", f"${iterations}$")
    with pytest.raises(ConfigError) as e:
        parse_config(config_dict, base_dir=tmp_path, check_model=False)
    assert any(p.startswith("service.pin_hash") for p in e.value.problems), e.value.problems
    assert verify_pin("246813", config_dict["service"]["pin_hash"]) is False  # and the pad never runs it
    assert verify_pin("246813", good) and not verify_pin("246813", "pbkdf2_sha256$x$zz$00")


def test_check_config_keeps_the_fleet_secrets_off_the_card_and_private(tmp_path, config_dict, tiny_model, capsys):
    """fleet.password_file (and fleet.tls.key_file) are checked as service.pin_hash_file is: one check, one line.

    A relative password_file resolves next to kiosk.yaml: on a kiosk the FAT boot partition, which anyone
    holding the card reads; written by a desktop editor it is mode 644."""
    config_dict["model"]["path"] = str(tiny_model)
    config_dict["fleet"] = {"enabled": True, "host": "mqtt.city.example", "site_id": "kiosk-7", "username": "kiosk-7",
                            "password_file": "fleet-password",
                            "tls": {"cert_file": "client.crt", "key_file": "client.key"}}
    path = write(tmp_path, config_dict, "kiosk.yaml")
    assert cli_main(["check-config", str(path)]) == 0  # on a laptop, without the kiosk's files: a note each
    out = capsys.readouterr().out
    assert f"fleet.password_file {tmp_path / 'fleet-password'} is not on this machine" in out
    assert "fleet.tls.key_file" in out
    for name in ("fleet-password", "client.key"):
        (tmp_path / name).write_text("secret\n")
        (tmp_path / name).chmod(0o644)
    assert cli_main(["check-config", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"fleet.password_file: {tmp_path / 'fleet-password'} is mode 644: others can read the broker password " \
           f"(chmod 600 {tmp_path / 'fleet-password'})" in out
    assert any(line.startswith("fleet.tls.key_file: ") and "chmod 600" in line for line in out)
    for name in ("fleet-password", "client.key"):
        (tmp_path / name).chmod(0o600)
    assert cli_main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "OK"


def test_a_secret_on_a_fat_partition_is_refused_whatever_its_mode(tmp_path):
    """FAT keeps no modes (a boot partition mounted with umask=077 shows 600): where it lives is checked first."""
    from kiosk.config import secret_file_problem

    secret = tmp_path / "boot" / "fleet-password"
    secret.parent.mkdir()
    secret.write_text("horse\n")
    secret.chmod(0o600)
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/root / ext4 rw 0 0\n/dev/mmcblk0p1 {secret.parent} vfat rw,umask=077 0 0\n"
                      f"/dev/mmcblk0p3 {tmp_path / 'bootx'} ext4 rw 0 0\n")
    problem = secret_file_problem("fleet.password_file", secret, "the broker password", mounts=mounts)
    assert problem.startswith(f"fleet.password_file: {secret} is on a FAT partition ({secret.parent}")
    assert "move it to /var/lib/kiosk" in problem
    mounts.write_text(f"/dev/root / ext4 rw 0 0\n/dev/mmcblk0p1 {secret.parent}x vfat rw 0 0\n")  # a sibling path
    assert secret_file_problem("fleet.password_file", secret, "the broker password", mounts=mounts) is None
