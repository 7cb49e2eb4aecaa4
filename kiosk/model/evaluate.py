"""``kiosk eval``: accuracy of a model through the exact run-time preprocessing.

Each photo goes through ``OnnxClassifier.classify`` (centre square, resize,
CLAHE, normalise, model) as the kiosk would run it. ``--degrade NAME`` applies
one of :data:`kiosk.model.degrade.DEGRADATIONS` first; ``--robustness`` runs every
degradation with CLAHE on and off and prints the comparison.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

from kiosk.model import degrade as degrade
from kiosk.classifier import OnnxClassifier
from kiosk.model.calibration import describe_floor, plot_reliability, reliability
from kiosk.model.dataset import list_images, read_rgb
from kiosk.model.metrics import classification_report
from kiosk.preprocess import ClaheSettings


def load_images(data: Path, classes: list[str]):
    items, _ = list_images(data, classes, allow_missing=True)
    return [(read_rgb(p), c) for p, c in items]


def evaluate(clf: OnnxClassifier, images, degradation: Optional[str] = None) -> dict:
    """Top-1 and friends, and how well the scores are calibrated (``calibration``: ECE and its bins)."""
    y_true, y_pred, scores = [], [], []
    for i, (img, label) in enumerate(images):
        if degradation:
            img = degrade.degrade(img, degradation, seed=i)
        prediction = clf.classify(img)
        y_true.append(label)
        y_pred.append(clf.classes.index(prediction.label))
        scores.append(prediction.score)
    rep = classification_report(y_true, y_pred, clf.classes)
    rep["calibration"] = reliability(scores, [t == p for t, p in zip(y_true, y_pred)])
    return rep


def robustness(model_path: Path, images, threads: int, clahe: ClaheSettings) -> dict:
    """Top-1 per degradation, CLAHE on vs off (same model, same images)."""
    on = OnnxClassifier(model_path, threads=threads, clahe=clahe)
    off = OnnxClassifier(model_path, threads=threads, clahe=clahe.off())
    table = {}
    for name in degrade.DEGRADATIONS:
        table[name] = {"clahe_on": evaluate(on, images, name)["top1"], "clahe_off": evaluate(off, images, name)["top1"]}
    n = len(table)
    table["mean"] = {k: sum(v[k] for v in table.values()) / n for k in ("clahe_on", "clahe_off")}
    return table


def format_report(rep: dict) -> str:
    classes = rep["classes"]
    lines = [f"images: {rep['count']}   top-1: {rep['top1'] * 100:.2f} %   macro-F1: {rep['macro_f1']:.4f}", "",
             f"{'class':<12}{'precision':>10}{'recall':>10}{'f1':>8}{'n':>6}"]
    for c in classes:
        p = rep["per_class"][c]
        lines.append(f"{c:<12}{p['precision']:>10.3f}{p['recall']:>10.3f}{p['f1']:>8.3f}{p['support']:>6}")
    w = max(8, *(len(c) + 2 for c in classes))  # whole class names: "cardboard", never "cardboa"
    lead = max(12, *(len(c) + 2 for c in classes))
    lines += ["", "confusion (rows: true, columns: predicted)", " " * lead + "".join(f"{c:>{w}}" for c in classes)]
    for c, row in zip(classes, rep["confusion"]):
        lines.append(f"{c:<{lead}}" + "".join(f"{v:>{w}}" for v in row))
    return "\n".join(lines)


def plot_confusion(rep: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes, m = rep["classes"], rep["confusion"]
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i, row in enumerate(m):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", color="black" if v < max(map(max, m)) / 2 else "white")
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    ax.set_title(f"top-1 {rep['top1'] * 100:.1f} %, macro-F1 {rep['macro_f1']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_eval(args) -> int:
    from kiosk.config import load_config

    data = Path(args.data)
    if not data.is_dir():
        print(f"error: data folder not found: {data}", file=sys.stderr)
        return 1
    sweeping = getattr(args, "sweep", None) is not None
    if sweeping and not getattr(args, "as_kiosk", False):
        print("error: --sweep works on the kiosk's decisions: add --as-kiosk", file=sys.stderr)
        return 1
    if getattr(args, "votes", None) is not None and not sweeping:
        print("error: --votes goes with --sweep (the thresholds to try with each vote)", file=sys.stderr)
        return 1
    if sweeping:
        try:
            parse_sweep(args.sweep, args.votes)  # before minutes of loading photos
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    model_path = Path(args.model_path) if args.model_path else None
    cfg = load_config(args.config, check_model=model_path is None)
    model_path = model_path or cfg.model_path
    clahe = cfg.enhance.clahe
    if args.no_clahe:
        clahe = clahe.off()
    clf = OnnxClassifier(model_path, threads=cfg.model.threads, clahe=clahe)
    try:
        images = load_images(data, clf.classes)
    except FileNotFoundError as e:
        print(f"error: {e} (expected one folder per class: {', '.join(clf.classes)})", file=sys.stderr)
        return 1
    if args.degrade and args.degrade not in degrade.DEGRADATIONS:
        print(f"error: unknown degradation {args.degrade!r}; one of {', '.join(degrade.DEGRADATIONS)}", file=sys.stderr)
        return 1
    if getattr(args, "as_kiosk", False):
        from kiosk.model.as_kiosk import evaluate_as_kiosk

        if args.degrade:
            images = [(degrade.degrade(img, args.degrade, seed=i), c) for i, (img, c) in enumerate(images)]
        if sweeping:
            return sweep_command(args, cfg, clf, images)
        rep = evaluate_as_kiosk(cfg, clf, images)
    else:
        rep = evaluate(clf, images, args.degrade)
    rep.update({"model": str(model_path), "data": str(data), "clahe": clahe.enabled, "degradation": args.degrade})
    print(format_report(rep))
    if "calibration" in rep:
        card, cal = clf.card, rep["calibration"]
        print(f"\ncalibration: expected calibration error {rep['calibration']['ece'] * 100:.1f} % "
              f"(temperature {card.temperature:g} from the card; test-time mirror {'on' if card.mirror else 'off'}); "
              f"{describe_floor(cal['ece_floor'], cal['ece_floor_p95'], cal['count'])}")
    if rep.get("as_kiosk"):
        med = rep["median_decision_s"]
        timing = f"median {med:.2f} s from seen to decided" if med is not None else "no decisions"
        print(f"\nas the kiosk (presence gate, frames, decision engine; {rep['images']} clips): "
              f"right bin {rep['correct_bin_rate'] * 100:.1f} %, wrong bin {rep['wrong_bin_rate'] * 100:.1f} %, "
              f"unsure {rep['unsure_rate'] * 100:.1f} %, no decision {rep['no_decision_rate'] * 100:.1f} %; {timing}")
        print("  per class (right / wrong / unsure / none, %): " + ", ".join(
            f"{c} {v['correct_bin_rate'] * 100:.0f}/{v['wrong_bin_rate'] * 100:.0f}/{v['unsure_rate'] * 100:.0f}/"
            f"{v['no_decision_rate'] * 100:.0f}" for c, v in rep["per_class"].items() if v["images"]))
        print("  by how the item is held (right / wrong / unsure / none, %): " + ", ".join(
            f"{name.replace('_', ' ')} ({v['images']} clips) {v['correct_bin_rate'] * 100:.0f}/"
            f"{v['wrong_bin_rate'] * 100:.0f}/{v['unsure_rate'] * 100:.0f}/{v['no_decision_rate'] * 100:.0f}"
            for name, v in rep.get("by_hold", {}).items() if v["images"]))
    if getattr(args, "robustness", False):
        rep["robustness"] = robustness(model_path, images, cfg.model.threads, cfg.enhance.clahe)
        print("\nrobustness (top-1 %)   CLAHE on   CLAHE off")
        for name, v in rep["robustness"].items():
            print(f"  {name:<20}{v['clahe_on'] * 100:>9.1f}{v['clahe_off'] * 100:>11.1f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rep, indent=1))
    if args.png:
        plot_confusion(rep, args.png)
    if getattr(args, "reliability", None) and "calibration" in rep:
        plot_reliability(rep["calibration"], args.reliability, title=Path(model_path).name)
    return 0


def parse_sweep(thresholds: str, votes: Optional[str]) -> tuple[list[float], Optional[list[tuple[int, int]]]]:
    """``0.5,0.6`` and ``5:3,7:4`` as numbers; a ValueError names the bad part."""
    ths = []
    if not thresholds.strip():
        raise ValueError("--sweep: give the thresholds to try, e.g. 0.4,0.5,0.6")
    for part in thresholds.split(","):
        try:
            th = float(part)
        except ValueError:
            raise ValueError(f"--sweep: {part!r} is not a number") from None
        if not 0.0 <= th <= 1.0:
            raise ValueError(f"--sweep: threshold {th:g} is outside 0..1")
        ths.append(th)
    windows = None
    if votes:
        windows = []
        for part in votes.split(","):
            try:
                window, least = (int(v) for v in part.split(":"))
            except ValueError:
                raise ValueError(f"--votes: {part!r} is not WINDOW:MIN (e.g. 5:3)") from None
            if not 1 <= least <= window <= 30:
                raise ValueError(f"--votes: {part!r} needs 1 <= MIN <= WINDOW <= 30")
            windows.append((window, least))
    return ths, windows


def sweep_command(args, cfg, clf, images) -> int:
    from kiosk.model.as_kiosk import sweep

    try:
        ths, windows = parse_sweep(args.sweep, args.votes)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rep = sweep(cfg, clf, images, ths, windows)
    rep.update({"model": str(clf.path), "data": str(args.data)})
    print(f"decision settings on {rep['images']} clips (the same clips for each; choose on val only)")
    print("  threshold  window:min  right bin  wrong bin  unsure  no decision  median s")
    for r in rep["sweep"]:
        med = "-" if r["median_decision_s"] is None else f"{r['median_decision_s']:.2f}"
        print(f"  {r['threshold']:>9.2f}  {r['window']:>6}:{r['min_votes']:<3}  {r['correct_bin_rate'] * 100:>8.1f}  "
              f"{r['wrong_bin_rate'] * 100:>9.1f}  {r['unsure_rate'] * 100:>6.1f}  {r['no_decision_rate'] * 100:>11.1f}"
              f"  {med:>8}")
    c = rep["chosen"]
    rule = (f"the most right with at most {rep['wrong_goal'] * 100:g} % wrong"
            if c["wrong_bin_rate"] <= rep["wrong_goal"] else "none reaches the wrong-bin goal: the fewest wrong")
    quick = c["median_decision_s"] is not None and c["median_decision_s"] <= rep["median_goal_s"]
    rule += (f", of those deciding within {rep['median_goal_s']:g} s (median)" if quick
             else f"; none decides within {rep['median_goal_s']:g} s (median)")
    print(f"chosen ({rule}): decision: {{threshold: {c['threshold']:g}, window: {c['window']}, "
          f"min_votes: {c['min_votes']}}} in config.yaml")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rep, indent=1))
    return 0
