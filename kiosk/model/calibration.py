"""Calibrated confidence: one temperature for the logits, and how far scores are from being right.

The kiosk's threshold keeps a strange item out of the wrong bin, so a score of
0.8 must mean "right 8 times in 10". Fine-tuning with label smoothing and then
int8 leave scores that say otherwise; dividing the logits by one temperature,
fitted on ``val``, fixes most of it without changing any top-1 answer.
Plain numpy: ``kiosk export`` fits it, ``kiosk eval`` reports it.
"""

from __future__ import annotations

import math

import numpy as np

T_MIN, T_MAX = 0.05, 20.0  # the card's bounds too (kiosk.classifier.ModelCard)


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``."""
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(logits, labels) -> float:
    """The temperature with the least NLL on (``logits``, ``labels``): golden-section search on log T.

    NLL is convex in 1/T, so the 1-D search finds the one minimum; the result is
    kept inside [T_MIN, T_MAX].
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise ValueError("fit_temperature needs an (N, classes) array of logits and N labels, N > 0")
    lo, hi = math.log(T_MIN), math.log(T_MAX)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(logits, labels, math.exp(a)), nll(logits, labels, math.exp(b))
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(logits, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(logits, labels, math.exp(b))
    return float(math.exp((lo + hi) / 2))


def ece_by_chance(confidences, bins: int = 15, draws: int = 300, seed: int = 0) -> dict:
    """What perfectly calibrated scores with these confidences would measure on this many items:
    the mean ECE (``floor``) and the one exceeded one time in 20 (``p95``).

    A few hundred photos leave few in most bins, so even right scores measure some error: on 379
    ``val`` photos about 3 %, the issue's goal. A figure under ``p95`` cannot tell calibrations apart.
    Monte Carlo: each item right with the probability its confidence gives; fixed seed, so repeatable.
    """
    conf = np.asarray(confidences, dtype=np.float64)
    rng = np.random.default_rng(seed)
    eces = [_ece(conf, rng.random(conf.size) < conf, bins) for _ in range(draws)] if conf.size else [0.0]
    return {"floor": float(np.mean(eces)), "p95": float(np.percentile(eces, 95))}


def _bin_index(conf: np.ndarray, bins: int) -> np.ndarray:
    return np.clip(np.digitize(conf, np.linspace(0.0, 1.0, bins + 1)[1:-1], right=True), 0, bins - 1)


def _ece(conf: np.ndarray, hit: np.ndarray, bins: int) -> float:
    """Sum over bins of n_b / N x |accuracy_b - confidence_b|, i.e. of |sum(hit - conf)| / N per bin."""
    if conf.size == 0:
        return 0.0
    gap = np.bincount(_bin_index(conf, bins), weights=hit.astype(np.float64) - conf, minlength=bins)
    return float(np.abs(gap).sum() / conf.size)


def reliability(confidences, correct, bins: int = 15) -> dict:
    """Expected calibration error and its table: per equal-width confidence bin, count, accuracy, mean confidence.

    ECE = sum over bins of (bin share) x |accuracy - confidence|; ``ece_floor`` and ``ece_floor_p95``:
    what perfectly calibrated scores would measure here (:func:`ece_by_chance`).
    """
    conf = np.asarray(confidences, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if len(conf) != len(hit):
        raise ValueError("confidences and correct differ in length")
    edges, idx, rows = np.linspace(0.0, 1.0, bins + 1), _bin_index(conf, bins), []
    for b in range(bins):
        sel = idx == b
        if sel.any():
            rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(sel.sum()),
                         "accuracy": float(hit[sel].mean()), "confidence": float(conf[sel].mean())})
    chance = ece_by_chance(conf, bins)
    return {"ece": _ece(conf, hit, bins), "ece_floor": chance["floor"], "ece_floor_p95": chance["p95"],
            "bins": rows, "count": int(len(conf))}


def describe_floor(floor: float, p95: float, count: int) -> str:
    """:func:`ece_by_chance`'s figures in words (``kiosk eval`` and ``kiosk export`` print them)."""
    return (f"perfectly calibrated scores would measure {floor * 100:.1f} % on average on these {count} photos, "
            f"over {p95 * 100:.1f} % one time in 20")


def plot_reliability(table: dict, path, title: str = "") -> None:
    """The reliability diagram of :func:`reliability`'s table (matplotlib: the train extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="calibrated")
    rows = table["bins"]
    ax.bar([r["confidence"] for r in rows], [r["accuracy"] for r in rows], width=0.05, alpha=0.7,
           label="accuracy per confidence bin")
    ax.set_xlabel("confidence (top score)"), ax.set_ylabel("accuracy"), ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    ax.set_title(f"{title} ECE {table['ece'] * 100:.1f} %".strip())
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
