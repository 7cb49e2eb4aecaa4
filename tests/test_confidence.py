"""Calibrated confidence and test-time mirror: the card's temperature and test_time.mirror,
honoured by OnnxClassifier (the one path of the kiosk, kiosk eval and kiosk bench)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kiosk.classifier import ModelCard, OnnxClassifier, card_path, softmax
from kiosk.errors import ModelError
from kiosk.model.calibration import fit_temperature, nll, reliability, softmax_rows
from tests.conftest import CLASSES, PROTOTYPES, build_tiny_model


def test_fitted_temperature_recovers_the_one_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20000, 6))
    for true_t in (0.5, 2.0):
        probs = softmax_rows(logits / true_t)
        labels = np.array([rng.choice(6, p=p) for p in probs])
        t = fit_temperature(logits, labels)
        assert abs(t - true_t) / true_t < 0.05, (true_t, t)
        assert nll(logits, labels, t) <= nll(logits, labels, 1.0)


def test_fit_temperature_refuses_mismatched_input():
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((3, 6)), [0, 1])
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((0, 6)), [])


def test_reliability_by_hand():
    # bin 0.9..: 2 items, confidence 0.95, one right -> |0.5 - 0.95| * 2/4; bin ..0.6: 2 items, 0.55, both right
    table = reliability([0.95, 0.95, 0.55, 0.55], [True, False, True, True], bins=10)
    assert table["ece"] == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)
    assert [r["count"] for r in table["bins"]] == [2, 2]
    # perfectly calibrated in expectation: ECE small
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.2, 1.0, 50000)
    table = reliability(conf, rng.uniform(size=conf.size) < conf)
    assert table["ece"] < 0.01


def test_ece_floor_is_what_right_scores_measure_on_so_few_items():
    """The floor is the ECE of perfectly calibrated scores: zero when sure and right, about
    E|mean of N coin flips - 1/2| = sqrt(2 / pi) x 0.5 / sqrt(N) for N items at 0.5, shrinking with N."""
    from kiosk.model.calibration import ece_by_chance

    def ece_floor(conf):
        return ece_by_chance(conf)["floor"]

    assert ece_floor(np.ones(50)) == 0.0 and ece_floor([]) == 0.0
    assert ece_floor(np.full(100, 0.5)) == pytest.approx(np.sqrt(2 / np.pi) * 0.5 / 10, abs=0.006)
    assert ece_floor(np.full(100, 0.5)) == ece_floor(np.full(100, 0.5))  # fixed seed: a figure re-made is the same
    spread = np.random.default_rng(2).uniform(0.4, 1.0, 4000)
    assert ece_floor(spread[:40]) > 4 * ece_floor(spread)
    table = reliability(spread[:379], np.ones(379, bool))
    assert table["ece_floor"] == ece_floor(spread[:379]) and table["ece"] > table["ece_floor"]  # always right: under-confident
    chance = ece_by_chance(spread[:379])
    assert chance["floor"] < chance["p95"] == table["ece_floor_p95"] < table["ece"]


def _card(model):
    return json.loads(card_path(model).read_text())


def _rewrite_card(model, **fields):
    card = _card(model)
    card.update(fields)
    card.pop("sha256")
    ModelCard.write(model, card)


@pytest.mark.parametrize("fields, needle", [
    ({"temperature": 0}, "temperature must be a number"),
    ({"temperature": -1.5}, "temperature must be a number"),
    ({"temperature": "warm"}, "temperature must be a number"),
    ({"temperature": True}, "temperature must be a number"),
    ({"temperature": 1000}, "temperature must be a number"),
    ({"test_time": {"mirror": "yes"}}, "test_time.mirror must be true or false"),
    ({"output": "probabilities", "temperature": 2.0}, "temperature applies to logits only"),
])
def test_bad_calibration_fields_in_the_card_are_named(tiny_model, fields, needle):
    card = dict(_card(tiny_model), **fields)
    with pytest.raises(ModelError, match=needle):
        ModelCard.from_dict(card, "tiny.json")


def test_temperature_divides_the_logits(tiny_model):
    img = np.full((224, 224, 3), PROTOTYPES["glass"], np.uint8)
    plain = OnnxClassifier(tiny_model)
    logits = plain.scores(img)
    _rewrite_card(tiny_model, temperature=3.0)
    warm = OnnxClassifier(tiny_model)
    p = warm.classify(img)
    assert p.label == plain.classify(img).label == "glass"
    want = softmax(logits / 3.0)
    assert [p.scores[c] for c in CLASSES] == pytest.approx(list(want))
    assert p.score < plain.classify(img).score  # a higher temperature is less sure


def _half_model(path):
    """The tiny colour model on the picture's left half only: not mirror-symmetric, as a real model is not."""
    import onnx
    from onnx import helper, numpy_helper

    build_tiny_model(path)
    m = onnx.load(str(path))
    g = m.graph
    g.initializer.extend([numpy_helper.from_array(np.array([0], np.int64), "s0"),
                          numpy_helper.from_array(np.array([112], np.int64), "s1"),
                          numpy_helper.from_array(np.array([3], np.int64), "ax")])
    g.node.insert(0, helper.make_node("Slice", ["input", "s0", "s1", "ax"], ["left"]))
    g.node[1].input[0] = "left"
    onnx.save(m, str(path))
    card = _card(path)
    card.pop("sha256")
    ModelCard.write(path, card)
    return path


def test_mirror_averages_the_picture_and_its_mirror_image(tmp_path):
    model = _half_model(tmp_path / "half.onnx")
    img = np.empty((224, 224, 3), np.uint8)
    img[:, :112] = PROTOTYPES["glass"]
    img[:, 112:] = PROTOTYPES["plastic"]
    plain = OnnxClassifier(model)
    left, right = plain.scores(img), plain.scores(np.ascontiguousarray(img[:, ::-1]))
    assert plain.classify(img).label == "glass"  # it sees the left half only
    assert not np.allclose(left, right)
    _rewrite_card(model, test_time={"mirror": True})
    mirrored = OnnxClassifier(model)
    assert mirrored.card.mirror
    # CLAHE of a mirrored picture is the mirrored CLAHE up to rounding: hence the tolerance
    assert mirrored.scores(img) == pytest.approx(0.5 * (left + right), abs=0.02)
    assert not np.allclose(mirrored.scores(img), left, atol=0.5)
    p = mirrored.classify(img)
    top_two = sorted(p.scores, key=p.scores.get)[-2:]
    assert set(top_two) == {"glass", "plastic"} and min(p.scores[c] for c in top_two) > 0.3  # it saw both halves


def test_eval_reports_calibration(tiny_model, tmp_path):
    from kiosk.model.evaluate import evaluate

    clf = OnnxClassifier(tiny_model)
    images = [(np.full((64, 64, 3), PROTOTYPES[c], np.uint8), CLASSES.index(c)) for c in CLASSES]
    rep = evaluate(clf, images)
    assert rep["top1"] == 1.0
    cal = rep["calibration"]
    assert cal["count"] == len(CLASSES)
    top = [clf.classify(img).score for img, _ in images]
    assert cal["ece"] == pytest.approx(float(np.mean([1 - s for s in top])))  # all right: ECE = 1 - mean score
    from kiosk.model.calibration import ece_by_chance

    assert cal["ece_floor"] == ece_by_chance(top)["floor"]  # beside it, what right scores would measure on so few photos
