"""What the card says the model means, sealed inside the model file.

The card's sha256 covers the ``.onnx`` only, while the class list, the
normalisation, CLAHE and the output kind live in the card, which anyone can
edit: swap two class names there and glass goes to the paper bin with every
hash still matching. So whoever writes a card (``ModelCard.write``: export,
the tests' models) first writes those fields into the ONNX file's
``metadata_props`` under ``kiosk.card``; the sha256 then covers them, and the
classifier refuses a card that says something else than its model.

``bind`` needs the ``onnx`` package (export and tests); the check at load
reads the metadata through onnxruntime. ``python -m kiosk.model.binding
MODEL.onnx`` binds a model exported before this existed to its card as it is
now (read the card first: that is what the model will mean from then on).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

METADATA_KEY = "kiosk.card"


def encode(meaning: dict) -> str:
    """One spelling of a meaning, so equal meanings are equal strings."""
    return json.dumps(meaning, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def bind(model_path: Path, meaning: dict) -> None:
    """Write ``meaning`` into the model's metadata (replacing an earlier one); the file changes, so hash it after."""
    import onnx

    model = onnx.load(str(model_path))
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, encode(meaning)
    onnx.save(model, str(model_path))


def differences(metadata: dict, meaning: dict) -> list[str]:
    """How the card (``meaning``) differs from what the model carries; [] when bound and equal.

    ``metadata``: onnxruntime's ``custom_metadata_map``.
    """
    if METADATA_KEY not in metadata:
        return ["the model carries no card fields of its own (exported before models were bound to their cards): "
                "re-export it, or bind it to this card with `python -m kiosk.model.binding MODEL.onnx`"]
    try:
        sealed = json.loads(metadata[METADATA_KEY])
    except ValueError:
        return [f"its {METADATA_KEY} metadata is not JSON"]
    if not isinstance(sealed, dict):
        return [f"its {METADATA_KEY} metadata is not a mapping"]
    ours = json.loads(encode(meaning))  # tuples -> lists, as they were sealed
    from kiosk.errors import excerpt

    return [f"{key}: the card says {excerpt(ours.get(key), 80)}, the model was exported with "
            f"{excerpt(sealed.get(key), 80)}" for key in sorted(set(ours) | set(sealed)) if ours.get(key) != sealed.get(key)]


def main(argv=None) -> int:
    from kiosk.classifier import ModelCard, card_path

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m kiosk.model.binding MODEL.onnx  (binds the model to the card beside it)",
              file=sys.stderr)
        return 2
    from kiosk.classifier import sha256_file

    model = Path(args[0])
    card = ModelCard.load(card_path(model))
    if sha256_file(model) != card.sha256:  # bind only a file its card vouches for
        print(f"{model}: sha256 differs from {card_path(model).name}: not bound (corrupt copy or wrong card)",
              file=sys.stderr)
        return 1
    ModelCard.write(model, card.raw)
    print(f"{model}: bound to {card_path(model).name} ({', '.join(card.classes)}); card sha256 updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
