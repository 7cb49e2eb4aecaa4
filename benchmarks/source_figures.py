"""Per-source figures of any model, as ``kiosk export`` writes them into the card (``metrics_sources``).

TrashNet ``val`` composited onto generated backgrounds (the own cross-background
check, the fixed copy training chooses by) and an extra source's ``val`` split,
through the kiosk's own classify path:

    python benchmarks/source_figures.py models/kiosk-lite0-int8.onnx \
        [--trashnet ../shared/data/trashnet] [--extra ../shared/data/taco-crops]

Runs on the runtime install (no PyTorch).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kiosk.classifier import OnnxClassifier  # noqa: E402
from kiosk.model.cpuinfo import cpu_info  # noqa: E402
from kiosk.model.dataset import list_images, read_rgb  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--trashnet", default="../shared/data/trashnet")
    ap.add_argument("--extra", default="../shared/data/taco-crops")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    from kiosk.training.export import source_figures  # numpy/onnxruntime only at module level

    clf = OnnxClassifier(args.model, threads=args.threads)
    items = list_images(Path(args.trashnet) / "val", clf.classes)[0]
    val = [(read_rgb(p), c) for p, c in items]
    extra = Path(args.extra) if args.extra else None
    print(f"CPU: {cpu_info().describe()}")
    print(json.dumps(source_figures(Path(args.model), extra, args.threads, val), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
