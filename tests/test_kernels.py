"""The int8 model computes what its float reference computes, on this CPU and on an AVX2-only one.

"Reference" is the same file with onnxruntime's graph optimisations off (the
QDQ graph computed in float). The AVX2 path is checked under
``qemu-x86_64 -cpu Haswell`` (Debian ``qemu-user``), so a VNNI machine cannot
hide saturating kernels. In CI (``CI=true``) a missing qemu is a failure,
not a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from kiosk.classifier import ModelCard, OnnxClassifier
from kiosk.errors import ModelError
from kiosk.model.sessions import (
    ModelMismatchError,
    check_kernels,
    golden_images,
    golden_inputs,
    inputs_digest,
    make_session,
    run_batch,
)
from kiosk.preprocess import InputSpec, model_input

from tests.conftest import REPO, SHARED_DATA, build_tiny_model

MODEL = REPO / "models" / "kiosk-lite0-int8.onnx"
CARD = json.loads(MODEL.with_suffix(".json").read_text())
QEMU_CPU = "Haswell"  # AVX2, FMA; no AVX-512, no VNNI: onnxruntime's VPMADDUBSW kernels


def qemu():
    exe = shutil.which("qemu-x86_64")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("qemu-x86_64 not installed: CI must check the AVX2 kernels (deploy/test-deps.sh installs qemu-user)")
        pytest.skip("qemu-x86_64 not installed (apt-get install qemu-user)")
    return exe


def logits_under_qemu(model, inputs: np.ndarray, tmp_path, timeout=1500) -> np.ndarray:
    x, y = tmp_path / "inputs.npy", tmp_path / "logits.npy"
    np.save(x, inputs)
    cmd = [qemu(), "-cpu", QEMU_CPU, sys.executable, "-m", "kiosk.model.sessions", "--model", str(model),
           "--inputs", str(x), "--out", str(y)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    return np.load(y)


@pytest.fixture(scope="module")
def val_inputs():
    from kiosk.model.dataset import list_images, read_rgb

    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data/trashnet is not present")
    items, _ = list_images(SHARED_DATA / "val", CARD["classes"])
    spec = OnnxClassifier(MODEL, threads=1).spec
    return np.stack([model_input(read_rgb(p), spec) for p, _ in items]), np.array([c for _, c in items])


@pytest.fixture(scope="module")
def reference_logits(val_inputs):
    return run_batch(make_session(MODEL, 2, optimise=False), val_inputs[0])


def assert_agrees(native: np.ndarray, reference: np.ndarray, labels: np.ndarray, where: str):
    agree = float((native.argmax(1) == reference.argmax(1)).mean())
    top1_native = float((native.argmax(1) == labels).mean())
    top1_ref = float((reference.argmax(1) == labels).mean())
    assert agree >= 0.99, f"{where}: int8 kernels agree with the reference on {agree:.1%} of val"
    assert abs(top1_native - top1_ref) <= 0.005, f"{where}: top-1 {top1_native:.2%} vs reference {top1_ref:.2%}"


# ---- the golden inputs -----------------------------------------------------------------------


def test_golden_inputs_are_the_cards_bit_for_bit():
    check = CARD["self_check"]
    x = golden_inputs(check["seed"], check["count"], ModelCard.from_dict(CARD).spec)  # the card's own size
    assert inputs_digest(x) == check["inputs_sha256"]
    assert np.asarray(check["logits"]).shape == (check["count"], len(CARD["classes"]))


def test_golden_images_differ_by_seed_and_span_the_range():
    a, b = golden_images(0, 4), golden_images(1, 4)
    assert a.shape == (4, 224, 224, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, b)
    assert a.min() == 0 and a.max() == 255  # bright and dark: activations reach the top of their range
    assert len({inputs_digest(img.astype(np.float32)) for img in a}) == 4


# ---- the shipped model, this CPU and an AVX2 one --------------------------------------------


def test_shipped_model_passes_its_self_check_on_this_cpu():
    clf = OnnxClassifier(MODEL, threads=1)
    assert clf.self_check.path == "optimised", clf.self_check.detail
    assert clf.self_check.optimised_diff <= clf.self_check.tolerance


def test_int8_kernels_agree_with_the_reference_on_val_here(val_inputs, reference_logits):
    native = run_batch(make_session(MODEL, 2), val_inputs[0])
    assert_agrees(native, reference_logits, val_inputs[1], "this CPU")


@pytest.mark.slow
def test_int8_kernels_agree_with_the_reference_on_val_on_avx2(val_inputs, reference_logits, tmp_path):
    from kiosk.model.cpuinfo import cpu_info

    if cpu_info().int8_path == "x86-avx2":  # emulating the CPU we are on would only repeat that test, 30x slower
        pytest.skip("this CPU is AVX2-only: the _here test above already ran the AVX2 kernels on val natively")
    avx2 = logits_under_qemu(MODEL, val_inputs[0], tmp_path)
    assert_agrees(avx2, reference_logits, val_inputs[1], f"qemu -cpu {QEMU_CPU} (AVX2, no VNNI)")


# ---- the self-check's decisions ---------------------------------------------------------------


def card_check_for(model, count=4, tolerance=0.1):
    spec = InputSpec(clahe=InputSpec().clahe)
    x = golden_inputs(0, count, spec)
    logits = run_batch(make_session(model, 1, optimise=False), x)
    return {"seed": 0, "count": count, "inputs_sha256": inputs_digest(x), "logits": logits.tolist(),
            "tolerance": tolerance}


def test_self_check_keeps_the_optimised_path_when_it_matches(tiny_model):
    check = card_check_for(tiny_model)
    built = []
    session, result = check_kernels(make_session(tiny_model, 1), lambda: built.append(1), check, InputSpec())
    assert result.path == "optimised" and not result.fallback and not built  # no second session needed


def test_self_check_falls_back_to_the_reference_path_when_the_kernels_disagree(tmp_path, tiny_model):
    # A session that answers differently (other weights) stands in for kernels that compute wrongly.
    other = build_tiny_model(tmp_path / "other.onnx", sharpness=2.0)
    check = card_check_for(tiny_model)
    reference = make_session(tiny_model, 1, optimise=False)
    session, result = check_kernels(make_session(other, 1), lambda: reference, check, InputSpec(), "test CPU")
    assert session is reference and result.fallback
    assert "model computes differently on this CPU (test CPU)" in result.detail
    assert result.optimised_diff > result.tolerance >= result.reference_diff


def test_self_check_refuses_the_model_when_no_path_matches(tmp_path, tiny_model):
    other = build_tiny_model(tmp_path / "other.onnx", sharpness=2.0)
    check = card_check_for(tiny_model)
    with pytest.raises(ModelMismatchError, match="no path matches the card") as e:
        check_kernels(make_session(other, 1), lambda: make_session(other, 1, optimise=False), check, InputSpec())
    assert e.value.code == "E302"


def test_self_check_names_a_card_whose_golden_inputs_do_not_match(tiny_model):
    check = dict(card_check_for(tiny_model), inputs_sha256="0" * 64)
    with pytest.raises(ModelError, match="golden inputs made here differ"):
        check_kernels(make_session(tiny_model, 1), lambda: None, check, InputSpec(), card_name="tiny.json")
    with pytest.raises(ModelError, match="self_check lacks or mangles a field"):
        check_kernels(make_session(tiny_model, 1), lambda: None, {"seed": 0}, InputSpec(), card_name="tiny.json")


def test_classifier_loads_a_card_with_a_self_check_and_reports_it(tiny_model):
    card_file = tiny_model.with_suffix(".json")
    card = json.loads(card_file.read_text())
    card["self_check"] = card_check_for(tiny_model)
    card_file.write_text(json.dumps(card))
    clf = OnnxClassifier(tiny_model, threads=1)
    assert clf.self_check.path == "optimised"
    card["self_check"]["logits"] = (np.asarray(card["self_check"]["logits"]) + 1.0).tolist()
    card_file.write_text(json.dumps(card))
    with pytest.raises(ModelMismatchError):
        OnnxClassifier(tiny_model, threads=1)


# ---- the emulated AVX2 path really is the saturating one -----------------------------------------


def build_saturating_model(path):
    """u8 activations near 255 times int8 weights of 127, pairs summed: VPMADDUBSW clips at 32767."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c_in, c_out = 8, 6
    w = np.full((c_out, c_in, 1, 1), 127, np.int8)
    w[:, 1::2] = 127 - np.arange(c_out)[:, None, None, None] * 20  # classes differ; pairs sum to 27..254 (x 255)
    # channel pairs (0,1), (2,3), (4,5), (6,7) see the same colour, amplified so bright pixels reach u8 255
    expand = np.zeros((c_in, 3, 1, 1), np.float32)
    for j in range(c_in):
        expand[j, (j // 2) % 3] = 4.0
    inits = [
        numpy_helper.from_array(np.array(1 / 255, np.float32), "x_s"), numpy_helper.from_array(np.array(0, np.uint8), "x_z"),
        numpy_helper.from_array(w, "w_q"), numpy_helper.from_array(np.full(c_out, 0.01, np.float32), "w_s"),
        numpy_helper.from_array(np.zeros(c_out, np.int8), "w_z"),
        numpy_helper.from_array(np.array(0.2, np.float32), "y_s"), numpy_helper.from_array(np.array(0, np.uint8), "y_z"),
        numpy_helper.from_array(expand, "expand"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "expand"], ["x8"]),  # 3 colour channels -> 8 (float)
        helper.make_node("QuantizeLinear", ["x8", "x_s", "x_z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["y"]),
        helper.make_node("QuantizeLinear", ["y", "y_s", "y_z"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "y_s", "y_z"], ["yd"]),
        helper.make_node("GlobalAveragePool", ["yd"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(nodes, "saturating", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, c_out])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_the_emulated_avx2_cpu_exposes_saturating_int8_kernels(tmp_path):
    """Guards the guard: under qemu -cpu Haswell a saturating model must disagree with its reference."""
    model = build_saturating_model(tmp_path / "sat.onnx")
    x = golden_inputs(0, 4, InputSpec())
    reference = run_batch(make_session(model, 1, optimise=False), x)
    avx2 = logits_under_qemu(model, x, tmp_path, timeout=600)
    assert np.abs(avx2 - reference).max() > 0.5, "qemu's Haswell did not reach the saturating kernels"


def test_an_emulated_arm64_does_not_claim_the_hosts_x86_flags(tmp_path, monkeypatch):
    """Under qemu-user, /proc/cpuinfo is the x86 host's: figures must not say 'aarch64; avx2'."""
    import platform

    from kiosk.model.cpuinfo import cpu_info

    host = tmp_path / "cpuinfo"
    host.write_text("processor : 0\nmodel name : AMD EPYC\nflags : fpu sse2 avx avx2 fma\n")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    info = cpu_info(host)
    assert info.model == "qemu-user emulated ARM64 on AMD EPYC" and info.kernel_flags == [] and info.int8_path == "arm64"
    arm = tmp_path / "arm"
    arm.write_text("processor : 0\nFeatures : fp asimd asimddp\nCPU part : 0xd0b\n")
    assert cpu_info(arm).kernel_flags == ["asimddp"]  # a real ARM's features are kept
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert cpu_info(host).kernel_flags == ["avx2"]
