"""Classifiers behind one small interface: ``classify(rgb) -> Prediction``.

The ONNX backend trusts nothing it is handed: the model card beside the
``.onnx`` must parse, the file's sha256 must match the card *before* a
session is created, and the graph's input shape and class count must match
the card. Any mismatch is a :class:`~kiosk.errors.ModelError` that says what
differs. The session comes from :func:`kiosk.model.sessions.make_session`; at load
the card's golden inputs check that this CPU's int8 kernels compute what the
card's reference computed (:func:`kiosk.model.sessions.check_kernels`), and the
classifier falls back to the reference path when they do not.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Protocol

import numpy as np

from kiosk.model.cpuinfo import cpu_info
from kiosk.datatypes import Prediction
from kiosk.errors import ModelError, excerpt
from kiosk.model.sessions import check_kernels, make_session
from kiosk.preprocess import ClaheSettings, InputSpec, apply_clahe, center_square, check_rgb, normalise, resize_to
from kiosk.timing import NULL_TIMER

log = logging.getLogger(__name__)


class Classifier(Protocol):
    classes: list[str]

    def classify(self, rgb: np.ndarray, timer=...) -> Prediction: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ModelCard:
    classes: list[str]
    spec: InputSpec
    sha256: str
    output: str  # "logits" or "probabilities"
    raw: dict
    # How scores are read from the outputs: not sealed into the model (binding), so a
    # card can be re-calibrated without re-exporting. Both are checked below.
    temperature: float = 1.0  # logits are divided by it before softmax (kiosk.model.calibration)
    mirror: bool = False  # average the logits of the picture and its mirror image (test_time.mirror)

    @classmethod
    def load(cls, path: Path) -> "ModelCard":
        if not path.is_file():
            raise ModelError(f"model card not found: {path} (it must lie beside the .onnx with the same name)")
        from kiosk.files import read_json

        try:
            raw = read_json(path)
        except (OSError, ValueError) as e:
            raise ModelError(f"model card {path.name}: {e}") from None
        return cls.from_dict(raw, path.name)

    @classmethod
    def from_dict(cls, raw, name: str = "(card)") -> "ModelCard":
        """Parse and check a card's fields; every problem is a ModelError naming ``name``."""
        from pydantic import TypeAdapter, ValidationError

        try:
            inp = raw["input"]
            h, w = (int(v) for v in inp["size"])
            spec = InputSpec(
                size=(h, w),
                layout=str(inp.get("layout", "NCHW")),
                mean=tuple(float(v) for v in inp["mean"]),
                std=tuple(float(v) for v in inp["std"]),
                # the schema's own bounds: a tile_grid of 0 would kill the process in OpenCV (SIGFPE)
                clahe=TypeAdapter(ClaheSettings).validate_python(raw.get("clahe", {})),
            )
            classes = [str(c) for c in raw["classes"]]
            sha = str(raw["sha256"]).lower()
            output = str(raw.get("output", "logits"))
            temperature = raw.get("temperature", 1.0)
            test_time = raw.get("test_time", {})
            mirror = test_time.get("mirror", False)
        except ValidationError as e:
            err = e.errors()[0]
            raise ModelError(f"model card {name}: clahe.{'.'.join(map(str, err['loc']))}: {err['msg']} "
                             f"(got {excerpt(err.get('input'))})") from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ModelError(f"model card {name} lacks or mangles a field: {excerpt(e, 80)}") from None
        problems = []
        if spec.layout not in ("NCHW", "NHWC"):
            problems.append(f"input.layout must be NCHW or NHWC, not {excerpt(spec.layout)}")
        if not (16 <= h <= 1024 and 16 <= w <= 1024):
            problems.append(f"input.size must be 16..1024 pixels a side, not {h}x{w}")
        if len(spec.mean) != 3 or len(spec.std) != 3 or any(not s > 0 for s in spec.std):
            problems.append("input.mean/std must be three numbers (std > 0)")
        if len(classes) < 2 or len(set(classes)) != len(classes):
            problems.append("classes must be two or more distinct names")
        if len(sha) != 64:
            problems.append("sha256 must be 64 hex digits")
        if output not in ("logits", "probabilities"):
            problems.append(f"output must be logits or probabilities, not {excerpt(output)}")
        from kiosk.model.calibration import T_MAX, T_MIN

        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not T_MIN <= temperature <= T_MAX:
            problems.append(f"temperature must be a number from {T_MIN} to {T_MAX}, not {excerpt(temperature)}")
        elif temperature != 1.0 and output != "logits":
            problems.append("temperature applies to logits only (output is probabilities)")
        if not isinstance(mirror, bool):
            problems.append(f"test_time.mirror must be true or false, not {excerpt(mirror)}")
        if problems:
            raise ModelError(f"model card {name}: " + "; ".join(problems))
        return cls(classes, spec, sha, output, raw, float(temperature), mirror)

    def meaning(self) -> dict:
        """What the model's outputs and inputs mean: the fields sealed in the model file (kiosk.model.binding)."""
        spec = self.spec
        return {"classes": list(self.classes), "output": self.output,
                "input": {"size": list(spec.size), "layout": spec.layout, "mean": list(spec.mean), "std": list(spec.std)},
                "clahe": {"enabled": spec.clahe.enabled, "clip_limit": spec.clahe.clip_limit,
                          "tile_grid": spec.clahe.tile_grid}}

    @staticmethod
    def write(model_path: Path, fields: dict) -> Path:
        """Seal the card's meaning into the model, then write the card beside it with the file's sha256.

        Export's (and the tests') one way to make a card.
        """
        from kiosk.model import binding

        card = ModelCard.from_dict(dict(fields, sha256="0" * 64), card_path(model_path).name)
        binding.bind(model_path, card.meaning())
        path = card_path(model_path)
        path.write_text(json.dumps(dict(fields, sha256=sha256_file(model_path)), indent=1, ensure_ascii=False) + "\n")
        return path


