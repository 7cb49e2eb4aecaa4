"""``kiosk bench``: how fast is the frame path, stage by stage?

Runs the same :class:`kiosk.pipeline.Pipeline` the kiosk runs, with the model on
*every* frame that has an item (the worst case), and prints per-stage median
and p95 milliseconds, end-to-end frames per second and peak RSS. The
synthetic camera's frames are rendered once before timing, so "capture" is
the cost of handing a frame over, as with a real camera's DMA buffers.

``--model`` adds a latency table: the int8 ONNX model, its fp32 twin and a
ResNet-50 in PyTorch (random weights) at 1 and 2 threads.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from kiosk.camera import open_camera
from kiosk.devices.synthetic_camera import SyntheticScene
from kiosk.classifier import ModelCard, OnnxClassifier, card_path
from kiosk.model.cpuinfo import cpu_info
from kiosk.model.sessions import make_session, run_batch
from kiosk.datatypes import Frame
from kiosk.timing import StageTimer

STAGES = ["capture", "clahe", "presence", "preprocess", "inference", "decide"]


def pct(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


class PrerenderedSource:
    """One period of the synthetic scene, rendered up front, replayed in a loop."""

    name = "synthetic (pre-rendered)"

    def __init__(self, cfg, fps):
        self.scene = SyntheticScene(tuple(cfg.size), seed=cfg.seed)
        n = int(round(self.scene.period * fps))
        self.frames = [self.scene.render(i / fps) for i in range(n)]
        self.fps, self.i = fps, 0

    def read(self, timeout=2.0):
        img = self.frames[self.i % len(self.frames)]
        f = Frame(image=img, t=self.i / self.fps, seq=self.i)
        self.i += 1
        return f

    def close(self):
        pass


def bench_pipeline(args) -> int:
    from kiosk.config import load_config
    from kiosk.pipeline import Pipeline

    cfg = load_config(args.config)
    clahe = cfg.enhance.clahe
    clf = OnnxClassifier(cfg.model_path, threads=cfg.model.threads, clahe=clahe)
    if args.camera == "synthetic":
        source = PrerenderedSource(cfg.camera, cfg.camera.fps)
    else:
        source = open_camera(cfg.camera, realtime=False)
    pipe = Pipeline(cfg, clf, tuple(cfg.camera.size), classify_every_frame=True)
    timer = StageTimer()
    warm = min(60, args.frames // 5)
    classified = 0
    t_start = None
    for i in range(args.frames + warm):
        if i == warm:
            timer = StageTimer()
            classified = 0
            t_start = time.perf_counter()
        timer.frame()
        with timer.stage("capture"):
            frame = source.read()
        _, prediction, _ = pipe.step(frame, timer)  # the kiosk's own frame path, model on every item frame
        classified += prediction is not None
    wall = time.perf_counter() - t_start
    source.close()
    frames = timer.finish()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = {}
    for s in STAGES:
        vals = [f[s] * 1000 for f in frames if s in f]
        rows[s] = {"median_ms": pct(vals, 50), "p95_ms": pct(vals, 95), "frames": len(vals)}
    totals = [sum(f.values()) * 1000 for f in frames]
    result = {
        "camera": getattr(source, "name", args.camera),
        "frame_size": list(cfg.camera.size),
        "model": str(cfg.model_path),
        "threads": cfg.model.threads,
        "frames": len(frames),
        "frames_with_model": classified,
        "stages": rows,
        "frame_total": {"median_ms": pct(totals, 50), "p95_ms": pct(totals, 95)},
        "end_to_end_fps": len(frames) / wall,
        "peak_rss_mb": rss_mb,
        "machine": f"{cpu_info().describe()}, Python {platform.python_version()}",
    }
    print(f"kiosk bench: {result['frames']} frames {cfg.camera.size[0]}x{cfg.camera.size[1]} from {result['camera']}, "
          f"model on {classified} of them ({cfg.model.threads} threads)")
    print(f"{'stage':<12}{'median ms':>10}{'p95 ms':>10}{'frames':>8}")
    for s, r in rows.items():
        print(f"{s:<12}{r['median_ms']:>10.2f}{r['p95_ms']:>10.2f}{r['frames']:>8}")
    print(f"{'frame total':<12}{result['frame_total']['median_ms']:>10.2f}{result['frame_total']['p95_ms']:>10.2f}")
    print(f"end to end: {result['end_to_end_fps']:.1f} frames/s   peak RSS: {rss_mb:.0f} MB   ({result['machine']})")
    result["test_time_mirror"] = mirror_cost(clf, frame.image)
    m = result["test_time_mirror"]
    print(f"test-time mirror ({'on' if m['in_card'] else 'off'} in the card): one classification "
          f"{m['off']['median_ms']:.2f} ms without, {m['on']['median_ms']:.2f} ms with (median)")
    if args.model:
        result["model_latency"] = model_latency(cfg.model_path, compare=[Path(c) for c in getattr(args, "compare", [])])
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1))
    return 0


def mirror_cost(clf: OnnxClassifier, rgb: np.ndarray, runs: int = 40) -> dict:
    """What the card's test_time.mirror costs: the same classification with it off and on."""
    card = clf.card
    out = {"in_card": card.mirror}
    try:
        for on in (False, True):
            clf.card = dataclasses.replace(card, mirror=on)
            out["on" if on else "off"] = time_calls(lambda: clf.classify(rgb), runs)
    finally:
        clf.card = card
    return out


