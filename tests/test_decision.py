"""The decision engine with scripted inputs and a fake clock."""

import pytest

from kiosk.config import DecisionConfig
from kiosk.datatypes import Prediction
from kiosk.decision import Decider, Effect, State, usable_fallback

CLASS_TO_BIN = {"glass": "glass", "paper": "paper", "cardboard": "paper", "metal": "packaging", "trash": "residual"}
BINS = ["paper", "packaging", "glass", "residual"]


def pred(label, score=0.9):
    return Prediction(label, score, {label: score})


class Clock:
    def __init__(self, dt=1 / 30):
        self.t, self.dt = 0.0, dt

    def __call__(self):
        self.t += self.dt
        return self.t


def make(**kw):
    cfg = DecisionConfig(**{"fallback_bin": "residual", **kw})
    return Decider(cfg, CLASS_TO_BIN, BINS, scaled_bins=frozenset({"glass", "paper", "packaging", "residual"}))


def feed(d, clock, n, present, label=None, score=0.9):
    effects = []
    for _ in range(n):
        effects += d.update(clock(), present, pred(label, score) if label else None)
    return effects


def test_never_decides_without_presence():
    d, c = make(), Clock()
    effects = feed(d, c, 300, present=False, label="glass", score=0.99)
    assert effects == [] and d.state is State.IDLE and d.decision is None


def test_full_cycle_with_drop():
    d, c = make(), Clock()
    feed(d, c, 1, True, "glass")
    assert d.state is State.LOOKING
    effects = feed(d, c, 12, True, "glass")
    assert [e.kind for e in effects] == ["open"] and effects[0].bin_id == "glass"
    assert d.state is State.DECIDED and d.decision.label == "glass"
    feed(d, c, 30, True)  # decided_s 0.8 s
    assert d.state is State.AWAIT_DROP
    effects = d.dropped(c(), "glass", 240.0)
    assert [e.kind for e in effects] == ["close", "record"]
    rec = effects[1].decision
    assert rec.weight_g == 240.0 and rec.drop_confirmed is True and rec.bin_id == "glass" and not rec.corrected
    assert d.state is State.THANKS
    feed(d, c, 90, False)
    assert d.state is State.IDLE


def test_waits_min_look_and_votes():
    d, c = make(min_look_s=0.5, min_votes=3, window=5), Clock()
    effects = feed(d, c, 10, True, "paper")  # 0.33 s: too soon
    assert effects == [] and d.state is State.LOOKING
    effects = feed(d, c, 10, True, "paper")
    assert effects and effects[0].bin_id == "paper"


def test_item_still_in_view_is_not_a_second_item():
    d, c = make(), Clock()
    feed(d, c, 12, True, "glass")
    d.dropped(c(), "glass", 100)
    effects = feed(d, c, 300, True, "glass")  # person keeps holding something up
    assert [e.kind for e in effects] == [] and d.state is State.IDLE
    feed(d, c, 2, False)
    assert [e.kind for e in feed(d, c, 12, True, "metal")] == ["open"]


def test_disagreement_goes_unsure_and_choice_is_a_correction():
    d, c = make(look_timeout_s=1.0), Clock()
    labels = ["glass", "metal", "paper", "trash"] * 20
    effects = []
    for lab in labels[:40]:
        effects += d.update(c(), True, pred(lab))
    assert effects == [] and d.state is State.UNSURE
    assert d.choose(c(), "nonexistent") == []
    effects = d.choose(c(), "packaging")
    assert [e.kind for e in effects] == ["open"] and d.decision.corrected and d.decision.bin_id == "packaging"


def test_low_confidence_is_unsure_not_a_guess():
    d, c = make(threshold=0.7, look_timeout_s=1.0), Clock()
    effects = feed(d, c, 60, True, "glass", score=0.5)
    assert effects == [] and d.state is State.UNSURE and d.decision.unsure


def test_unsure_times_out_and_records():
    d, c = make(look_timeout_s=0.5, unsure_timeout_s=3.0), Clock()
    feed(d, c, 30, True, None)
    assert d.state is State.UNSURE
    effects = feed(d, c, 120, True)
    assert d.state is State.IDLE
    assert [e.kind for e in effects] == ["record"] and effects[0].decision.unsure


def test_no_drop_closes_and_records_no_drop():
    d, c = make(drop_timeout_s=2.0), Clock()
    feed(d, c, 12, True, "metal")
    effects = feed(d, c, 200, False)
    kinds = [e.kind for e in effects]
    assert kinds[:2] == ["close", "record"]
    assert effects[1].decision.drop_confirmed is False and effects[1].decision.weight_g is None


def test_bin_without_scale_records_unknown_drop():
    d = Decider(DecisionConfig(drop_timeout_s=1.0), CLASS_TO_BIN, BINS, scaled_bins=frozenset())
    c = Clock()
    feed(d, c, 12, True, "paper")
    effects = feed(d, c, 100, False)
    rec = [e for e in effects if e.kind == "record"][0].decision
    assert rec.drop_confirmed is None


