"""Devices close once and are context managers, as gpiozero's are: one definition of that contract.

A subclass writes ``_close()``; ``close()`` runs it the first time only and
``closed`` says whether it ran, so a ``finally`` and a ``with`` may both
close the same device without harm. Imports nothing of the kiosk.
"""

from __future__ import annotations


class Closable:
    closed: bool = False

    def _close(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
