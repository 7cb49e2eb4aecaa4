"""Would the shipped weights do better at another input size? Top-1 per set at each size, no training.

    python benchmarks/resolution_check.py models/kiosk-lite0-int8.onnx --sizes 224,256,288,320 \
        [--trashnet ../shared/data/trashnet] [--extra ../shared/data/taco-crops]

Why: a network trained on random crops often reads a photo better a little larger than it was trained
at ("FixRes"), which would cost only inference time (the issue's untried "input resolution" lever,
its cheapest form). The model's graph is fully convolutional up to its global pooling, so a copy with
free spatial dimensions (and the head's reshape made batch-first) runs at any size; the photos go
through the kiosk's own crop, resize, CLAHE and normalisation (``kiosk.preprocess.model_input``) at
that size, with and without the test-time mirror (logits averaged, as ``OnnxClassifier`` does); the
temperature does not change a top-1. Sets as ``ensemble_check.py`` builds them. A check, not a
feature: the kiosk runs its card's size. Runs on the runtime install (no PyTorch).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ensemble_check import photo_sets  # noqa: E402

from kiosk.model import degrade  # noqa: E402
from kiosk.model.cpuinfo import cpu_info  # noqa: E402
from kiosk.model.sessions import make_session  # noqa: E402
from kiosk.preprocess import ClaheSettings, InputSpec, model_input  # noqa: E402


def any_size_session(model: Path, threads: int):
    """The model with free batch and spatial dimensions (its one Reshape made a Flatten)."""
    import onnx

    m = onnx.load(str(model))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for i, name in ((0, "n"), (2, "h"), (3, "w")):
        dims[i].ClearField("dim_value")
        dims[i].dim_param = name
    out = m.graph.output[0].type.tensor_type.shape.dim[0]
    out.ClearField("dim_value")
    out.dim_param = "n"
    del m.graph.value_info[:]
    reshapes = [n for n in m.graph.node if n.op_type == "Reshape"]
    if len(reshapes) != 1:
        raise SystemExit(f"{model}: expected one Reshape (pooled features to the head), found {len(reshapes)}")
    flatten = onnx.helper.make_node("Flatten", reshapes[0].input[:1], reshapes[0].output, reshapes[0].name, axis=1)
    reshapes[0].CopyFrom(flatten)  # [1, -1] would fold a batch into one row
    with tempfile.TemporaryDirectory() as tmp:  # sessions are built one way, from a file
        onnx.save(m, str(Path(tmp) / "any-size.onnx"))
        return make_session(Path(tmp) / "any-size.onnx", threads)


def logits(session, x: np.ndarray, batch: int = 32) -> np.ndarray:
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--sizes", default="", help="sides to try, e.g. 224,256 (default: the card's, and 32, 64, 96 more)")
    ap.add_argument("--trashnet", default="../shared/data/trashnet")
    ap.add_argument("--extra", default="../shared/data/taco-crops")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    card = json.loads(Path(args.model).with_suffix(".json").read_text())
    own = int(card["input"]["size"][0])
    try:
        sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [own, own + 32, own + 64, own + 96]
    except ValueError:
        ap.error(f"--sizes must be whole numbers separated by commas, not {args.sizes!r}")
    if any(s % 32 for s in sizes):  # the exported stride-2 convolutions pad for even inputs at every stage
        ap.error(f"--sizes must be multiples of 32 (the graph's fixed padding assumes it), not {args.sizes}")
    session = any_size_session(Path(args.model), args.threads)
    sets = photo_sets(Path(args.trashnet), Path(args.extra) if args.extra else None, card["classes"])
    print(f"CPU: {cpu_info().describe()}; {args.model} (card size {card['input']['size']}); "
          f"top-1 without / with the test-time mirror")
    print(f"{'set':<24}" + "".join(f"{str(s) + ' px':>16}" for s in sizes))
    degraded = []
    for set_name, images in sets.items():
        truth = np.array([c for _, c in images])
        row = []
        for s in sizes:
            spec = InputSpec(size=(s, s), mean=tuple(card["input"]["mean"]), std=tuple(card["input"]["std"]),
                             clahe=ClaheSettings(**card["clahe"]))
            x = np.stack([model_input(img, spec) for img, _ in images])
            plain = logits(session, x)
            mirrored = plain + logits(session, np.ascontiguousarray(x[..., ::-1]))
            row.append((float((plain.argmax(1) == truth).mean()), float((mirrored.argmax(1) == truth).mean())))
        if set_name.removeprefix("val ") in degrade.DEGRADATIONS:
            degraded.append(row)
        print(f"{set_name + f' ({len(images)})':<24}" + "".join(f"{a * 100:>8.1f}/{b * 100:5.1f}%" for a, b in row),
              flush=True)
    mean = np.mean(degraded, axis=0)
    print(f"{'degraded mean':<24}" + "".join(f"{a * 100:>8.1f}/{b * 100:5.1f}%" for a, b in mean))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