def card_path(model_path: Path) -> Path:
    """The model card lies beside the model: ``x.onnx`` -> ``x.json``."""
    return Path(model_path).with_suffix(".json")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def to_prediction(classes: list[str], probs: np.ndarray) -> Prediction:
    i = int(np.argmax(probs))
    return Prediction(classes[i], float(probs[i]), {c: float(p) for c, p in zip(classes, probs)})


class OnnxClassifier:
    """An ONNX model with its card. ``clahe`` overrides the card's CLAHE settings."""

    def __init__(self, model_path: str | Path, threads: int = 2, clahe: Optional[ClaheSettings] = None,
                 warmup: int = 1):
        self.path = Path(model_path)
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}")
        self.card = ModelCard.load(card_path(self.path))
        digest = sha256_file(self.path)
        if digest != self.card.sha256:
            raise ModelError(
                f"model {self.path.name} does not match its card: sha256 is {digest[:12]}..., "
                f"card says {self.card.sha256[:12]}... (corrupt copy or wrong card)"
            )
        spec = self.card.spec
        if clahe is not None and clahe != spec.clahe:
            log.warning("CLAHE settings %s differ from the model card's %s (the model was trained with the card's)",
                        clahe, spec.clahe)
            spec = InputSpec(spec.size, spec.layout, spec.mean, spec.std, clahe)
        self.spec = spec
        self.classes = self.card.classes
        self.session = make_session(self.path, threads)
        self._check_graph()
        self._check_binding()
        # The golden inputs are the warm-up too; a CPU whose int8 kernels disagree gets the reference path.
        self.session, self.self_check = check_kernels(
            self.session, lambda: make_session(self.path, threads, optimise=False), self.card.raw.get("self_check"),
            spec, cpu_info().describe(), card_name=f"model card {card_path(self.path).name}")
        if self.self_check.fallback:
            log.error("%s: %s", self.path.name, self.self_check.detail)
        dummy = np.zeros((spec.size[0], spec.size[1], 3), np.uint8)
        for _ in range(warmup):
            self.classify(dummy)

    def _check_binding(self) -> None:
        """The card must mean what the model was exported with (a swapped class name sends glass to paper)."""
        from kiosk.model.binding import differences

        diff = differences(self.session.get_modelmeta().custom_metadata_map, self.card.meaning())
        if diff:
            raise ModelError(f"model card {card_path(self.path).name} does not match {self.path.name}: "
                             + "; ".join(diff))

    def _check_graph(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelError(f"{self.path.name}: expected one input and one output, got {len(inputs)} and {len(outputs)}")
        h, w = self.spec.size
        want = [1, 3, h, w] if self.spec.layout == "NCHW" else [1, h, w, 3]
        got = list(inputs[0].shape)
        same = len(got) == 4 and all(g == x or (i == 0 and not isinstance(g, int)) for i, (g, x) in enumerate(zip(got, want)))
        if not same:
            raise ModelError(f"{self.path.name}: graph input shape {got} does not match the card's {want}")
        out = list(outputs[0].shape)
        if not out or out[-1] != len(self.classes):
            raise ModelError(f"{self.path.name}: graph gives {out[-1] if out else '?'} scores, the card lists {len(self.classes)} classes")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name

    def classify(self, rgb: np.ndarray, timer=NULL_TIMER) -> Prediction:
        """:meth:`scores` read as the card says (temperature, softmax): what the kiosk, eval and bench all call."""
        out = self.scores(rgb, timer)
        with timer.stage("inference"):
            if self.card.output == "logits":
                probs = softmax(out / self.card.temperature)
            else:
                probs = out
        return to_prediction(self.classes, probs)

    def scores(self, rgb: np.ndarray, timer=NULL_TIMER) -> np.ndarray:
        """The model's raw outputs for one picture (float64): the steps of kiosk.preprocess.model_input,
        timed one by one, then the model; with the card's ``test_time.mirror`` the mean over the
        picture and its mirror image (a bottle is a bottle either way round; twice the inference)."""
        spec = self.spec
        with timer.stage("preprocess"):
            small = resize_to(center_square(check_rgb(rgb)), spec.size)
        with timer.stage("clahe"):
            small = apply_clahe(small, spec.clahe)
        with timer.stage("preprocess"):
            batch = normalise(small, spec)[None]
        with timer.stage("inference"):
            return self.infer(batch)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """The model's raw outputs (float64) for one input already preprocessed to the card's spec, shape
        (1, ...): with ``test_time.mirror`` the mean over it and its mirror image. The one place the model
        runs: :meth:`scores` for a picture, a training run's teacher for its views (kiosk.training.distill)."""
        if batch.shape[0] != 1:  # the graph takes a batch of one: row 0 alone would be answered
            raise ValueError(f"infer takes one input at a time (shape (1, ...)), not {batch.shape}")
        out = self.session.run([self.output_name], {self.input_name: batch})[0][0].astype(np.float64)
        if self.card.mirror:
            flipped = np.ascontiguousarray(batch[..., ::-1] if self.spec.layout == "NCHW" else batch[:, :, ::-1])
            out = 0.5 * (out + self.session.run([self.output_name], {self.input_name: flipped})[0][0])
        return out

    def close(self) -> None:
        self.session = None


class ScriptedClassifier:
    """Returns predictions from a script, for tests and hardware bring-up.

    ``script`` items are labels (score ``score``) or ``(label, score)`` pairs;
    it cycles when ``loop`` is true, else repeats the last item.
    """

    def __init__(self, classes: list[str], script: Iterable, score: float = 0.9, loop: bool = True):
        self.classes = list(classes)
        self.script = [s if isinstance(s, tuple) else (s, score) for s in script]
        if not self.script:
            raise ValueError("empty script")
        unknown = {label for label, _ in self.script} - set(self.classes)
        if unknown:
            raise ValueError(f"script uses unknown classes: {sorted(unknown)}")
        self.loop = loop
        self.calls = 0

    def classify(self, rgb: np.ndarray, timer=NULL_TIMER) -> Prediction:
        n = len(self.script)
        label, score = self.script[self.calls % n if self.loop else min(self.calls, n - 1)]
        self.calls += 1
        rest = (1.0 - score) / max(len(self.classes) - 1, 1)
        return Prediction(label, score, {c: (score if c == label else rest) for c in self.classes})

    def close(self) -> None:
        pass
