"""Building the frozen ``View`` from the worker's state: which screen, what it shows.

The one place that decides the screen (service beats out of service beats
the decision engine's state) and translates the gate's ROI from analysis
pixels to the preview the screen shows. Pure: plain values in, a ``View``
out, so a screen's content is tested without a thread or a camera.
"""

from __future__ import annotations

from typing import Mapping, Optional

from kiosk.datatypes import Frame, Presence, Roi
from kiosk.decision import Decider, State
from kiosk.faultbook import FaultBook
from kiosk.faults import PartKind
from kiosk.view import View


def to_screen(roi: Optional[Roi], frame: Optional[Frame]) -> Optional[Roi]:
    """The gate's ROI is in analysis pixels; the screen may show the bigger preview."""
    if roi is None or frame is None or frame.preview is None:
        return roi
    sy = frame.preview.shape[0] / frame.image.shape[0]
    sx = frame.preview.shape[1] / frame.image.shape[1]
    return Roi(int(roi.x * sx), int(roi.y * sy), int(roi.w * sx), int(roi.h * sy))


def screen_for(service_mode: bool, faults: FaultBook, decider: Optional[Decider]) -> str:
    if service_mode:  # reachable while out of service: that is when a technician needs it
        return "service"
    if faults.out_of_service or decider is None:
        return "out_of_service"
    return decider.state.value


def compose_view(prev: View, *, frame: Optional[Frame], presence: Presence, decider: Optional[Decider],
                 faults: FaultBook, service_mode: bool, language: str, fill: Mapping[str, float],
                 counts_today: Mapping[str, int], fps: float, crop=None) -> View:
    """The next View; without a new frame the last picture stays up. ``crop``: the item the model last saw."""
    d = decider
    screen = screen_for(service_mode, faults, d)
    unsure = screen == "unsure"
    return View(
        screen=screen,
        language=language,
        frame=frame.screen if frame is not None else prev.frame,
        frame_seq=frame.seq if frame is not None else prev.frame_seq,
        roi=to_screen(presence.roi, frame),
        progress=d.progress if d else 0.0,
        decision=d.decision if d else None,
        suggested_bin=d.suggested if d else None,
        full_bin=d.full_bin if d is not None and d.state is State.BIN_FULL else None,
        fill=dict(fill),
        refused=frozenset(d.blocked) if d else frozenset(),
        out_of_order=faults.bins_with(PartKind.FLAP) | (frozenset(d.refused_now) if d else frozenset()),
        faults=faults.all(),
        counts_today=dict(counts_today),
        fps=fps,
        crop=crop if unsure else None,
        guesses=tuple(d.guesses()) if unsure and d is not None else (),
    )