def test_drop_on_another_bin_is_ignored():
    d, c = make(), Clock()
    feed(d, c, 12, True, "glass")
    assert d.dropped(c(), "paper", 300) == []
    assert d.state in (State.DECIDED, State.AWAIT_DROP)


def test_a_refused_flap_offers_the_other_bins_for_this_item_only():
    d, c = make(), Clock()
    effects = feed(d, c, 12, True, "glass")
    assert [e.kind for e in effects] == ["open"] and d.state is State.DECIDED
    assert d.refuse(c(), "paper") == []  # not the bin being opened: ignored
    assert d.refuse(c(), "glass") == [Effect("close", "glass")]
    assert d.state is State.BIN_FULL and d.suggested == "residual" and d.blocked == {"glass"} and d.full_bin == "glass"
    assert d.choose(c(), "glass") == []
    effects = d.choose(c(), "residual")
    assert [e.kind for e in effects] == ["open"] and d.decision.corrected and d.decision.label == "glass"
    feed(d, c, 1, False)
    effects = d.dropped(c(), "residual", 50.0)
    assert [e.kind for e in effects] == ["close", "record"]
    while d.state is not State.IDLE:
        feed(d, c, 1, False)
    assert d.blocked == set()  # the next item may use glass again
    effects = feed(d, c, 12, True, "glass")
    assert [e.kind for e in effects] == ["open"] and effects[0].bin_id == "glass"


def test_a_chosen_bin_that_refuses_is_the_one_named_full():
    """Unsure, the person picks paper; paper's flap refuses: the screen names paper, not the model's guess."""
    d, c = make(), Clock()
    feed(d, c, 12, True, "glass", score=0.3)
    while d.state is not State.UNSURE:
        feed(d, c, 1, True, "glass", score=0.3)
    assert [e.kind for e in d.choose(c(), "paper")] == ["open"]
    d.refuse(c(), "paper")
    assert d.state is State.BIN_FULL and d.full_bin == "paper" and d.decision.corrected


def test_full_bin_refuses_and_suggests_fallback():
    d, c = make(), Clock()
    d.set_full({"glass"})
    effects = feed(d, c, 12, True, "glass")
    assert effects == [] and d.state is State.BIN_FULL and d.suggested == "residual" and d.full_bin == "glass"
    assert d.choose(c(), "glass") == []  # the full bin stays shut
    effects = d.choose(c(), "residual")
    assert [e.kind for e in effects] == ["open"] and effects[0].bin_id == "residual"


def test_a_full_fallback_bin_is_not_suggested():
    """Both bins full: the bin-full screen asks for another bin rather than naming a shut one."""
    d, c = make(), Clock()
    d.set_full({"glass", "residual"})
    feed(d, c, 12, True, "glass")
    assert d.state is State.BIN_FULL and d.suggested is None
    # the rule the unsure screen's "if in doubt" hint uses too
    assert usable_fallback("residual", {"glass"}) == "residual"
    assert usable_fallback("residual", {"residual"}) is None
    assert usable_fallback("residual", set(), instead_of="residual") is None and usable_fallback(None, set()) is None


def test_unknown_class_is_never_guessed():
    d, c = make(), Clock()
    effects = feed(d, c, 12, True, "plastic")  # not in CLASS_TO_BIN
    assert effects == [] and d.state is State.UNSURE


def test_abort_closes_an_open_flap():
    d, c = make(), Clock()
    feed(d, c, 12, True, "glass")
    effects = d.abort(c())
    assert [(e.kind, e.bin_id) for e in effects] == [("close", "glass")] and d.state is State.IDLE


