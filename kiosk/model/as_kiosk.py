"""``kiosk eval --as-kiosk``: each photo held up to the kiosk, through the kiosk's own frame path.

A plain ``kiosk eval`` classifies the photo; the kiosk never does that. It
sees an empty view, then a hand bringing an item into it; the presence gate
finds it, the model runs on the gate's square around it (the hand in it,
the forearm trimmed off as on a real kiosk), and the decision engine votes over frames and
may stay unsure. This runs exactly that (``kiosk.pipeline.Pipeline``, as the
worker and ``kiosk bench`` do) on a short clip per photo, at the camera's
size and frame rate:

1. the empty view (a generated kiosk-like surface, its own per photo) that
   the gate learns first;
2. the item slides in from below, held by a hand whose forearm runs out of
   the view; TrashNet items are cut from their board (``degrade.item_mask``)
   where the cut is plausible, otherwise the whole photo is held up;
3. it is held still; then it leaves the way it came.

Each clip has its own lighting (a gain over the whole view) and camera noise,
all seeded by the photo's index, so a run is repeatable and two models are
compared on the same clips. What counts is what a passer-by sees: whether the
flap that opened is the right bin for the item (``correct_bin_rate``), the
wrong one (``wrong_bin_rate``), the kiosk asked (``unsure_rate``) or decided
nothing while the item was there (``no_decision_rate``), and how long after
the gate saw the item the decision came (``median_decision_s``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Optional

import numpy as np

from kiosk.datatypes import Frame
from kiosk.model import degrade
from kiosk.model.metrics import classification_report
from kiosk.pipeline import Pipeline, make_decider, wants_prediction

CLIP_SEED = 31  # every clip's background, hand, lighting and noise come from (CLIP_SEED, photo index)
EMPTY_S = 1.0  # at least: the gate learns the empty view first (its warm-up, in frames, and more)
SLIDE_S = 0.5  # the hand brings the item in over this long
HOLD_S = 4.0  # at least; longer than the engine looks before it gives up (look_timeout_s)
ITEM_HEIGHT = 0.55  # of the view: an item held up close, inside the gate's max_area
NOISE_FRAMES = 5  # sensor noise changes every frame; five differ enough for the gate
RATES = ("correct_bin_rate", "wrong_bin_rate", "unsure_rate", "no_decision_rate")


@dataclass(frozen=True)
class Clip:
    """One photo as a clip: the empty view and the item sprite (with the hand) to move over it."""

    empty: np.ndarray  # RGB, camera size, lighting applied
    sprite: np.ndarray  # RGB, item + hand, lighting applied
    alpha: np.ndarray  # 0..1, sprite's shape
    x: int  # sprite's left edge in the view
    y_hold: int  # its top edge while held
    noise: tuple  # a few frames of camera noise, cycled
    cut_out: bool = True  # the item cut from its board; False: the whole photo held up (no plausible cut)

    def frame(self, y: int, seq: int) -> np.ndarray:
        """The view with the sprite's top edge at ``y`` (below the view: only the part inside shows)."""
        view = self.empty.astype(np.float32)
        degrade.place(view, self.sprite, self.alpha, self.x, y)
        return np.clip(view + self.noise[seq % len(self.noise)][..., None], 0, 255).astype(np.uint8)


def make_clip(img: np.ndarray, size: tuple[int, int], index: int) -> Clip:
    """The clip for one photo: its background, the item held by a hand (``degrade.held_item``), lighting."""
    rng = np.random.default_rng((CLIP_SEED, index))
    w, h = size
    empty = degrade.background(rng, h, w).astype(np.float32)
    item, mask = degrade.held_cut(img)
    ih = degrade.held_height(item, w, h, ITEM_HEIGHT)
    sprite, shape = degrade.held_item(item, mask, ih, h, rng)
    gain = rng.uniform(0.7, 1.25)  # lighting of this kiosk's site at this hour
    empty, sprite = empty * gain, sprite * gain
    return Clip(np.clip(empty, 0, 255).astype(np.uint8), np.clip(sprite, 0, 255), shape,
                (w - sprite.shape[1]) // 2, (h - ih) // 2,
                noise=tuple(rng.normal(0, 2.0, (h, w)).astype(np.float32) for _ in range(NOISE_FRAMES)),
                cut_out=mask is not None)


@dataclass(frozen=True)
class Outcome:
    decision: Optional[object]  # kiosk.datatypes.Decision, or None
    seen_t: Optional[float]  # when the gate first said present

    @property
    def seconds(self) -> Optional[float]:
        if self.decision is None or self.seen_t is None:
            return None
        return self.decision.t - self.seen_t


