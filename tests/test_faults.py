"""The one fault record: kind and bin are data, the spelling is derived, blocking follows the kind."""

import pytest

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
