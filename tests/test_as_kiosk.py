"""``kiosk eval --as-kiosk``: photos played as clips through the kiosk's own Pipeline, scored by the bin."""

import numpy as np
import pytest

from kiosk.classifier import OnnxClassifier
from kiosk.model.as_kiosk import RATES, evaluate_as_kiosk, make_clip, play
from tests.conftest import PROTOTYPES, build_tiny_model

FAR = {"cardboard": (255, 0, 255), "paper": (0, 255, 255), "plastic": (255, 255, 0), "trash": (0, 0, 255)}


def photo(rgb, h=90, w=70):
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = rgb
    return img


@pytest.fixture
def two_class(tmp_path):
    """A mean-colour model that can only tell glass from metal (the other prototypes are colours no clip has)."""
    return build_tiny_model(tmp_path / "two.onnx", prototypes={**PROTOTYPES, **FAR})


def test_a_clip_is_seeded_by_the_photo_index_and_brings_a_hand(cfg):
    img = photo(PROTOTYPES["glass"])
    a, b, c = (make_clip(img, (640, 480), i) for i in (3, 3, 4))
    assert np.array_equal(a.frame(a.y_hold, 7), b.frame(b.y_hold, 7))  # repeatable: two models, the same clips
    assert not np.array_equal(a.empty, c.empty)  # each photo its own background and lighting
    held = a.frame(a.y_hold, 0).astype(int)
    below = held[-5:, a.x:a.x + a.sprite.shape[1]]
    assert np.abs(below - a.empty[-5:, a.x:a.x + a.sprite.shape[1]]).max() > 20  # the forearm runs out of the view
    assert np.abs(a.frame(480, 0).astype(int) - a.empty).max() < 12  # off-screen: the empty view and noise only


def test_the_kiosk_decides_soon_after_it_sees_the_item(cfg_with, two_class):
    cfg = cfg_with(model=two_class)
    clf = OnnxClassifier(two_class, threads=1)
    out = play(cfg, clf, make_clip(photo(PROTOTYPES["metal"]), tuple(cfg.camera.size), 0))
    assert out.decision is not None and out.decision.label == "metal" and not out.decision.unsure
    assert out.decision.bin_id == cfg.rules["metal"].bin
    assert 0 < out.seconds <= 0.5  # the goal: median presence-to-decision <= 0.5 s of simulated time


def test_rates_are_counted_by_the_bin_a_passer_by_sees(cfg_with, tmp_path, two_class):
    cfg = cfg_with(model=two_class)
    clf = OnnxClassifier(two_class, threads=1)
    g, m = clf.classes.index("glass"), clf.classes.index("metal")
    images = [(photo(PROTOTYPES["glass"]), g)] * 2 + [(photo(PROTOTYPES["metal"]), m)] * 2
    rep = evaluate_as_kiosk(cfg, clf, images)
    assert rep["correct_bin_rate"] == 1.0 and rep["wrong_bin_rate"] == 0.0
    assert rep["per_class"]["glass"]["images"] == 2 and rep["per_class"]["glass"]["correct_bin_rate"] == 1.0
    assert rep["per_class"]["paper"]["images"] == 0
    assert rep["median_decision_s"] <= 0.5
    # a model that swaps them opens the wrong flap every time: the glass bin for metal and back
    swapped = build_tiny_model(tmp_path / "swapped.onnx", prototypes={
        **PROTOTYPES, **FAR, "glass": PROTOTYPES["metal"], "metal": PROTOTYPES["glass"]})
    assert cfg.rules["glass"].bin != cfg.rules["metal"].bin
    rep = evaluate_as_kiosk(cfg_with(model=swapped), OnnxClassifier(swapped, threads=1), images)
    assert rep["wrong_bin_rate"] == 1.0 and rep["correct_bin_rate"] == 0.0
    assert sum(rep[k] for k in RATES) == pytest.approx(1.0)


def test_an_item_it_cannot_tell_is_unsure_not_a_wrong_flap(cfg_with, tmp_path):
    vague = build_tiny_model(tmp_path / "vague.onnx", prototypes={**PROTOTYPES, **FAR}, sharpness=0.3)
    cfg = cfg_with({"decision.threshold": 0.9}, model=vague)  # a model this vague is never that sure: the kiosk asks
    clf = OnnxClassifier(vague, threads=1)
    rep = evaluate_as_kiosk(cfg, clf, [(photo(PROTOTYPES["glass"]), clf.classes.index("glass"))])
    assert rep["unsure_rate"] == 1.0 and rep["wrong_bin_rate"] == 0.0 and rep["unsure"] == 1


def test_an_item_the_gate_never_sees_is_no_decision(cfg_with, two_class):
    cfg = cfg_with({"presence.min_area": 0.6}, model=two_class)  # nothing held up is that big
    clf = OnnxClassifier(two_class, threads=1)
    rep = evaluate_as_kiosk(cfg, clf, [(photo(PROTOTYPES["glass"]), clf.classes.index("glass"))])
    assert rep["no_decision_rate"] == 1.0 and rep["median_decision_s"] is None
