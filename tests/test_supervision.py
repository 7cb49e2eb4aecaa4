"""A supervised part: opened on demand, retried after its back-off, closed once."""

from kiosk.errors import CameraError
from kiosk.supervision import Backoff, Supervised


class Part:
    closed = 0

    def close(self):
        Part.closed += 1


def test_part_retried_with_backoff_then_kept_and_closed_once():
    attempts, failures, opened = [], [], []

    def opener():
        attempts.append(1)
        if len(attempts) < 3:
            raise CameraError("no camera")
        return Part()

    s = Supervised(opener, CameraError, Backoff(1.0, 4.0), on_failed=failures.append, on_opened=opened.append)
    assert s.ensure(0.0) is None and len(failures) == 1
    assert s.ensure(0.5) is None and len(attempts) == 1  # not due yet: no new attempt
    assert s.ensure(1.0) is None and len(attempts) == 2  # due; failed again, next in 2 s
    assert s.ensure(2.9) is None and len(attempts) == 2
    part = s.ensure(3.0)
    assert isinstance(part, Part) and opened == [part] and s.ensure(3.1) is part and len(attempts) == 3
    s.failed(4.0, CameraError("unplugged"))
    assert s.part is None and Part.closed == 1 and len(failures) == 3
    assert s.ensure(4.5) is None  # back-off reset by the success: first delay again (1 s)
    assert s.ensure(5.0) is not None
    s.close()
    s.close()
    assert Part.closed == 2
