"""The decision engine: pure logic, no I/O, time passed in by the caller.

IDLE -> LOOKING -> DECIDED -> AWAIT_DROP -> THANKS -> IDLE, with UNSURE
(no agreement: the person picks a bin) and BIN_FULL (the right bin refuses
items: another is suggested). Every state but IDLE has a timeout.

The engine never touches hardware. Each call returns the ``Effect``s the
caller must carry out (open/close a flap, record an outcome), so the whole
machine is tested with scripted inputs and a fake clock.

Safety rules enforced here:
- a decision needs presence *now* and enough recent votes made while present;
- after an interaction the item must leave the view before the next one
  starts (a person still standing there is not a second item);
- a flap is opened only on entering DECIDED and is always closed on leaving
  AWAIT_DROP, whichever way it is left.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, replace
from enum import Enum
from typing import Optional

from kiosk.config import DecisionConfig
from kiosk.datatypes import Decision, Prediction


class State(str, Enum):
    IDLE = "idle"
    LOOKING = "looking"
    DECIDED = "decided"
    AWAIT_DROP = "await_drop"
    THANKS = "thanks"
    UNSURE = "unsure"
    BIN_FULL = "bin_full"


@dataclass(frozen=True)
class Effect:
    """Something the caller must do: ``open``/``close`` a flap, or ``record`` an outcome."""

    kind: str
    bin_id: Optional[str] = None
    decision: Optional[Decision] = None


def usable_fallback(fallback: Optional[str], blocked, instead_of: Optional[str] = None) -> Optional[str]:
    """The "if in doubt" bin when it can take an item now, else None.

    One rule for every screen that names it (the bin-full screen's "use this
    instead", the unsure screen's "if in doubt"): a full or locked-out fallback
    is never offered, so no one is sent to a flap that will not open.
    """
    return fallback if fallback and fallback not in blocked and fallback != instead_of else None


class Decider:
    """State machine over presence, predictions, drops and touches."""

    def __init__(self, cfg: DecisionConfig, class_to_bin: dict[str, str], bins: list[str],
                 scaled_bins: frozenset[str] = frozenset()):
        missing = sorted(set(class_to_bin.values()) - set(bins))
        if missing:
            raise ValueError(f"rules point to unknown bins: {missing}")
        self.cfg = cfg
        self.class_to_bin = dict(class_to_bin)
        self.bins = list(bins)
        self.scaled_bins = frozenset(scaled_bins)
        self.full: set[str] = set()
        self.refused_now: set[str] = set()  # flaps that would not open for the item in front of us
        self.state = State.IDLE
        self.since = 0.0
        self.votes: deque[Prediction] = deque(maxlen=cfg.window)
        self.decision: Optional[Decision] = None
        self.suggested: Optional[str] = None  # BIN_FULL: where to go instead
        self.full_bin: Optional[str] = None  # BIN_FULL: the bin that cannot take this item
        self.armed = True  # False until the view is empty after an interaction
        self.progress = 0.0  # LOOKING: how close to a decision (0..1), for the UI

    # ---- inputs -----------------------------------------------------------
    def update(self, now: float, present: bool, prediction: Optional[Prediction] = None) -> list[Effect]:
        """Feed one frame's presence (and prediction, if the model ran)."""
        if not present:
            self.armed = True
        s = self.state
        if s is State.IDLE:
            if present and self.armed:
                self._enter(State.LOOKING, now)
                self.votes.clear()
                self.progress = 0.0
                if prediction is not None:
                    self.votes.append(prediction)
            return []
        if s is State.LOOKING:
            if not present:
                self._enter(State.IDLE, now)  # it left before we were sure: nothing decided
                return []
            if prediction is not None:
                self.votes.append(prediction)
            return self._try_decide(now)
        return self.tick(now)

    def tick(self, now: float) -> list[Effect]:
        """Advance timeouts only (call at least once per frame)."""
        s, dt, c = self.state, now - self.since, self.cfg
        if s is State.LOOKING and dt >= c.look_timeout_s:
            return self._go_unsure(now)
        if s is State.DECIDED and dt >= c.decided_s:
            self._enter(State.AWAIT_DROP, now)
        elif s is State.AWAIT_DROP and dt >= c.drop_timeout_s:
            confirmed = False if self.decision.bin_id in self.scaled_bins else None
            return self._finish(now, weight=None, confirmed=confirmed)
        elif s is State.THANKS and dt >= c.thanks_s:
            self._enter(State.IDLE, now)
        elif s in (State.UNSURE, State.BIN_FULL) and dt >= c.unsure_timeout_s:
            d = self.decision
            self._enter(State.IDLE, now)
            self.armed = False
            return [Effect("record", decision=d)] if d else []
        return []

    def dropped(self, now: float, bin_id: str, grams: float) -> list[Effect]:
        """The scale under ``bin_id`` confirmed a drop of ``grams``."""
        if self.state in (State.DECIDED, State.AWAIT_DROP) and self.decision and bin_id == self.decision.bin_id:
            return self._finish(now, weight=grams, confirmed=True)
        return []

    def choose(self, now: float, bin_id: str) -> list[Effect]:
        """The person touched a bin: on the unsure or bin-full screen, or another bin than the open one.

        A correction of an open bin closes that flap before the chosen one opens
        (never two open), and the record keeps the model's class and score with
        the bin the person chose (``corrected``): what ``kiosk stats`` counts.
        """
        if bin_id not in self.bins or bin_id in self.blocked:
            return []
        if self.state in (State.DECIDED, State.AWAIT_DROP) and self.decision and self.decision.bin_id != bin_id:
            old = self.decision.bin_id
            return [Effect("close", old)] + self._open(now, replace(self.decision, t=now, bin_id=bin_id, corrected=True))
        if self.state not in (State.UNSURE, State.BIN_FULL):
            return []
        base = self.decision or Decision(t=now, bin_id=None, label=None)
        return self._open(now, replace(base, t=now, bin_id=bin_id, corrected=True))

    def retry(self, now: float) -> list[Effect]:
        """"Try again" on the unsure screen: look afresh at what is held up now (no flap was open)."""
        if self.state is not State.UNSURE:
            return []
        self.decision = None
        self.votes.clear()
        self._enter(State.IDLE, now)
        self.armed = True  # the item may still be in view: that is the point
        return []

    def guesses(self, n: int = 2) -> list[str]:
        """The ``n`` bins the model leant to for this item, likeliest first (class scores summed per bin).

        What the unsure screen offers as its largest targets; full bins are left out.
        """
        d = self.decision
        per_bin = {b: s for b, s in self._per_bin((d.scores or {}) if d else {}).items()
                   if isinstance(b, str) and b not in self.blocked}
        return [b for b, _ in sorted(per_bin.items(), key=lambda kv: -kv[1])[:n]]

    def set_full(self, full_bins: set[str]) -> None:
        """Bins that refuse items until emptied (from the fill levels)."""
        self.full = set(full_bins) & set(self.bins)

    @property
    def blocked(self) -> set[str]:
        """Bins that cannot take this item: full ones, and any flap that just refused."""
        return self.full | self.refused_now

    def refuse(self, now: float, bin_id: str) -> list[Effect]:
        """The flap of ``bin_id`` would not open: offer the other bins for this item.

        The person sees the bin-full screen with that bin disabled, rather than
        a screen that says "put it here" over a shut flap. Nothing is recorded
        yet: the item's outcome is what the person does next.
        """
        d = self.decision
        if self.state is not State.DECIDED or d is None or d.bin_id != bin_id:
            return []
        self.refused_now.add(bin_id)
        self.full_bin = bin_id
        self.decision = replace(d, bin_id=None)
        self.suggested = usable_fallback(self.cfg.fallback_bin, self.blocked)
        self._enter(State.BIN_FULL, now)
        return [Effect("close", bin_id)]

    def abort(self, now: float) -> list[Effect]:
        """A fault took the kiosk out of service: close anything open, go idle."""
        effects = []
        if self.state in (State.DECIDED, State.AWAIT_DROP) and self.decision:
            effects.append(Effect("close", self.decision.bin_id))
        self._enter(State.IDLE, now)
        self.decision = None
        self.armed = False
        return effects

    # ---- internals --------------------------------------------------------
    def _enter(self, state: State, now: float) -> None:
        self.state, self.since = state, now
        if state is State.IDLE:
            self.refused_now.clear()

    def _try_decide(self, now: float) -> list[Effect]:
        c = self.cfg
        if not self.votes:
            return self.tick(now)
        # Votes are for flaps, not classes: paper and cardboard are one bin, so a view that wavers between
        # them is sure of its bin. Each frame votes for the bin its class scores sum highest in.
        per_frame = [self._per_bin(_class_scores(p)) for p in self.votes]
        tops = [max(b, key=b.get) for b in per_frame]
        ranked = Counter(tops).most_common(2)
        dest, n = ranked[0]
        tied = len(ranked) > 1 and ranked[1][1] == n  # equal votes for two flaps (window >= 2 * min_votes): no winner
        mean = sum(b[dest] for b, t in zip(per_frame, tops) if t == dest) / n
        self.progress = min(1.0, n / c.min_votes) * min(1.0, (now - self.since) / max(c.min_look_s, 1e-6))
        if now - self.since < c.min_look_s or n < c.min_votes or tied or mean < c.threshold:
            return self.tick(now)
        scores = _mean_scores(self.votes)
        mine = {k: v for k, v in scores.items() if self._destination(k) == dest}
        label = max(mine, key=mine.get)  # the class whose guidance is shown
        bin_id = dest if isinstance(dest, str) else None
        d = Decision(t=now, bin_id=bin_id, label=label, score=mean, scores=scores)
        if bin_id is None:  # the model knows a class the rules do not: never guess
            return self._go_unsure(now, d)
        if bin_id in self.blocked:
            self.full_bin = bin_id
            self.decision = replace(d, bin_id=None)
            self.suggested = usable_fallback(c.fallback_bin, self.blocked, instead_of=bin_id)
            self._enter(State.BIN_FULL, now)
            self.armed = False
            return []
        return self._open(now, d)

    def _destination(self, label: str):
        """The bin a class goes to; a class no rule knows is its own destination (never a flap)."""
        return self.class_to_bin.get(label, ("unknown", label))

    def _per_bin(self, scores: dict[str, float]) -> dict:
        """Class scores summed per destination (``_destination``)."""
        out: dict = {}
        for label, score in scores.items():
            key = self._destination(label)
            out[key] = out.get(key, 0.0) + float(score)
        return out

    def _go_unsure(self, now: float, d: Optional[Decision] = None) -> list[Effect]:
        if d is None:
            scores = _mean_scores(self.votes)
            best = max(scores, key=scores.get) if scores else None
            d = Decision(t=now, bin_id=None, label=best, score=scores.get(best, 0.0) if best else 0.0, scores=scores)
        self.decision = replace(d, bin_id=None, unsure=True)
        self._enter(State.UNSURE, now)
        self.armed = False
        return []

    def _open(self, now: float, d: Decision) -> list[Effect]:
        self.decision = d
        self.armed = False
        self._enter(State.DECIDED, now)
        return [Effect("open", d.bin_id)]

    def _finish(self, now: float, weight: Optional[float], confirmed: Optional[bool]) -> list[Effect]:
        d = replace(self.decision, weight_g=weight, drop_confirmed=confirmed)
        self.decision = d
        self._enter(State.THANKS, now)
        return [Effect("close", d.bin_id), Effect("record", decision=d)]


def _class_scores(p: Prediction) -> dict[str, float]:
    """A frame's score per class; one without them counts as its top class alone."""
    return p.scores or {p.label: p.score}


def _mean_scores(votes) -> dict[str, float]:
    total: dict[str, float] = {}
    for p in votes:
        for k, v in _class_scores(p).items():
            total[k] = total.get(k, 0.0) + v
    n = max(len(votes), 1)
    return {k: v / n for k, v in total.items()}
