"""Would two models together do better than one? Each model's figures and those of the mean of their scores.

    python benchmarks/ensemble_check.py models/kiosk-lite0-int8.onnx build/export-r7/kiosk-lite2-int8.onnx \
        [--trashnet ../shared/data/trashnet] [--extra ../shared/data/taco-crops]

Every model runs through the kiosk's own classify path (``OnnxClassifier``: CLAHE, its card's
temperature and test-time mirror); the ensemble averages the calibrated class scores. Sets: TrashNet
``val``, its composited copy (the own cross-background check), each degradation of
``kiosk.model.degrade`` (and their mean) and the extra source's ``val``. An ensemble costs the sum of
its members' inference times: the kiosk ships one model, so this is a check, not a feature.
Runs on the runtime install (no PyTorch).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kiosk.classifier import OnnxClassifier  # noqa: E402
from kiosk.model import degrade  # noqa: E402
from kiosk.model.cpuinfo import cpu_info  # noqa: E402
from kiosk.model.dataset import list_images, read_rgb  # noqa: E402
from kiosk.training.views import cross_background  # noqa: E402


def photo_sets(trashnet: Path, extra: Path | None, classes: list[str]) -> dict:
    """name -> [(rgb, class index)]: the sets ``kiosk export`` reports, made the same way."""
    def load(folder: Path):
        return [(read_rgb(p), c) for p, c in list_images(folder, classes, allow_missing=True)[0]]

    val = load(trashnet / "val")
    sets = {"val": val, "val composited": [(cross_background(img, i), c) for i, (img, c) in enumerate(val)]}
    for name in degrade.DEGRADATIONS:
        sets[f"val {name}"] = [(degrade.degrade(img, name, seed=i), c) for i, (img, c) in enumerate(val)]
    if extra is not None and (extra / "val").is_dir():
        sets[f"{extra.name} val"] = load(extra / "val")
    return sets


def scores(clf: OnnxClassifier, images) -> np.ndarray:
    """Calibrated class scores, one row per photo, as the kiosk reads them."""
    return np.array([list(clf.classify(img).scores.values()) for img, _ in images])


def top1_each_and_together(each: list[np.ndarray], truth: np.ndarray) -> list[float]:
    """Top-1 of every model, then of the mean of their scores (not a vote: a confident member outweighs
    an unsure one)."""
    return [float((s.argmax(1) == truth).mean()) for s in each + [np.mean(each, axis=0)]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--trashnet", default="../shared/data/trashnet")
    ap.add_argument("--extra", default="../shared/data/taco-crops")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if len(args.models) < 2:
        ap.error("give two models or more")
    clfs = [OnnxClassifier(m, threads=args.threads) for m in args.models]
    classes = clfs[0].classes
    for m, clf in zip(args.models, clfs):
        if clf.classes != classes:
            ap.error(f"{m} lists the classes {clf.classes}, {args.models[0]} lists {classes}: not the same task")
    sets = photo_sets(Path(args.trashnet), Path(args.extra) if args.extra else None, classes)
    names = [Path(m).name for m in args.models] + ["mean of their scores"]
    print(f"CPU: {cpu_info().describe()}")
    print(f"{'set':<24}" + "".join(f"{n[:26]:>28}" for n in names))
    degraded = []
    for set_name, images in sets.items():
        truth = np.array([c for _, c in images])
        each = [scores(clf, images) for clf in clfs]
        top1 = top1_each_and_together(each, truth)
        if set_name.removeprefix("val ") in degrade.DEGRADATIONS:
            degraded.append(top1)
        print(f"{set_name + f' ({len(images)})':<24}" + "".join(f"{t * 100:>27.1f}%" for t in top1), flush=True)
    print(f"{'degraded mean':<24}" + "".join(f"{t * 100:>27.1f}%" for t in np.mean(degraded, axis=0)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
