"""Fine-tuning without forgetting: a linear probe first (LP-FT), weight averaging after (WiSE-FT).

Why: a linear probe on the frozen ImageNet features recognises other-source
photos better than the fully fine-tuned model does (issue 20: 67 % against
63 %); fine-tuning from a random head distorts the features it starts from.
So training (1) fits the head alone on frozen features of a few augmented
views, (2) fine-tunes from that head, (3) averages the fine-tuned weights
with the probe's, ``theta = (1 - a) * probe + a * fine_tuned``, and keeps the
mix that does best on ``val`` and on the composited copy of ``val``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn


@torch.no_grad()
def pooled_features(model, loader) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1280-d pooled features the head sees, for every image of ``loader`` (model in eval mode)."""
    model.eval()
    feats, labels = [], []
    for x, y in loader:
        f = model.extract_features(x.contiguous(memory_format=torch.channels_last))
        feats.append(model._avg_pooling(f).flatten(1).float())
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def fit_probe(feats: torch.Tensor, labels: torch.Tensor, num_classes: int, weight_decay: float,
              class_weights: torch.Tensor, steps: int = 400, seed: int = 0) -> nn.Linear:
    """A linear head fitted full-batch (L2-regularised multinomial logistic regression)."""
    torch.manual_seed(seed)
    head = nn.Linear(feats.shape[1], num_classes)
    opt = torch.optim.LBFGS(head.parameters(), lr=0.5, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")
    loss_fn = nn.CrossEntropyLoss(weight=class_weights)

    def closure():
        opt.zero_grad()
        loss = loss_fn(head(feats), labels) + 0.5 * weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return head


def top1(head: nn.Linear, feats: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((head(feats).argmax(1) == labels).float().mean())


def interpolate(probe_state: dict, tuned_state: dict, alpha: float) -> dict:
    """WiSE-FT: ``(1 - alpha) * probe + alpha * tuned`` for every float tensor (BN statistics too);
    integer buffers (BN's batch counters) come from the tuned model."""
    out = {}
    for k, t in tuned_state.items():
        p = probe_state[k]
        out[k] = (1.0 - alpha) * p + alpha * t if t.dtype.is_floating_point else t.clone()
    return out


def average(states: list[dict]) -> dict:
    """A model soup: the mean of every float tensor (BN statistics too) of models fine-tuned from the same
    pretrained weights; integer buffers (BN's batch counters) come from the first."""
    return {k: sum(s[k] for s in states) / len(states) if t.dtype.is_floating_point else t.clone()
            for k, t in states[0].items()}


def selection_score(val_top1: float, cross_top1: float) -> float:
    """What checkpoints and mixes are chosen by: TrashNet ``val`` and its composited copy, equally.

    One split alone would reward the posterboard shortcut (val) or the generated
    backgrounds (the composited copy); the mean asks for both.
    """
    return 0.5 * (val_top1 + cross_top1)


def class_weights_for(labels: list[int], num_classes: int) -> np.ndarray:
    """Inverse square root of class frequency, normalised so the mean weight per image is 1."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = (counts.sum() / np.maximum(counts, 1)) ** 0.5
    return weights / (weights * counts).sum() * counts.sum()


MIXUP_ALPHA, CUTMIX_ALPHA = 0.2, 1.0  # the usual fine-tuning strengths (timm's defaults for CutMix)


def mix_batch(x: torch.Tensor, y: torch.Tensor, p: float, rng: np.random.Generator
              ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """MixUp or CutMix (half each) on a batch with probability ``p``: ``(x, y_other, lam)``.

    The loss is ``lam * loss(y) + (1 - lam) * loss(y_other)``; ``lam`` 1.0 means unmixed.
    Why: two materials in one view (a bottle before a box) and a label that says how much
    of each is there keep the model from betting everything on one texture or the board;
    the issue's lever 3. CutMix's ``lam`` is the share of pixels kept, after clipping.
    """
    if p <= 0.0 or rng.random() >= p or len(y) < 2:
        return x, y, 1.0
    perm = torch.from_numpy(rng.permutation(len(y)))
    if rng.random() < 0.5:
        lam = float(rng.beta(MIXUP_ALPHA, MIXUP_ALPHA))
        return lam * x + (1.0 - lam) * x[perm], y[perm], lam
    h, w = x.shape[-2:]
    cut = np.sqrt(1.0 - rng.beta(CUTMIX_ALPHA, CUTMIX_ALPHA))
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
    mixed = x.clone()
    mixed[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    return mixed, y[perm], 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
