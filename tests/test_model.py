"""The shipped model: present, small, int8, consistent with its card, and as accurate as the card says."""

import json

import onnx
import pytest

from kiosk.classifier import OnnxClassifier, sha256_file
from kiosk.config import load_config

from tests.conftest import REPO

MODEL = REPO / "models" / "kiosk-lite0-int8.onnx"
CARD = MODEL.with_suffix(".json")


@pytest.fixture(scope="module")
def card():
    return json.loads(CARD.read_text())


def test_shipped_model_loads_and_matches_its_card(card):
    assert MODEL.stat().st_size <= 6 * 1024 * 1024
    assert sha256_file(MODEL) == card["sha256"]
    clf = OnnxClassifier(MODEL, threads=1)  # checks hash, input shape and class count
    assert clf.classes == card["classes"] == ["cardboard", "glass", "metal", "paper", "plastic", "trash"]


def test_shipped_model_is_int8_qdq():
    graph = onnx.load(str(MODEL)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(int8_weights) > 30  # the convolutions' weights are stored as int8


def test_shipped_weights_cannot_saturate_avx2_pair_sums():
    """VPMADDUBSW adds two u8 x s8 products into an int16: 2 x 255 x |w| must stay <= 32767."""
    from onnx import numpy_helper

    graph = onnx.load(str(MODEL)).graph
    conv_weights = {n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    worst = max(int(abs(numpy_helper.to_array(t).astype(int)).max()) for t in graph.initializer
                if t.name in conv_weights and t.data_type == onnx.TensorProto.INT8 and len(t.dims) >= 2)
    assert 2 * 255 * worst <= 32767, f"int8 weights reach {worst}: AVX2 without VNNI would saturate"


def test_card_records_what_a_reader_needs(card):
    for key in ("classes", "input", "clahe", "sha256", "quantization", "training", "metrics_val",
                "robustness_val_top1", "commands", "self_check", "val_top1_per_path"):
        assert key in card, key
    where = card["quantization"]["measured_on"]
    assert where["cpu"] and where["onnxruntime"] and isinstance(where["kernel_flags"], list)
    paths = card["val_top1_per_path"]
    for name in ("reference", "native", "avx2"):
        assert abs(paths[name]["top1"] - paths["reference"]["top1"]) <= 0.005, name
        assert paths[name]["agrees_with_reference"] >= 0.99, name
    m = card["metrics_val"]
    assert 0 < m["int8"]["top1"] <= 1 and 0 < m["fp32"]["top1"] <= 1
    assert set(card["robustness_val_top1"]) >= {"dim", "overexposed", "warm_cast", "blur", "noise", "haze", "mean"}


def test_default_config_uses_the_shipped_model():
    cfg = load_config(REPO / "config.yaml")  # includes the model/rules cross-check
    assert cfg.model_path.resolve() == MODEL.resolve()


def test_val_accuracy_reproduces_the_card(trashnet, card):
    from kiosk.model.evaluate import evaluate, load_images

    clf = OnnxClassifier(MODEL, threads=2)
    rep = evaluate(clf, load_images(trashnet / "val", clf.classes))
    assert abs(rep["top1"] - card["metrics_val"]["int8"]["top1"]) <= 0.005
    assert abs(rep["macro_f1"] - card["metrics_val"]["int8"]["macro_f1"]) <= 0.005


def test_eval_report_prints_whole_class_names_in_the_confusion_header():
    from kiosk.model.evaluate import format_report

    classes = ["cardboard", "glass", "residual_waste"]
    per = {c: {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1} for c in classes}
    text = format_report({"classes": classes, "count": 3, "top1": 1.0, "macro_f1": 1.0, "per_class": per,
                          "confusion": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]})
    header = text.split("columns: predicted)\n")[1].splitlines()[0]
    assert header.split() == classes
    rows = text.split("columns: predicted)\n")[1].splitlines()[1:]
    assert [r.split()[0] for r in rows] == classes and rows[2].split()[1:] == ["0", "0", "1"]


def test_the_resolution_check_runs_the_shipped_weights_at_any_size(tmp_path, capsys):
    """benchmarks/resolution_check.py: at the card's size its freed graph answers what the model answers
    (batch folded into one row would not); at another size it runs; a size the graph cannot pad is refused."""
    import sys

    import cv2
    import numpy as np

    from kiosk.model.sessions import make_session, run_batch
    from kiosk.preprocess import InputSpec, model_input

    sys.path.insert(0, str(REPO / "benchmarks"))
    import resolution_check

    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 255, (300, 400, 3), dtype=np.uint8) for _ in range(3)]
    x = np.stack([model_input(p, OnnxClassifier(MODEL, threads=1).spec) for p in photos])  # the card's size
    freed = resolution_check.any_size_session(MODEL, threads=1)
    shipped = make_session(MODEL, 1)
    want = np.concatenate([run_batch(shipped, x[i:i + 1]) for i in range(3)])
    assert np.allclose(resolution_check.logits(freed, x), want, atol=1e-4)
    assert resolution_check.logits(freed, np.stack([model_input(p, InputSpec(size=(288, 288))) for p in photos])).shape == (3, 6)

    data = tmp_path / "trashnet" / "val"
    for i, name in enumerate(json.loads(CARD.read_text())["classes"]):
        (data / name).mkdir(parents=True)
        cv2.imwrite(str(data / name / "a.jpg"), photos[i % 3])
    assert resolution_check.main([str(MODEL), "--sizes", "224,256", "--trashnet", str(data.parent), "--extra", "",
                                  "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "224 px" in out and "256 px" in out and "val composited (6)" in out and "degraded mean" in out
    with pytest.raises(SystemExit) as e:
        resolution_check.main([str(MODEL), "--sizes", "240", "--trashnet", str(data.parent), "--extra", ""])
    assert e.value.code == 2 and "multiples of 32" in capsys.readouterr().err


def test_the_ensemble_check_averages_scores_and_runs_the_kiosks_classify_path(tmp_path, capsys):
    """benchmarks/ensemble_check.py: the ensemble is the mean of calibrated scores (two members each half
    right make one that is right on both photos, where a vote could not); the shipped model paired with
    itself scores what it scores alone, on every set."""
    import sys

    import cv2
    import numpy as np

    from kiosk.model import degrade

    sys.path.insert(0, str(REPO / "benchmarks"))
    import ensemble_check

    truth = np.array([0, 1])
    a = np.array([[0.45, 0.55], [0.3, 0.7]])  # wrong, right
    b = np.array([[0.9, 0.1], [0.6, 0.4]])  # right, wrong
    assert ensemble_check.top1_each_and_together([a, b], truth) == [0.5, 0.5, 1.0]

    rng = np.random.default_rng(1)
    data = tmp_path / "trashnet" / "val"
    for i, name in enumerate(json.loads(CARD.read_text())["classes"]):
        (data / name).mkdir(parents=True)
        cv2.imwrite(str(data / name / "a.jpg"), rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    assert ensemble_check.main([str(MODEL), str(MODEL), "--trashnet", str(data.parent), "--extra", "",
                                "--threads", "1"]) == 0
    rows = [r.split() for r in capsys.readouterr().out.splitlines() if r.startswith(("val", "degraded mean"))]
    assert len(rows) == 2 + len(degrade.DEGRADATIONS) + 1  # val, composited, each degradation, their mean
    for r in rows:
        alone, paired, together = r[-3:]
        assert alone == paired == together, r
    with pytest.raises(SystemExit) as e:
        ensemble_check.main([str(MODEL), "--trashnet", str(data.parent), "--extra", ""])
    assert e.value.code == 2 and "two models or more" in capsys.readouterr().err


def test_kiosk_bench_times_the_frame_path_and_the_mirror(tmp_path, capsys):
    """`kiosk bench` runs the kiosk's own frame path on the synthetic scene and the card's mirror on the last
    frame's picture (it once handed the classifier the Frame itself and stopped with E310 after the table)."""
    import json

    from kiosk.cli import main as cli_main

    out = tmp_path / "bench.json"
    assert cli_main(["bench", "--config", str(REPO / "config.yaml"), "--frames", "120", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["frames"] == 120 and result["frames_with_model"] > 0
    assert result["stages"]["inference"]["frames"] == result["frames_with_model"]
    mirror = result["test_time_mirror"]
    assert mirror["off"]["median_ms"] > 0 and mirror["on"]["median_ms"] > 0
    assert "test-time mirror" in capsys.readouterr().out


def test_form_advice_is_written_from_the_exports_own_timings():
    from kiosk.training.export import form_advice

    # run B's card's figures (shipped until run Q): S8S8 was 1.8x fp32's speed, so "no faster than fp32" would be false
    advice = form_advice({"s8s8": 9.31, "u8s8": 8.26}, 17.22, "x86_64")
    assert "U8S8 is the fast form" in advice and "S8S8 9.31 ms (1.8x" in advice and "no faster" not in advice
    assert "ARM64" in advice
    swapped = form_advice({"s8s8": 3.0, "u8s8": 6.0}, 9.0, "aarch64")
    assert "S8S8 is the fast form" in swapped and "not measured here" not in swapped