def _path(cfg, clip: Clip) -> list[tuple[float, int]]:
    """(t, the sprite's top edge) for every frame: empty, slides in, held, slides out, empty.

    The empty view lasts at least the gate's warm-up (counted in frames), and
    the item is held longer than the engine can look before it says unsure.
    """
    dt = 1.0 / cfg.camera.fps
    h = clip.empty.shape[0]
    slide = max(1, int(SLIDE_S / dt))
    empty = max(int(EMPTY_S / dt), cfg.presence.warmup_frames + cfg.presence.enter_frames + 5)
    hold = max(HOLD_S, cfg.decision.look_timeout_s + cfg.decision.min_look_s + 1.0)
    ys = ([h] * empty
          + [int(h + (clip.y_hold - h) * (1 - (1 - k / slide) ** 2)) for k in range(1, slide + 1)]  # eases in
          + [clip.y_hold] * int(hold / dt)
          + [int(clip.y_hold + (h - clip.y_hold) * (k / slide) ** 2) for k in range(1, slide + 1)]
          + [h] * int(1.0 / dt))
    return [(seq * dt, y) for seq, y in enumerate(ys)]


def play(cfg, clf, clip: Clip) -> Outcome:
    """Play one clip through the kiosk's Pipeline until the engine decides or the item has left."""
    pipe = Pipeline(cfg, clf, tuple(cfg.camera.size))
    seen = None
    for seq, (t, y) in enumerate(_path(cfg, clip)):
        presence, _, _ = pipe.step(Frame(image=clip.frame(y, seq), t=t, seq=seq))
        if presence.present and seen is None:
            seen = t
        if pipe.decider.decision is not None:
            return Outcome(pipe.decider.decision, seen)
    return Outcome(None, seen)


def kiosk_decision(cfg, clf, img: np.ndarray, index: int = 0):
    """The decision the kiosk makes for this photo held up, or None when it made none."""
    return play(cfg, clf, make_clip(img, tuple(cfg.camera.size), index)).decision


def evaluate_as_kiosk(cfg, clf, images) -> dict:
    """What a passer-by sees for each photo: right bin, wrong bin, asked, or nothing; and how fast.

    Also the classification report of the decisions (an unsure decision counts
    as its best guess there), so the confusion matrix reads as in ``kiosk eval``.
    """
    size = tuple(cfg.camera.size)
    clips = [make_clip(img, size, i) for i, (img, _) in enumerate(images)]
    outcomes = [play(cfg, clf, clip) for clip in clips]
    labels = [label for _, label in images]
    rep = score(cfg, clf.classes, labels, outcomes)
    rep["by_hold"] = by_hold(cfg, clf.classes, labels, outcomes, [c.cut_out for c in clips])
    rep.update({"as_kiosk": True,
                "clips": {"seed": CLIP_SEED, "fps": cfg.camera.fps, "size": list(size),
                          "threshold": cfg.decision.threshold, "window": cfg.decision.window,
                          "min_votes": cfg.decision.min_votes}})
    return rep


def score(cfg, classes: list[str], labels: list[int], outcomes: list[Outcome]) -> dict:
    """The rates over ``outcomes`` (one per photo, true class ``labels``), overall and per class."""
    bin_of = {c: r.bin for c, r in cfg.rules.items()}
    y_true, y_pred, seconds = [], [], []
    tally = {c: dict.fromkeys(RATES, 0) for c in classes}
    for label, out in zip(labels, outcomes):
        d, cls = out.decision, classes[label]
        if d is None:
            tally[cls]["no_decision_rate"] += 1
            continue
        if out.seconds is not None:
            seconds.append(out.seconds)
        if d.label in classes:  # an unsure screen without a best guess has no place in the confusion matrix
            y_true.append(label)
            y_pred.append(classes.index(d.label))
        if d.unsure:
            tally[cls]["unsure_rate"] += 1  # the person chose; no flap opened on the model's word
        elif d.bin_id == bin_of.get(cls):
            tally[cls]["correct_bin_rate"] += 1
        else:
            tally[cls]["wrong_bin_rate"] += 1
    rep = classification_report(y_true, y_pred, classes)
    n = len(outcomes)
    totals = {k: sum(t[k] for t in tally.values()) for k in RATES}
    for cls, t in tally.items():
        support = sum(t.values())
        rep["per_class"][cls].update({"images": support, **{k: (v / support if support else 0.0) for k, v in t.items()}})
    rep.update({k: (v / n if n else 0.0) for k, v in totals.items()})
    rep.update({
        "images": n,
        "median_decision_s": statistics.median(seconds) if seconds else None,
        "unsure": totals["unsure_rate"], "undecided": totals["no_decision_rate"],
        "sorted_right": totals["correct_bin_rate"] / n if n else 0.0,  # the same as correct_bin_rate
    })
    return rep


