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


def test_replaying_the_engine_over_a_recording_decides_as_the_pipeline_does(cfg_with, tmp_path):
    """The sweep's shortcut must not change a decision: replay == play, setting by setting."""
    from kiosk.model.as_kiosk import record, replay

    soft = build_tiny_model(tmp_path / "soft.onnx", prototypes={**PROTOTYPES, **FAR}, sharpness=1.5)
    clf = OnnxClassifier(soft, threads=1)
    checked = set()
    for th in (0.3, 0.55, 0.9):
        cfg = cfg_with({"decision.threshold": th}, model=soft)
        for i, rgb in enumerate((PROTOTYPES["glass"], (120, 110, 60))):  # one clear, one between prototypes
            clip = make_clip(photo(rgb), tuple(cfg.camera.size), i)
            live = play(cfg, clf, clip)
            again = replay(cfg, cfg.decision, record(cfg, clf, clip))
            assert (live.decision is None) == (again.decision is None)
            if live.decision is not None:
                assert (again.decision.label, again.decision.unsure, again.decision.bin_id) == (
                    live.decision.label, live.decision.unsure, live.decision.bin_id)
                assert again.seconds == pytest.approx(live.seconds)
                checked.add(live.decision.unsure)
    assert checked == {True, False}  # both kinds of decision were compared


def test_the_sweep_command_chooses_a_setting_and_refuses_bad_input(tmp_path, config_dict, capsys):
    import json

    import cv2

    from tests.test_cli import cli_main, write_config

    soft = build_tiny_model(tmp_path / "soft.onnx", prototypes={**PROTOTYPES, **FAR}, sharpness=1.5)
    for name in ("glass", "metal"):
        d = tmp_path / "data" / name
        d.mkdir(parents=True)
        cv2.imwrite(str(d / "0.png"), photo(PROTOTYPES[name])[..., ::-1])
    for name in FAR:
        (tmp_path / "data" / name).mkdir()
    cfg = write_config(tmp_path, config_dict, soft)
    out = tmp_path / "sweep.json"
    args = ["eval", "--config", str(cfg), "--data", str(tmp_path / "data"), "--as-kiosk"]
    assert cli_main(args + ["--sweep", "0.2,0.99", "--votes", "5:3,3:2", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert len(rep["sweep"]) == 4 and rep["images"] == 2
    by = {(r["threshold"], r["window"]): r for r in rep["sweep"]}
    assert by[(0.99, 5)]["unsure_rate"] == 1.0 and by[(0.2, 5)]["correct_bin_rate"] == 1.0
    assert rep["chosen"]["threshold"] == 0.2 and "chosen (the most right" in capsys.readouterr().out
    assert cli_main(args + ["--sweep", "0.5,x"]) == 1
    assert "--sweep: 'x' is not a number" in capsys.readouterr().err
    assert cli_main(args + ["--sweep", "0.5", "--votes", "3:5"]) == 1
    assert "needs 1 <= MIN <= WINDOW" in capsys.readouterr().err


@pytest.mark.parametrize("fps,look_timeout", [(10, 2.0), (30, 8.0)])
def test_the_clip_fits_the_config_slow_cameras_and_patient_engines(cfg_with, tmp_path, fps, look_timeout):
    """The empty view outlasts the gate's warm-up (frames), the hold outlasts the engine's look."""
    vague = build_tiny_model(tmp_path / "vague.onnx", prototypes={**PROTOTYPES, **FAR}, sharpness=0.3)
    cfg = cfg_with({"camera.fps": fps, "decision.look_timeout_s": look_timeout, "decision.threshold": 0.9},
                   model=vague)
    out = play(cfg, OnnxClassifier(vague, threads=1), make_clip(photo(PROTOTYPES["glass"]), tuple(cfg.camera.size), 0))
    assert out.seen_t is not None and out.decision is not None and out.decision.unsure  # asked, not "no decision"


def test_clips_are_scored_apart_by_how_the_item_is_held(cfg_with, two_class):
    """A photo with a board to cut from is held as the item; a photo filled by its item, whole."""
    cfg = cfg_with(model=two_class)
    clf = OnnxClassifier(two_class, threads=1)
    board = photo((236, 236, 232), 120, 100)
    board[35:85, 30:70] = PROTOTYPES["metal"]
    assert make_clip(board, tuple(cfg.camera.size), 0).cut_out
    assert not make_clip(photo(PROTOTYPES["glass"]), tuple(cfg.camera.size), 1).cut_out
    g, m = clf.classes.index("glass"), clf.classes.index("metal")
    images = [(board, m), (photo(PROTOTYPES["glass"]), g), (photo(PROTOTYPES["metal"]), m)]
    rep = evaluate_as_kiosk(cfg, clf, images)
    parts = rep["by_hold"]
    assert parts["cut_out"]["images"] == 1 and parts["whole_photo"]["images"] == 2
    for k in RATES:  # the parts add up to the whole, clip for clip
        assert parts["cut_out"][k] * 1 + parts["whole_photo"][k] * 2 == pytest.approx(rep[k] * 3)
    assert parts["whole_photo"]["correct_bin_rate"] == 1.0


def test_a_small_item_on_a_big_board_is_held_up_at_the_items_size_and_the_gate_sees_it(cfg):
    """The clip holds the item's box, not the photo's extent: a lid photographed in the middle of a wide board
    is held as tall as any item (it used to be a speck the presence gate never saw: no decision)."""
    from kiosk.model import as_kiosk
    from kiosk.presence import PresenceGate

    board = photo((236, 236, 232), 384, 512)
    board[140:240, 210:300] = (30, 60, 160)  # a blue lid, 100 px of a 384 px photo
    clip = make_clip(board, tuple(cfg.camera.size), 0)
    assert clip.cut_out
    item_rows = np.flatnonzero((clip.alpha > 0.5).any(1) & (clip.sprite[..., 2] > 120).any(1))
    assert len(item_rows) >= 0.8 * as_kiosk.ITEM_HEIGHT * cfg.camera.size[1]
    gate = PresenceGate(cfg.presence, tuple(cfg.camera.size))
    seen = [gate.update(clip.frame(y, seq)).present for seq, (_, y) in enumerate(as_kiosk._path(cfg, clip))]
    assert sum(seen) > cfg.camera.fps  # present for over a second of the hold


def test_the_chosen_setting_decides_within_the_median_goal_where_any_does():
    """The fewest wrong flaps by timing most items out as "not sure" is not a setting to ship (B's sweep:
    threshold 0.9 had 2.6 % wrong and a 2.0 s median, every passer-by waiting the look timeout)."""
    from kiosk.model.as_kiosk import choose

    def row(th, right, wrong, median):
        return {"threshold": th, "correct_bin_rate": right, "wrong_bin_rate": wrong, "median_decision_s": median}

    rows = [row(0.5, 0.75, 0.18, 0.30), row(0.8, 0.59, 0.05, 0.33), row(0.9, 0.45, 0.026, 2.0)]
    assert choose(rows, 0.02)["threshold"] == 0.8  # no goal met: the fewest wrong of the quick ones
    assert choose(rows + [row(0.85, 0.5, 0.015, 0.4)], 0.02)["threshold"] == 0.85  # goal met, quick
    assert choose([row(0.9, 0.45, 0.026, 2.0), row(0.95, 0.3, 0.01, 2.0)], 0.02)["threshold"] == 0.95  # none quick
    assert choose([row(0.6, 0.7, 0.1, None), row(0.7, 0.6, 0.05, None)], 0.02)["threshold"] == 0.7
