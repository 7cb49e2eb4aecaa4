"""Which screen shows: the service screen beats out of service beats the engine's state."""

import numpy as np

from kiosk.datatypes import Frame, Presence, Roi
from kiosk.faultbook import FaultBook
from kiosk.faults import Fault
from kiosk.view import View
from kiosk.viewmodel import compose_view, to_screen


def _view(book, service=False):
    return compose_view(View(), frame=None, presence=Presence(False), decider=None, faults=book,
                        service_mode=service, language="de", fill={}, counts_today={"glass": 1}, fps=0.0)


def test_service_screen_shows_even_out_of_service():
    book = FaultBook(initial=[Fault("E200", "camera", "gone")])
    assert _view(book).screen == "out_of_service"
    v = _view(book, service=True)
    assert v.screen == "service" and v.faults[0].code == "E200" and v.language == "de" and v.counts_today == {"glass": 1}


def test_roi_is_scaled_to_the_preview():
    f = Frame(image=np.zeros((120, 160, 3), np.uint8), t=0.0, seq=1, preview=np.zeros((480, 640, 3), np.uint8))
    assert to_screen(Roi(10, 20, 30, 40), f) == Roi(40, 80, 120, 160)
    assert to_screen(Roi(10, 20, 30, 40), Frame(image=f.image, t=0.0, seq=1)) == Roi(10, 20, 30, 40)