def by_hold(cfg, classes: list[str], labels: list[int], outcomes: list[Outcome], cut_out: list[bool]) -> dict:
    """The rates apart for clips whose item was cut from its board and clips that hold up the whole
    photo. The latter is a white card with the item on it, which a model may fairly read as paper:
    a passer-by holds the item itself, so the cut-out clips are the nearer figure for a kiosk."""
    out = {}
    for name, want in (("cut_out", True), ("whole_photo", False)):
        keep = [i for i, c in enumerate(cut_out) if c == want]
        part = score(cfg, classes, [labels[i] for i in keep], [outcomes[i] for i in keep])
        out[name] = {"images": len(keep), **{k: part[k] for k in (*RATES, "median_decision_s")}}
    return out


# ---- choosing threshold and vote on val ---------------------------------------------------------
# The engine's settings change when it decides, not what the gate and the model see in each frame.
# So each clip is played once with the model on every frame the gate finds an item in, and the pure
# Decider is replayed over that recording for every setting: the same decisions as playing each
# setting through Pipeline (a test holds them equal), at a fraction of the model time.

@dataclass(frozen=True)
class Recording:
    frames: list  # (t, Presence, Prediction or None when the gate had no region)


def record(cfg, clf, clip: Clip) -> Recording:
    """Every frame of the clip, with the model's answer wherever the gate found an item."""
    pipe = Pipeline(cfg, clf, tuple(cfg.camera.size), classify_every_frame=True)
    frames = []
    for seq, (t, y) in enumerate(_path(cfg, clip)):
        presence, prediction, _ = pipe.step(Frame(image=clip.frame(y, seq), t=t, seq=seq))
        frames.append((t, presence, prediction))
    return Recording(frames)


def replay(cfg, decision, rec: Recording) -> Outcome:
    """The engine with ``decision`` settings over a recorded clip, fed as Pipeline would feed it."""
    decider = make_decider(cfg, decision)
    seen = None
    for t, presence, prediction in rec.frames:
        if presence.present and seen is None:
            seen = t
        decider.update(t, presence.present, prediction if wants_prediction(decider, presence) else None)
        if decider.decision is not None:
            return Outcome(decider.decision, seen)
    return Outcome(None, seen)


MEDIAN_GOAL_S = 0.5  # presence to decision, the goal


def choose(rows: list[dict], wrong_goal: float, median_goal: float = MEDIAN_GOAL_S) -> dict:
    """The setting to ship: among those deciding within ``median_goal`` seconds (median; all when none
    does), the one sorting most items right with at most ``wrong_goal`` wrong flaps, else the fewest wrong.

    Why the time bound: a threshold so high that most items time out as "not sure" has the fewest wrong
    flaps, but makes every passer-by wait the whole look timeout.
    """
    quick = [r for r in rows if r["median_decision_s"] is not None and r["median_decision_s"] <= median_goal]
    rows = quick or rows
    within = [r for r in rows if r["wrong_bin_rate"] <= wrong_goal]
    return (max(within, key=lambda r: (r["correct_bin_rate"], -r["wrong_bin_rate"])) if within
            else min(rows, key=lambda r: (r["wrong_bin_rate"], -r["correct_bin_rate"])))


def sweep(cfg, clf, images, thresholds, windows=None, wrong_goal: float = 0.02,
          median_goal: float = MEDIAN_GOAL_S) -> dict:
    """Rates for each (threshold, window, min_votes) on ``images``, and the setting ``choose`` picks."""
    size = tuple(cfg.camera.size)
    d = cfg.decision
    windows = windows or [(d.window, d.min_votes)]
    recs = [record(cfg, clf, make_clip(img, size, i)) for i, (img, _) in enumerate(images)]
    labels = [label for _, label in images]
    rows = []
    for window, votes in windows:
        for th in thresholds:
            setting = d.model_copy(update={"threshold": th, "window": window, "min_votes": votes})
            rep = score(cfg, clf.classes, labels, [replay(cfg, setting, r) for r in recs])
            rows.append({"threshold": th, "window": window, "min_votes": votes,
                         **{k: rep[k] for k in (*RATES, "median_decision_s")}})
    best = choose(rows, wrong_goal, median_goal)
    return {"sweep": rows, "chosen": best, "wrong_goal": wrong_goal, "median_goal_s": median_goal,
            "images": len(images),
            "clips": {"seed": CLIP_SEED, "fps": cfg.camera.fps, "size": list(size)}}
