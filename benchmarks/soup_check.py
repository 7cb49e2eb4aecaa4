"""Would averaging the weights of several training runs (a model soup) beat each run? Float figures.

    python benchmarks/soup_check.py build/train-r14/best.pt build/train-r13/best.pt ... \\
        [--trashnet ../shared/data/trashnet] [--extra ../shared/data/taco-crops]

Every run here fine-tunes the same ImageNet-pretrained EfficientNet-Lite0, so its weights can be
averaged into one model of the same cost (Wortsman et al. 2022, "Model soups"). Printed: each
checkpoint, the uniform soup of all (nothing chosen), and the greedy soup (checkpoints taken best
first by training's own selection score, ``robust.selection_score`` of ``val`` and its composited
copy, each kept only if the soup's score does not fall; chosen on ``val``, so its ``val`` figure
flatters it). Measured as ``kiosk train`` measures its epochs (PyTorch, float, the same loaders):
TrashNet ``val``, the composited copy, the extra source's ``val``. Needs the train extra.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="best.pt files of runs of one backbone and input size")
    ap.add_argument("--trashnet", default="../shared/data/trashnet")
    ap.add_argument("--extra", default="../shared/data/taco-crops")
    args = ap.parse_args(argv)

    import torch
    from torch.utils.data import DataLoader

    from kiosk.model.cpuinfo import cpu_info
    from kiosk.model.metrics import classification_report
    from kiosk.preprocess import InputSpec
    from kiosk.training import robust
    from kiosk.training.export import trained_size
    from kiosk.training.train import FolderDataset, build_model, predict

    cks = [torch.load(p, map_location="cpu", weights_only=False) for p in args.checkpoints]
    kinds = [(ck.get("args", {}).get("backbone", "lite0"), trained_size(ck.get("args", {})), tuple(ck["classes"]))
             for ck in cks]
    if len(set(kinds)) != 1:
        each = "; ".join(f"{p}: {b} at {s} px, classes {', '.join(c)}" for p, (b, s, c) in zip(args.checkpoints, kinds))
        ap.error(f"the checkpoints differ in backbone, input size or classes ({each}): no soup")
    backbone, side, classes = kinds[0]
    spec = InputSpec(size=(side, side))
    val = FolderDataset(Path(args.trashnet) / "val", spec, train=False, classes=list(classes))
    sets = {"val": val, "composited val": val.cross_copy()}
    if args.extra and (Path(args.extra) / "val").is_dir():
        sets[f"{Path(args.extra).name} val"] = FolderDataset(Path(args.extra) / "val", spec, train=False,
                                                             classes=list(classes))
    loaders = {name: DataLoader(ds, batch_size=64) for name, ds in sets.items()}

    model = build_model(len(classes), backbone)

    def top1(dl) -> float:
        preds, labels = predict(model, dl)
        return classification_report(labels, preds, list(classes))["top1"]  # as training reports its epochs

    def figures(state) -> dict:
        model.load_state_dict(state)
        with torch.no_grad():
            return {name: top1(dl) for name, dl in loaders.items()}

    def score(f: dict) -> float:
        return robust.selection_score(f["val"], f["composited val"])

    print(f"float top-1 on {cpu_info().describe()}: " + ", ".join(sets))

    def show(label: str, f: dict) -> None:
        print(f"{label:<40}" + "".join(f"{f[name] * 100:>8.1f} %" for name in sets), flush=True)

    each = []
    for path, ck in zip(args.checkpoints, cks):
        f = figures(ck["model"])
        each.append((score(f), path, ck["model"]))
        show(path, f)
    show(f"uniform soup of {len(cks)}", figures(robust.average([ck["model"] for ck in cks])))
    each.sort(key=lambda e: -e[0])
    kept, best = [each[0]], each[0][0]
    for candidate in each[1:]:
        f = figures(robust.average([e[2] for e in kept + [candidate]]))
        if score(f) >= best:
            kept, best, best_f = kept + [candidate], score(f), f
    if len(kept) > 1:
        show(f"greedy soup of {len(kept)}", best_f)
        print("greedy soup:", " ".join(e[1] for e in kept))
    else:
        print(f"greedy soup: no checkpoint added to {kept[0][1]} kept its score")
    return 0


if __name__ == "__main__":
    sys.exit(main())