@pytest.mark.parametrize("present", [True, False])
def test_every_state_returns_to_idle_and_every_open_is_closed(present):
    """Whatever happens afterwards, an opened flap is closed and the engine comes back."""
    d, c = make(), Clock()
    opened, closed = [], []
    for step in range(30 * 60):
        label = ["glass", "metal", "paper"][(step // 7) % 3]
        is_present = present if step > 10 else True
        for e in d.update(c(), is_present, pred(label, 0.95)):
            (opened if e.kind == "open" else closed if e.kind == "close" else []).append(e.bin_id)
        if d.state is State.UNSURE and step % 50 == 0:
            for e in d.choose(c(), "residual"):
                opened.append(e.bin_id)
    for _ in range(30 * 60):
        for e in d.update(c(), False):
            (opened if e.kind == "open" else closed if e.kind == "close" else []).append(e.bin_id)
    assert opened, "the scenario should open at least one flap"
    assert opened == closed
    assert d.state is State.IDLE


def test_rules_must_point_to_known_bins():
    with pytest.raises(ValueError, match="unknown bins"):
        Decider(DecisionConfig(), {"glass": "bottle_bank"}, BINS)


def test_a_tap_on_another_bin_corrects_an_open_decision_one_flap_at_a_time():
    d, c = make(), Clock()
    feed(d, c, 13, True, "glass")
    assert d.state is State.DECIDED and d.decision.bin_id == "glass"
    assert d.choose(c(), "glass") == []  # the open one: nothing to change
    effects = d.choose(c(), "paper")
    assert [(e.kind, e.bin_id) for e in effects] == [("close", "glass"), ("open", "paper")]  # never two open
    assert d.state is State.DECIDED and d.decision.corrected and d.decision.label == "glass"
    feed(d, c, 30, True)
    assert d.state is State.AWAIT_DROP
    effects = d.choose(c(), "packaging")  # on the drop screen too
    assert [(e.kind, e.bin_id) for e in effects] == [("close", "paper"), ("open", "packaging")]
    effects = d.dropped(c(), "packaging", 120.0)
    rec = effects[-1].decision
    assert (rec.label, rec.bin_id, rec.corrected, rec.unsure) == ("glass", "packaging", True, False)
    assert rec.score == pytest.approx(0.9)  # the model's class and score stay in the record


def test_a_correction_to_a_full_bin_is_refused():
    d, c = make(), Clock()
    d.set_full({"paper"})
    feed(d, c, 13, True, "glass")
    assert d.choose(c(), "paper") == [] and d.decision.bin_id == "glass"


def test_try_again_looks_afresh_and_guesses_name_the_leaning_bins():
    d, c = make(min_votes=3, window=6), Clock()
    feed(d, c, 1, True, "glass")
    for label in ["glass", "paper", "metal", "glass", "paper", "metal"] * 20:
        d.update(c(), True, Prediction(label, 0.5, {"glass": 0.4, "paper": 0.35, "metal": 0.25}))
        if d.state is State.UNSURE:
            break
    assert d.state is State.UNSURE
    assert d.guesses() == ["glass", "paper"]
    d.set_full({"glass"})
    assert d.guesses() == ["paper", "packaging"]  # a full bin is never offered
    assert d.retry(c()) == [] and d.state is State.IDLE and d.armed and d.decision is None
    feed(d, c, 1, True, "glass")
    assert d.state is State.LOOKING  # the item still held up is looked at again at once
    assert d.retry(c()) == []  # only the unsure screen has "try again"


def _split(scores):
    """A frame whose scores are ``scores`` (its top class is the label)."""
    label = max(scores, key=scores.get)
    return Prediction(label, scores[label], dict(scores))


def test_votes_are_for_bins_so_wavering_between_paper_and_cardboard_is_sure_of_the_paper_bin():
    d, c = make(threshold=0.8), Clock()
    for i in range(20):
        # no class reaches the threshold; their bin does (0.9), whichever of the two leads this frame
        lead, other = ("paper", "cardboard") if i % 2 else ("cardboard", "paper")
        effects = d.update(c(), True, _split({lead: 0.46, other: 0.44, "glass": 0.1}))
        if effects:
            break
    assert [e.kind for e in effects] == ["open"] and effects[0].bin_id == "paper"
    assert d.decision.label in ("paper", "cardboard") and d.decision.score == pytest.approx(0.9)


def test_a_bin_whose_classes_together_outweigh_the_top_class_wins():
    d, c = make(threshold=0.55), Clock()
    effects = []
    for _ in range(20):  # metal is the likeliest class (0.4), the paper bin the likeliest flap (0.6)
        effects += d.update(c(), True, _split({"metal": 0.4, "paper": 0.31, "cardboard": 0.29}))
    assert [e.kind for e in effects][:1] == ["open"] and effects[0].bin_id == "paper"
    assert d.decision.label == "paper" and d.decision.score == pytest.approx(0.6)


def test_a_top_class_no_rule_knows_still_goes_unsure_when_it_wins_the_vote():
    d, c = make(threshold=0.5), Clock()
    for _ in range(90):
        d.update(c(), True, _split({"plastic": 0.7, "paper": 0.2, "cardboard": 0.1}))
    assert d.state is State.UNSURE and d.decision.label == "plastic" and d.decision.bin_id is None


def test_a_prediction_without_scores_keeps_its_class_so_the_label_is_in_the_winning_bin():
    # A classifier may give only its top class (empty ``scores``): the paper bin wins 3 of 4 votes on the
    # glass frame, and the decision must still name a paper-bin class, not the latest frame's glass.
    d, c = make(min_look_s=0.25, min_votes=3, window=5), Clock(dt=0.1)
    effects = []
    for label in ("paper", "paper", "paper", "glass"):
        effects += d.update(c(), True, Prediction(label, 0.95))
    assert [e.kind for e in effects] == ["open"] and effects[0].bin_id == "paper"
    assert d.decision.label == "paper" and d.decision.scores == pytest.approx({"paper": 0.95 * 3 / 4,
                                                                               "glass": 0.95 / 4})


def test_two_bins_tied_on_votes_is_no_winner():
    # window 6, min_votes 3 allows 3:3; the bin seen first must not open on equal evidence for another
    d, c = make(min_look_s=0.45, min_votes=3, window=6), Clock(dt=0.1)
    effects = []
    for label in ("glass", "glass", "glass", "paper", "paper", "paper"):
        effects += d.update(c(), True, pred(label, 0.95))
    assert effects == [] and d.state is State.LOOKING
    effects = d.update(c(), True, pred("paper", 0.95))  # the oldest glass vote leaves the window: 4 to 2
    assert [e.kind for e in effects] == ["open"] and effects[0].bin_id == "paper"