def time_calls(fn, runs: int, warmup: int = 5) -> dict:
    """Median and p95 milliseconds of ``fn()`` over ``runs`` calls after ``warmup`` untimed ones: every
    latency figure (``kiosk bench``, ``kiosk export``'s, the backbone check) is timed by this."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return {"median_ms": statistics.median(out), "p95_ms": pct(out, 95)}


def _input_like(session, path: Path) -> np.ndarray:
    """A random input of the model's own size (a run may train at --size other than 224): the file's input
    shape, or where that is free, its card's."""
    _, c, h, w = session.get_inputs()[0].shape
    if not all(isinstance(d, int) for d in (c, h, w)):
        c, (h, w) = 3, ModelCard.load(card_path(path)).spec.size
    return np.random.default_rng(0).normal(size=(1, c, h, w)).astype(np.float32)


def model_latency(int8_path: Path, runs: int = 100, compare=()) -> dict:
    """int8 ONNX (and its reference path) vs fp32 ONNX vs PyTorch ResNet-50, per image, 1 and 2 threads.

    Sessions come from :func:`kiosk.model.sessions.make_session`, as in the kiosk;
    ``compare`` adds other model files, timed in the same loop (side by side).
    """
    x = np.random.default_rng(0).normal(size=(1, 3, 224, 224)).astype(np.float32)  # ResNet-50's, at 224 px
    fp32_path = Path("build/export") / int8_path.name.replace("-int8", "-fp32")
    candidates = {"int8 ONNX (shipped)": (int8_path, True),
                  "int8, reference path": (int8_path, False),  # the self-check's fallback: its cost
                  "fp32 ONNX (same net)": (fp32_path, True)}
    candidates.update({str(p): (p, True) for p in compare})
    print(f"model latency on {cpu_info().describe()}")
    table = {}
    for threads in (1, 2):
        for name, (path, optimise) in candidates.items():
            if not path.is_file():
                print(f"  {name}: {path} not found (run `kiosk export` first); skipped")
                continue
            s = make_session(path, threads, optimise=optimise)
            xs = _input_like(s, path)
            table.setdefault(name, {})[threads] = time_calls(lambda: run_batch(s, xs), runs)
        try:  # PyTorch lives in the train extra, never in the kiosk runtime
            from kiosk.training.resnet import resnet50_runner
        except ImportError:
            print("  ResNet-50 PyTorch: torch not installed (train extra); skipped")
            continue
        table.setdefault("ResNet-50 fp32 PyTorch, 224 px", {})[threads] = time_calls(resnet50_runner(x, threads), max(20, runs // 4))
    base = table.get("int8 ONNX (shipped)", {})
    print(f"\n{'model':<34}{'thr':>4}{'median ms':>11}{'p95 ms':>9}{'x int8':>8}")
    for name, per in table.items():
        for threads, r in per.items():
            ratio = r["median_ms"] / base[threads]["median_ms"] if threads in base else float("nan")
            r["vs_int8"] = ratio
            print(f"{name:<34}{threads:>4}{r['median_ms']:>11.2f}{r['p95_ms']:>9.2f}{ratio:>8.2f}")
    return table


if __name__ == "__main__":  # pragma: no cover
    sys.exit(0)
