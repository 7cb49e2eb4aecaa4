"""Top-1, macro-F1, per-class precision/recall and the confusion matrix.

Plain Python on label lists, shared by training and ``kiosk eval``.
"""

from __future__ import annotations


def classification_report(y_true: list[int], y_pred: list[int], classes: list[str]) -> dict:
    n = len(classes)
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    confusion = [[0] * n for _ in range(n)]
    for t, p in zip(y_true, y_pred):
        confusion[t][p] += 1
    per_class, f1s = {}, []
    for i, name in enumerate(classes):
        tp = confusion[i][i]
        predicted = sum(confusion[r][i] for r in range(n))
        actual = sum(confusion[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
        if actual:
            f1s.append(f1)
    total = len(y_true)
    return {
        "top1": sum(confusion[i][i] for i in range(n)) / total if total else 0.0,
        "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
        "per_class": per_class,
        "confusion": confusion,
        "classes": list(classes),
        "count": total,
    }
