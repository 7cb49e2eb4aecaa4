"""One error tree for the kiosk, so callers can catch a whole family at once.

Every error carries a short ``code`` that the out-of-service screen shows and
that a technician can look up in the README.
"""

from __future__ import annotations

import reprlib

EXCERPT_CHARS = 40


def excerpt(value, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)``, bounded: a crafted file must not put megabytes into a message or the journal."""
    r = reprlib.Repr()  # Python 3.11: no keyword arguments yet
    r.maxstring = r.maxother = r.maxlong = limit
    r.maxlevel = 2
    return r.repr(value)


class KioskError(Exception):
    """Root of every error the kiosk raises on purpose.

    ``code=`` overrides the class's code for one instance: a refusal that is
    really a part's fault (a tare on a dead chip) carries that fault's code.
    """

    code = "E000"

    def __init__(self, *args, code: str | None = None):
        super().__init__(*args)
        if code is not None:
            self.code = code


class ConfigError(KioskError):
    """The configuration file is missing, malformed or invalid."""

    code = "E100"

    def __init__(self, problems, path=None):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__(where + "; ".join(self.problems))


class CameraError(KioskError):
    """The camera could not be opened or stopped delivering frames."""

    code = "E200"


class ModelError(KioskError):
    """The model file or its card is missing, corrupt or inconsistent."""

    code = "E300"


class ImageError(KioskError):
    """An image handed to the pipeline is not a usable RGB picture."""

    code = "E310"


class HardwareError(KioskError):
    """A flap, switch or scale misbehaved."""

    code = "E400"


class UpdateError(KioskError):
    """A model update was refused or could not be installed; the running model is untouched.

    E701: refused by TUF (a signature, threshold, hash, rollback or expiry check failed).
    E702: the canary failed (the new model does not load, answers its reference photos wrongly, or is too slow).
    E703: the update source cannot be reached. E704: the data partition cannot take the install.
    E705: the update settings or a command's arguments are wrong (no trusted root, no keys).
    """

    code = "E700"
