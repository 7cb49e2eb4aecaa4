import json

import numpy as np
import pytest

from kiosk.classifier import OnnxClassifier, ScriptedClassifier, sha256_file
from kiosk.errors import ImageError, ModelError
from tests.conftest import CLASSES, PROTOTYPES, build_tiny_model


def solid(rgb, size=(200, 300)):
    img = np.zeros((size[0], size[1], 3), np.uint8)
    img[:] = rgb
    return img


def test_tiny_model_classifies_colours(tiny_model):
    clf = OnnxClassifier(tiny_model, threads=1)
    for name in ("glass", "metal", "plastic"):
        p = clf.classify(solid(PROTOTYPES[name]))
        assert p.label == name
        assert abs(sum(p.scores.values()) - 1.0) < 1e-6 and p.score == p.scores[name]
    assert clf.classes == CLASSES


def test_session_options(tiny_model):
    clf = OnnxClassifier(tiny_model, threads=1)
    opts = clf.session.get_session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_hash_mismatch_is_refused_before_loading(tiny_model):
    data = bytearray(tiny_model.read_bytes())
    data[-1] ^= 0xFF
    tiny_model.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its card: sha256"):
        OnnxClassifier(tiny_model)


def test_truncated_model_with_matching_card_is_refused(tiny_model):
    tiny_model.write_bytes(tiny_model.read_bytes()[:50])
    card = json.loads(tiny_model.with_suffix(".json").read_text())
    card["sha256"] = sha256_file(tiny_model)
    tiny_model.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        OnnxClassifier(tiny_model)


def test_card_with_wrong_class_count_is_refused(tmp_path):
    model = build_tiny_model(tmp_path / "m.onnx")
    card = json.loads(model.with_suffix(".json").read_text())
    card["classes"] = card["classes"][:5]
    model.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="6 scores, the card lists 5 classes"):
        OnnxClassifier(model)


def test_card_with_wrong_input_size_is_refused(tmp_path):
    model = build_tiny_model(tmp_path / "m.onnx", size=(192, 192))
    card = json.loads(model.with_suffix(".json").read_text())
    card["input"]["size"] = [224, 224]
    model.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"input shape \[1, 3, 192, 192\] does not match the card's \[1, 3, 224, 224\]"):
        OnnxClassifier(model)


def test_missing_or_broken_card(tiny_model):
    card = tiny_model.with_suffix(".json")
    card.write_text('{"classes": ["a"]}')
    with pytest.raises(ModelError, match="lacks or mangles"):
        OnnxClassifier(tiny_model)
    card.unlink()
    with pytest.raises(ModelError, match="model card not found"):
        OnnxClassifier(tiny_model)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        OnnxClassifier(tmp_path / "none.onnx")


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                                 np.zeros((4, 4, 3), np.uint8), "image.jpg"])
def test_bad_images_are_named(tiny_model, bad):
    clf = OnnxClassifier(tiny_model, threads=1)
    with pytest.raises(ImageError):
        clf.classify(bad)


def test_scripted_classifier():
    s = ScriptedClassifier(CLASSES, ["glass", ("metal", 0.4)], loop=False)
    img = solid((0, 0, 0))
    assert [s.classify(img).label for _ in range(4)] == ["glass", "metal", "metal", "metal"]
    assert s.classify(img).score == 0.4
    with pytest.raises(ValueError, match="unknown classes"):
        ScriptedClassifier(CLASSES, ["banana"])


def test_infer_is_the_model_step_of_scores_and_takes_one_input(tiny_model):
    """scores = preprocessing + infer (what a training run's teacher calls on its views); the graph answers
    one input at a time, so a batch is refused rather than answered for its first row only."""
    from kiosk.preprocess import model_input

    clf = OnnxClassifier(tiny_model, threads=1)
    rgb = np.zeros((300, 400, 3), np.uint8)
    rgb[:, :200] = PROTOTYPES["glass"]
    x = model_input(rgb, clf.spec)[None]
    assert np.allclose(clf.infer(x), clf.scores(rgb))
    with pytest.raises(ValueError, match="one input at a time"):
        clf.infer(np.concatenate([x, x]))
