"""Reference photos a new model must answer as it did where it was published, no slower than 2x the old one.

Why photos and not only the card's golden logits: the self-check proves the
kernels compute the file correctly; the canary proves the file is a model
that sorts. The publisher picks photos the model gets right with a clear
margin (so another CPU's int8 kernels cannot flip them), the update ships
them, and the kiosk plays them through the same ``classify`` it sorts with.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from kiosk.errors import ImageError
from kiosk.model.dataset import list_images, read_rgb

SLOWER_LIMIT = 2.0  # the new model may take at most this many times the old one's time, here
ROUNDS = 3
TIMING_RETRIES = 2  # re-timings before a model is called slower
MIN_SCORE = 0.7  # a canary photo is one the model answers with at least this confidence


@dataclass
class CanaryResult:
    ok: bool
    reason: str = ""
    wrong: list[tuple[str, str, str]] = field(default_factory=list)  # (photo, expected, answered)
    new_ms: float = 0.0
    old_ms: Optional[float] = None

    def summary(self) -> str:
        speed = f"{self.new_ms:.1f} ms per photo" + (f" vs {self.old_ms:.1f} ms" if self.old_ms else "")
        return ("passed" if self.ok else f"failed: {self.reason}") + f" ({speed})"


def run_canary(new, photos: list[tuple[Path, str]], old=None, rounds: int = ROUNDS) -> CanaryResult:
    """Play ``photos`` through ``new`` (and ``old``, interleaved, for a fair time on a busy machine)."""
    images = []
    for path, expected in photos:
        try:
            images.append((path, read_rgb(path), expected))
        except ImageError as e:
            return CanaryResult(False, f"canary photo {path.name} unreadable: {e}")
    wrong = []
    for path, rgb, expected in images:
        label = new.classify(rgb).label
        if label != expected:
            wrong.append((path.name, expected, label))
    new_ms, old_ms = _timed(new, old, images, rounds)
    # A kiosk busy for a moment (a log rotation, an SD card flush) can make one
    # timing look slow: only a model slow on every one of the re-timings is refused.
    for _ in range(TIMING_RETRIES):
        if not (old_ms and new_ms > SLOWER_LIMIT * old_ms):
            break
        again_new, again_old = _timed(new, old, images, rounds)
        if again_new * old_ms < new_ms * again_old:  # a better ratio (no division: a 0 ms timing)
            new_ms, old_ms = again_new, again_old
    result = CanaryResult(True, wrong=wrong, new_ms=new_ms, old_ms=old_ms)
    if wrong:
        result.ok = False
        result.reason = f"{len(wrong)} of {len(images)} reference photos answered wrongly: " + ", ".join(
            f"{p} is {e}, model said {got}" for p, e, got in wrong[:4])
    elif result.old_ms and result.new_ms > SLOWER_LIMIT * result.old_ms:
        result.ok = False
        result.reason = (f"{result.new_ms / result.old_ms:.1f}x slower than the running model here "
                         f"(limit {SLOWER_LIMIT:.0f}x)")
    return result


def _timed(new, old, images, rounds: int) -> tuple[float, Optional[float]]:
    """Median ms per photo of ``new`` and ``old``, each photo timed on both back to back."""
    new_t, old_t = [], []
    for _ in range(rounds):
        for _path, rgb, _expected in images:
            t = time.perf_counter()
            new.classify(rgb)
            new_t.append(time.perf_counter() - t)
            if old is not None:
                t = time.perf_counter()
                old.classify(rgb)
                old_t.append(time.perf_counter() - t)
    return 1000 * statistics.median(new_t), (1000 * statistics.median(old_t) if old_t else None)


def choose_canary(clf, folder: Path, per_class: int = 2, min_score: float = MIN_SCORE) -> list[tuple[Path, str]]:
    """Up to ``per_class`` photos per class in ``folder/<class>/`` that ``clf`` answers right, confidently."""
    items, _ = list_images(folder, clf.classes)
    chosen: dict[str, list[Path]] = {}
    for path, c in items:
        cls = clf.classes[c]
        if len(chosen.get(cls, [])) >= per_class:
            continue
        try:
            p = clf.classify(read_rgb(path))
        except ImageError:
            continue
        if p.label == cls and p.score >= min_score:
            chosen.setdefault(cls, []).append(path)
    return [(p, cls) for cls in clf.classes for p in chosen.get(cls, [])]


__all__ = ["run_canary", "choose_canary", "CanaryResult", "SLOWER_LIMIT"]
