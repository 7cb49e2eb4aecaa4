"""The kiosk's current faults: which take it out of service, which only warn; each logged once.

The worker reports every fault it meets (a part's error, the hardware's
current list, every frame) and clears a part when it works again. The book
keeps one fault per part (``Fault.part``), writes a fault to the log when it
first appears or changes code (messages may carry timings, so not every
frame), and "OK recovered" when it clears. It knows nothing of screens or
flaps: the worker closes the flaps when ``report`` says the fault blocks,
and the view reads ``all()``. Imports only ``kiosk.faults``.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable

from kiosk.faults import Fault, PartKind

log = logging.getLogger(__name__)

RECOVERED_CODE = "OK"  # the event log's row for "this part works again"


def _no_record(code: str, part: str, message: str) -> None:
    pass


class FaultBook:
    """Blocking faults (out of service while any is kept) and warnings (shown, the kiosk sorts on)."""

    def __init__(self, record: Callable[[str, str, str], None] = _no_record, initial: Iterable[Fault] = ()):
        self.record = record  # the event log's record_fault(code, part, message)
        self.blocking: dict[str, Fault] = {}
        self.warnings: dict[str, Fault] = {}
        for f in initial:  # what failed before the loop began: already logged by whoever found it
            self._keep(f)

    @property
    def out_of_service(self) -> bool:
        return bool(self.blocking)

    def report(self, fault: Fault) -> bool:
        """Keep ``fault`` for its part; True when it takes the kiosk out of service."""
        old = self.blocking.get(fault.part) or self.warnings.get(fault.part)
        if old is None or old.code != fault.code:
            log.error("fault %s %s: %s", fault.code, fault.part, fault.message)
            self.record(fault.code, fault.part, fault.message)
        self._keep(fault)
        return bool(fault.blocking)

    def clear(self, part: str) -> None:
        """The part works again (a no-op when it had no fault)."""
        if (self.blocking.pop(part, None) or self.warnings.pop(part, None)) is not None:
            log.info("%s recovered", part)
            self.record(RECOVERED_CODE, part, "recovered")

    def sync(self, kinds: frozenset[PartKind], current: Iterable[Fault]) -> bool:
        """Make the faults of ``kinds`` exactly ``current`` (a device's list now). True if any blocks."""
        now = {f.part: f for f in current}
        for f in self.all():
            if f.kind in kinds and f.part not in now:
                self.clear(f.part)
        blocks = False
        for f in now.values():
            blocks = self.report(f) or blocks
        return blocks

    def all(self) -> tuple[Fault, ...]:
        """Blocking faults first, then warnings: what the screen lists."""
        return tuple(self.blocking.values()) + tuple(self.warnings.values())

    def bins_with(self, kind: PartKind) -> frozenset[str]:
        """Bins with a warning of ``kind`` (a locked-out flap's bin is out of order)."""
        return frozenset(f.bin_id for f in self.warnings.values() if f.kind is kind and f.bin_id)

    def _keep(self, fault: Fault) -> None:
        if fault.blocking:
            self.warnings.pop(fault.part, None)
            self.blocking[fault.part] = fault
        else:
            self.blocking.pop(fault.part, None)
            self.warnings[fault.part] = fault
