"""The presence gate on synthetic sequences with known ground truth."""

import numpy as np
import pytest

from kiosk.devices.synthetic_camera import SyntheticScene
from kiosk.config import PresenceConfig
from kiosk.presence import PresenceGate, square_roi

FPS = 30


def run(scene, seconds, start=0.0, gate=None):
    gate = gate or PresenceGate(PresenceConfig(), (scene.w, scene.h))
    out = []
    for i in range(int(seconds * FPS)):
        t = start + i / FPS
        out.append((t, gate.update(scene.render(t))))
    return gate, out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_static_empty_scene_with_drift_never_counts(seed):
    # hold_s=0: the item never shows; the drift is strong and fast (±25 % in 10 s)
    scene = SyntheticScene((320, 240), seed=seed, drift=0.25, drift_period=10.0, hold_s=0.0, enter_s=0.0,
                           leave_s=0.0, empty_s=1000.0, shadow=False)
    _, out = run(scene, 25)
    assert not any(p.present for _, p in out)


@pytest.mark.parametrize("seed", [0, 3])
def test_passing_shadows_never_count(seed):
    scene = SyntheticScene((320, 240), seed=seed, empty_s=3.0, hold_s=0.0, enter_s=0.0, leave_s=0.0, shadow=True)
    _, out = run(scene, 20)  # six shadows sweep across
    assert not any(p.present for _, p in out)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_item_held_half_a_second_always_counts(seed):
    scene = SyntheticScene((320, 240), seed=seed, empty_s=2.0, enter_s=0.2, hold_s=0.5, leave_s=0.2)
    _, out = run(scene, scene.period * 4)
    for k in range(4):
        hold_start = k * scene.period + scene.empty_s + scene.enter_s
        during = [p for t, p in out if hold_start <= t < hold_start + 0.5]
        assert any(p.present for p in during), f"item {k} held 0.5 s was missed"


def test_roi_covers_the_item_and_stays_in_frame():
    scene = SyntheticScene((640, 480), seed=0, noise=1.0)
    _, out = run(scene, scene.period)
    held = [(t, p) for t, p in out if p.present and scene.phase(t)[0] == "hold"]
    assert held
    for _, p in held:
        r = p.roi
        assert r.w == r.h and 0 <= r.x and 0 <= r.y and r.x + r.w <= 640 and r.y + r.h <= 480
        assert r.x <= 320 <= r.x + r.w and r.y <= 240 <= r.y + r.h  # the item is centred


def test_item_leaving_is_noticed():
    scene = SyntheticScene((320, 240), seed=0)
    _, out = run(scene, scene.period * 2)
    empty_again = [p for t, p in out if scene.phase(t)[0] == "empty" and scene.phase(t)[1] > 0.4 and t > scene.period]
    assert empty_again and not any(p.present for p in empty_again)


def test_whole_view_change_is_not_an_item():
    scene = SyntheticScene((320, 240), seed=0, drift=0, empty_s=1000, hold_s=0, enter_s=0, leave_s=0, shadow=False)
    gate = PresenceGate(PresenceConfig(), (320, 240))
    for i in range(40):
        gate.update(scene.render(i / FPS))
    dark = (scene.render(2.0).astype(np.float32) * 0.3).astype(np.uint8)  # lights dimmed at once
    results = [gate.update(dark) for _ in range(60)]
    assert not any(p.present for p in results)


def test_square_roi_is_clamped_to_the_frame():
    r = square_roi(600, 400, 660, 500, 0.2, 640, 480)
    assert r.w == r.h and r.x + r.w <= 640 and r.y + r.h <= 480


@pytest.mark.parametrize("seed", [0, 1])
def test_item_in_view_at_start_leaves_no_ghost(seed):
    """Start while an item is held up: when it goes, the empty patch is not an item."""
    scene = SyntheticScene((320, 240), seed=seed)
    hold_mid = scene.empty_s + scene.enter_s + scene.hold_s / 2
    gate = PresenceGate(PresenceConfig(), (320, 240))
    _, out = run(scene, scene.period * 1.5, start=hold_mid, gate=gate)
    # after the item has left (leave phase over), nothing may count as present in the empty phase
    empty = [p for t, p in out if scene.phase(t)[0] == "empty" and scene.phase(t)[1] > 0.15]
    assert empty and not any(p.present for p in empty)
    assert gate.ghosts >= 1
    # and the next item is still seen
    nxt = [p for t, p in out if scene.phase(t)[0] == "hold" and t > scene.period]
    assert nxt and any(p.present for p in nxt)


def test_forgotten_object_is_absorbed():
    scene = SyntheticScene((320, 240), seed=0, hold_s=1000.0)  # put down and left there
    gate = PresenceGate(PresenceConfig(absorb_frames=60), (320, 240))
    _, out = run(scene, 8.0, gate=gate)
    presents = [p.present for _, p in out]
    assert any(presents) and not any(presents[-60:])


def test_the_arm_that_holds_an_item_is_not_in_its_box():
    from kiosk.presence import item_box

    m = np.zeros((120, 160), bool)
    m[30:80, 50:110] = True  # the item
    m[80:120, 72:88] = True  # the forearm, down out of the view
    assert item_box(m) == (50, 30, 110, 80)
    m[:, :] = False
    m[30:80, 0:60] = True  # an item reaching in from the left, held by an arm from below
    m[80:120, 20:34] = True
    assert item_box(m) == (0, 30, 60, 80)  # its own edge at the view's border stays: it is as wide as it is
    m[:, :] = False
    m[20:120, 70:90] = True  # a bottle held at its end: as narrow as the arm, so all of it is kept
    assert item_box(m) == (70, 20, 90, 120)


def test_the_gate_crops_the_item_not_the_arm():
    cfg = PresenceConfig()
    gate = PresenceGate(cfg, (320, 240))
    empty = np.full((240, 320, 3), 90, np.uint8)
    for _ in range(cfg.warmup_frames + 5):
        gate.update(empty)
    held = empty.copy()
    held[60:150, 110:210] = (200, 40, 50)
    held[150:, 150:170] = (224, 172, 105)
    for _ in range(cfg.enter_frames + 2):
        p = gate.update(held)
    assert p.present and p.roi is not None
    assert p.roi.y + p.roi.h < 200 and p.roi.h < 150  # the square is the item's, not item and arm


def test_trimming_the_arm_never_cuts_the_item():
    """The ways people hold things that a naive trim gets wrong (found in review)."""
    from kiosk.presence import item_box

    m = np.zeros((120, 160), bool)
    m[55:85, :] = True  # a flattened carton wider than the view ...
    m[85:120, 70:90] = True  # ... held from below
    assert item_box(m) == (0, 55, 160, 85)
    m[:] = False
    m[60:120, 90:120] = True  # a can standing on the bottom edge ...
    m[80:95, 0:90] = True  # ... held by an arm from the left
    assert item_box(m) == (90, 60, 120, 120)
    m[:] = False
    m[20:50, 0:70] = True  # an item running off the left edge, the arm under its right part
    m[50:120, 50:66] = True
    assert item_box(m) == (0, 20, 70, 50)
    m[:] = False
    m[110:120, 65:95] = True  # a short, wide stub at the edge (a wrist just in view) is no arm: the box stays
    m[60:110, 40:120] = True
    assert item_box(m) == (40, 60, 120, 120)
    assert item_box(np.zeros((4, 4), bool)) is None
