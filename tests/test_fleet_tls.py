"""fleet.tls files the kiosk cannot load: E603 naming the key in kiosk.yaml, on the service screen and in kiosk doctor.

No broker: the files are refused before anything is asked of one (tests/test_fleet.py has the broker's side).
"""

from __future__ import annotations

import shutil
import subprocess
from types import SimpleNamespace as NS

import pytest

from kiosk.config import FleetConfig, FleetTlsConfig
from tests.broker import make_certs

GARBAGE_PEM = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (it makes the test certificates)")
    d = tmp_path_factory.mktemp("certs")
    c = make_certs(d)
    subprocess.run(["openssl", "rsa", "-in", str(c["client_key"]), "-aes256", "-passout", "pass:secret",
                    "-out", str(d / "encrypted.key")], check=True, capture_output=True)
    c["encrypted_key"] = d / "encrypted.key"
    garbage = d / "garbage.pem"
    garbage.write_text(GARBAGE_PEM)
    c["garbage"] = garbage
    for f in d.iterdir():
        f.chmod(0o600)  # kiosk doctor wants the key the kiosk's alone before it looks inside
    return c


def fleet(tls: FleetTlsConfig) -> FleetConfig:
    return FleetConfig(enabled=True, host="127.0.0.1", port=1, tls=tls, site_id="kiosk-7", topic_prefix="city")


CASES = {  # fleet.tls as written -> the line's start, and what it says
    "garbage CA": (dict(ca_file="garbage"), "fleet.tls.ca_file: ", "is not a PEM certificate"),
    "garbage certificate": (dict(ca_file="ca", cert_file="garbage", key_file="client_key"),
                            "fleet.tls.cert_file: ", "is not a PEM certificate"),
    "garbage key": (dict(ca_file="ca", cert_file="client_cert", key_file="garbage"),
                    "fleet.tls.key_file: ", "is not a PEM private key"),
    "another certificate's key": (dict(ca_file="ca", cert_file="client_cert", key_file="key"),
                                  "fleet.tls.key_file: ", "does not hold the key of the certificate"),
    "no key at all": (dict(ca_file="ca", cert_file="client_cert"),
                      "fleet.tls.cert_file: ", "holds no private key and fleet.tls.key_file is not set"),
    "an encrypted key": (dict(ca_file="ca", cert_file="client_cert", key_file="encrypted_key"),
                         "fleet.tls.key_file: ", "the key is encrypted"),
}


def tls_config(certs, files: dict) -> FleetTlsConfig:
    return FleetTlsConfig(**{k: str(certs[v]) for k, v in files.items()})


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_tls_file_that_does_not_load_is_e603_naming_its_key(certs, case):
    from kiosk.fleet.publisher import FleetFileError, tls_context, tls_files

    files, starts, says = CASES[case]
    with pytest.raises(FleetFileError) as e:
        tls_context(tls_files(tls_config(certs, files)))
    assert e.value.code == "E603"
    assert str(e.value).startswith(starts) and says in str(e.value), str(e.value)
    assert "_ssl.c" not in str(e.value)


def test_the_good_files_load(certs):
    from kiosk.fleet.publisher import tls_context, tls_files

    tls = tls_config(certs, dict(ca_file="ca", cert_file="client_cert", key_file="client_key"))
    assert tls_context(tls_files(tls)) is not None


def test_the_running_kiosk_and_doctor_say_e603_for_a_garbage_pem(tmp_path, certs):
    """Before: the service screen said "fleet: [SSL] PEM lib (_ssl.c:3905)", kiosk doctor "SSLError: ..."."""
    from kiosk.appliance.doctor import check_fleet
    from kiosk.appliance.eventlog import EventLog
    from kiosk.fleet.publisher import FleetPublisher

    cfg = fleet(tls_config(certs, dict(ca_file="ca", cert_file="garbage", key_file="client_key")))
    log = EventLog(tmp_path / "events.db")
    pub = FleetPublisher(cfg, log, lambda: NS(faults=(), fill={}, refused=frozenset()), software="0.1.0")
    try:
        (fault,) = pub.faults()
        assert fault.code == "E603"
        assert fault.message.startswith(f"fleet: fleet.tls.cert_file: {certs['garbage']} is not a PEM certificate (")
    finally:
        pub.close()
        log.close()
    ok, detail = check_fleet(NS(fleet=cfg, data_dir=tmp_path, resolve=lambda p: tmp_path / p))
    assert ok is False
    assert detail.startswith(f"[E603] fleet.tls.cert_file: {certs['garbage']} is not a PEM certificate ("), detail


def test_fleet_status_names_a_bad_tls_file_instead_of_a_traceback(tmp_path, capsys):
    """kiosk fleet status --ca/--cert/--key go through the kiosk's own TLS checks (E603 naming the file)."""
    from kiosk.cli import main as cli_main

    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    assert cli_main(["fleet", "status", "--broker", "127.0.0.1:1", "--ca", str(bad)]) != 0
    err = capsys.readouterr().err
    assert "E603" in err and str(bad) in err and "Traceback" not in err
    assert cli_main(["fleet", "status", "--broker", "127.0.0.1:1", "--ca", str(tmp_path / "gone.pem")]) != 0
    assert "not found" in capsys.readouterr().err
