import pytest
import yaml

from kiosk.cli import main as cli_main


def write(tmp_path, config_dict, model):
    config_dict["model"]["path"] = str(model)
    config_dict["storage"]["data_dir"] = str(tmp_path / "data")
    config_dict["camera"]["backend"] = "synthetic"
    config_dict["gpio"]["pin_factory"] = "mock"
    p = tmp_path / "k.yaml"
    p.write_text(yaml.safe_dump(config_dict, allow_unicode=True))
    return p


def rows(out):
    return {line.split()[1]: line.split()[0] for line in out.splitlines() if line[:4] in ("PASS", "FAIL", "SKIP")}


def test_doctor_passes_model_camera_disk(tmp_path, config_dict, tiny_model, capsys):
    code = cli_main(["doctor", "--config", str(write(tmp_path, config_dict, tiny_model))])
    r = rows(capsys.readouterr().out)
    assert code == 0, r
    assert r["config"] == r["model"] == r["camera"] == r["disk"] == "PASS"


def test_doctor_fails_on_a_corrupt_model(tmp_path, config_dict, tiny_model, capsys):
    tiny_model.write_bytes(tiny_model.read_bytes() + b"x")
    code = cli_main(["doctor", "--config", str(write(tmp_path, config_dict, tiny_model))])
    out = capsys.readouterr().out
    assert code == 1 and rows(out)["model"] == "FAIL" and "sha256" in out


def test_doctor_with_a_broken_config_says_so(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text("camera: [\n")
    assert cli_main(["doctor", "--config", str(p)]) == 1
    out = capsys.readouterr().out
    assert rows(out)["config"] == "FAIL" and "line" in out


def test_doctor_shows_the_model_self_check(tmp_path, config_dict, tiny_model, capsys):
    """No golden logits: SKIP; golden logits that no path reproduces: the model FAILs with E302's words."""
    import json

    import numpy as np

    from kiosk.model.sessions import golden_inputs, inputs_digest
    from kiosk.preprocess import InputSpec

    config = write(tmp_path, config_dict, tiny_model)
    cli_main(["doctor", "--config", str(config)])
    assert rows(capsys.readouterr().out)["model-kernels"] == "SKIP"

    card_file = tiny_model.with_suffix(".json")
    card = json.loads(card_file.read_text())
    x = golden_inputs(0, 2, InputSpec())
    card["self_check"] = {"seed": 0, "count": 2, "inputs_sha256": inputs_digest(x), "tolerance": 0.1,
                          "logits": (np.full((2, 6), 50.0)).tolist()}
    card_file.write_text(json.dumps(card))
    code = cli_main(["doctor", "--config", str(config)])
    out = capsys.readouterr().out
    r = rows(out)
    assert code == 1 and r["model"] == "FAIL" and "no path matches the card" in out
    assert r["model-kernels"] == "SKIP"


def test_doctor_without_gpio_says_what_is_missing_and_checks_no_pretend_flaps(tmp_path, config_dict, tiny_model,
                                                                              capsys, monkeypatch):
    from kiosk.devices import pins

    try:
        import lgpio  # noqa: F401
        pytest.skip("this machine has lgpio")
    except ImportError:
        pass
    monkeypatch.setattr(pins, "on_raspberry_pi", lambda: False)
    p = write(tmp_path, config_dict, tiny_model)
    p.write_text(p.read_text().replace("pin_factory: mock", "pin_factory: auto"))
    assert cli_main(["doctor", "--config", str(p)]) == 1
    out = capsys.readouterr().out
    r = rows(out)
    assert r["gpio"] == "FAIL" and "no GPIO" in out and "--simulate" in out
    assert r["scales/flaps"] == "SKIP" and not any(k.startswith("flap") and v == "PASS" for k, v in r.items())


def test_doctor_fails_a_fleet_password_or_key_others_can_read(tmp_path, config_dict, tiny_model):
    """The fleet row checks fleet.password_file and fleet.tls.key_file as the service-pin row checks its file,
    before it asks the broker anything: the line names the key and what to do."""
    from kiosk.appliance.doctor import check_fleet
    from kiosk.config import load_config

    config_dict["fleet"] = {"enabled": True, "host": "127.0.0.1", "port": 1, "site_id": "kiosk-7",
                            "username": "kiosk-7", "password_file": "fleet-password",
                            "tls": {"cert_file": "client.crt", "key_file": "client.key"}}
    path = write(tmp_path, config_dict, tiny_model)
    for name in ("fleet-password", "client.crt", "client.key"):
        (tmp_path / name).write_text("x\n")
    (tmp_path / "fleet-password").chmod(0o644)
    (tmp_path / "client.key").chmod(0o600)
    ok, detail = check_fleet(load_config(path, check_model=False))
    assert ok is False and detail.startswith(f"fleet.password_file: {tmp_path / 'fleet-password'} is mode 644: "
                                             f"others can read the broker password (chmod 600 ")
    (tmp_path / "fleet-password").chmod(0o600)
    (tmp_path / "client.key").chmod(0o640)
    ok, detail = check_fleet(load_config(path, check_model=False))
    assert ok is False and detail.startswith("fleet.tls.key_file: ") and "chmod 600" in detail
