"""The one fault record: kind and bin are data, the spelling is derived, blocking follows the kind."""

import pytest

from kiosk.faultbook import FaultBook
from kiosk.faults import Fault, PartKind


def test_fault_spells_its_part_and_knows_if_it_blocks():
    scale = Fault("E421", "scale", "saturated", "glass")
    assert scale.kind is PartKind.SCALE and scale.part == "scale:glass" and scale.blocking
    flap = Fault("E410", PartKind.FLAP, "jammed", "paper")
    assert flap.part == "flap:paper" and not flap.blocking  # a jam locks out one bin, the kiosk sorts on
    assert Fault("E200", "camera", "gone").part == "camera"
    assert not Fault("E301", "model", "reference path", blocking=False).blocking


def test_unknown_part_kind_is_refused():
    with pytest.raises(ValueError):
        Fault("E999", "scale:glass", "a string part is no longer a kind")


def test_fault_book_logs_a_fault_once_and_its_recovery():
    rows = []
    book = FaultBook(lambda code, part, msg: rows.append((code, part)))
    cam = Fault("E200", "camera", "gone after 1.2 s")
    assert book.report(cam) and book.out_of_service
    assert book.report(Fault("E200", "camera", "gone after 3.4 s"))  # same code, new timing: not logged again
    assert rows == [("E200", "camera")]
    assert not book.report(Fault("E410", "flap", "jammed", "glass"))  # a warning: the kiosk sorts on
    assert book.bins_with(PartKind.FLAP) == {"glass"} and [f.part for f in book.all()] == ["camera", "flap:glass"]
    book.clear("camera")
    book.clear("camera")  # clearing what is not there records nothing
    assert not book.out_of_service and rows[-1] == ("OK", "camera") and rows.count(("OK", "camera")) == 1


def test_fault_book_sync_makes_a_kind_match_the_device_list():
    rows = []
    book = FaultBook(lambda code, part, msg: rows.append((code, part)),
                     initial=[Fault("E100", "config", "bad key")])
    kinds = frozenset({PartKind.SCALE, PartKind.FLAP})
    assert book.sync(kinds, [Fault("E421", "scale", "saturated", "glass")])
    assert not book.sync(kinds, [Fault("E410", "flap", "jammed", "paper")])
    parts = [f.part for f in book.all()]
    assert parts == ["config", "flap:paper"]  # the scale cleared, the config fault (another kind) kept
    assert rows == [("E421", "scale:glass"), ("OK", "scale:glass"), ("E410", "flap:paper")]  # startup faults not re-logged
