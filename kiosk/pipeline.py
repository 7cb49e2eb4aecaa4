"""The frame path: presence gate, then the model where something is, then the decision engine.

One definition, run by the kiosk's worker (``kiosk.worker``), timed by
``kiosk bench`` through the same ``step`` with a stage timer, and measured
by ``kiosk eval --as-kiosk`` (``kiosk.model.as_kiosk``).
"""

from __future__ import annotations

from typing import Optional

from kiosk.classifier import Classifier
from kiosk.config import DecisionConfig, KioskConfig
from kiosk.datatypes import Frame, Prediction, Presence
from kiosk.decision import Decider, Effect, State
from kiosk.presence import PresenceGate
from kiosk.timing import NULL_TIMER


class Pipeline:
    """One frame through gate, model and engine: the kiosk runs it, ``kiosk bench`` times it."""

    def __init__(self, cfg: KioskConfig, classifier: Classifier, frame_size: tuple[int, int],
                 classify_every_frame: bool = False):
        self.cfg = cfg
        self.classify_every_frame = classify_every_frame  # the benchmark's worst case
        self.classifier = classifier
        self.gate = PresenceGate(cfg.presence, frame_size)
        self.decider = make_decider(cfg, cfg.decision)

    def wants_prediction(self, presence: Presence) -> bool:
        return wants_prediction(self.decider, presence, self.classify_every_frame)

    def step(self, frame: Frame, timer=NULL_TIMER) -> tuple[Presence, Optional[Prediction], list[Effect]]:
        with timer.stage("presence"):
            presence = self.gate.update(frame.image)
        prediction = None
        if self.wants_prediction(presence):
            prediction = self.classifier.classify(presence.roi.crop(frame.image), timer=timer)
        with timer.stage("decide"):
            effects = self.decider.update(frame.t, presence.present, prediction)
        return presence, prediction, effects


def make_decider(cfg: KioskConfig, decision: DecisionConfig) -> Decider:
    """The engine for ``cfg``'s rules and bins, with ``decision``'s settings (``kiosk eval --sweep`` varies them)."""
    class_to_bin = {c: r.bin for c, r in cfg.rules.items()}
    scaled = frozenset(b.id for b in cfg.bins if b.scale.type != "none")
    return Decider(decision, class_to_bin, [b.id for b in cfg.bins], scaled)


def wants_prediction(decider: Decider, presence: Presence, every_frame: bool = False) -> bool:
    """Whether this frame goes through the model: only while the engine is looking at an item."""
    return presence.present and presence.roi is not None and (
        every_frame or decider.state is State.LOOKING or (decider.state is State.IDLE and decider.armed)
    )
