"""Knowledge distillation: a kiosk model file soft-labels each training view (``kiosk train --teacher``).

A teacher's scores carry what a label does not (a green bottle is glass, a little like plastic,
nothing like paper), and they are given for the view the student sees, composites and degradations
included. The teacher is an exported kiosk model with its card, run by the kiosk's own
:class:`kiosk.classifier.OnnxClassifier` (self-check, binding and test-time mirror as in the kiosk),
so any model the kiosk can run can teach, an int8 file included, at its cost per view (milliseconds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kiosk.errors import KioskError, ModelError
from kiosk.preprocess import InputSpec


class TeacherError(ModelError):
    """The teacher model cannot soft-label this run's views (missing, broken, or another input or classes)."""


class Teacher:
    """Logits of a kiosk model file for batches of training views (already preprocessed to ``spec``)."""

    def __init__(self, path: Path, spec: InputSpec, threads: int = 1):
        from kiosk.classifier import OnnxClassifier

        try:
            self.classifier = OnnxClassifier(path, threads=threads, warmup=0)
        except (KioskError, OSError) as e:
            raise TeacherError(f"teacher {path}: {e}") from None
        self.path, card = path, self.classifier.card
        if card.output != "logits":  # softened again, probabilities would make near-uniform targets
            raise TeacherError(f"teacher {path}: its card's output is {card.output}; a teacher must give logits")
        if self.classifier.spec != spec:  # views are fed as preprocessed for the student: the same size, CLAHE, norm
            raise TeacherError(f"teacher {path}: its card's input ({describe(self.classifier.spec)}) is not this "
                               f"run's ({describe(spec)}); train at the teacher's input or give another teacher")
        self.sha256 = card.sha256
        training = card.raw.get("training") if isinstance(card.raw.get("training"), dict) else {}
        # where the teacher's knowledge came from: a student's card carries it (a teacher that saw val
        # would make val's choices and figures in-sample for its students too)
        self.origin = {"path": str(path), "name": card.raw.get("name"), "sha256": card.sha256,
                       "in_sample": "in_sample" in card.raw, "data": training.get("data")}

    def require_classes(self, classes: list[str]) -> None:
        """The same classes in the same order: the teacher's logit i must be the student's class i."""
        if list(self.classifier.classes) != list(classes):
            raise TeacherError(f"teacher {self.path}: its card's classes {list(self.classifier.classes)} are not "
                               f"this run's {list(classes)} (in this order)")

    def logits(self, views: torch.Tensor) -> torch.Tensor:
        """(N, C) float32 logits, each view run as the kiosk runs a picture (batch of one, mirror per card)."""
        x = np.ascontiguousarray(views.detach().numpy(), np.float32)
        return torch.from_numpy(np.stack([self.classifier.infer(x[i:i + 1]) for i in range(len(x))]).astype(np.float32))


def describe(spec: InputSpec) -> str:
    clahe = f"CLAHE {spec.clahe.clip_limit}/{spec.clahe.tile_grid}" if spec.clahe.enabled else "no CLAHE"
    return f"{spec.size[0]}x{spec.size[1]} {spec.layout}, mean {list(spec.mean)}, std {list(spec.std)}, {clahe}"


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al.'s soft-target term: T^2 KL(softmax(teacher/T) || softmax(student/T)), mean per view.
    The T^2 keeps its gradient on the scale of the label's term whatever T is."""
    t = float(temperature)
    return F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1), reduction="batchmean",
                    log_target=True) * t * t
