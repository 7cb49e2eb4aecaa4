"""What a kiosk camera does to a picture: dim or harsh light, colour casts,
blur, sensor noise, haze, odd framing.

Two users: training draws random mixtures of these (``augment``), and the
robustness report applies each one at a fixed strength (``DEGRADATIONS``) to
the validation set. Pure numpy/OpenCV so evaluation needs no PyTorch.
"""

from __future__ import annotations

import hashlib
import math
from typing import Optional

import cv2
import numpy as np


def _clip(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0, 255).astype(np.uint8)


def exposure(rgb: np.ndarray, gain: float, gamma: float = 1.0) -> np.ndarray:
    """Scale light (gain < 1 dim, > 1 over-exposed, clipping highlights)."""
    x = rgb.astype(np.float32) / 255.0
    if gamma != 1.0:
        x = np.power(x, gamma)
    return _clip(x * gain * 255.0)


def colour_cast(rgb: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """Per-channel gains: warm (more red, less blue) or cool light."""
    return _clip(rgb.astype(np.float32) * np.asarray(gains, dtype=np.float32))


def blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return rgb
    return cv2.GaussianBlur(rgb, (0, 0), sigmaX=sigma)


def motion_blur(rgb: np.ndarray, length: int, angle_deg: float) -> np.ndarray:
    length = max(1, int(length))
    if length == 1:
        return rgb
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle_deg, 1.0)
    k = cv2.warpAffine(k, rot, (length, length))
    k /= max(k.sum(), 1e-6)
    return cv2.filter2D(rgb, -1, k)


def noise(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian sensor noise, a little stronger per channel than in luma."""
    n = rng.normal(0.0, sigma, rgb.shape).astype(np.float32)
    return _clip(rgb.astype(np.float32) + n)


def haze(rgb: np.ndarray, amount: float, level: float = 220.0) -> np.ndarray:
    """Veiling glare: blend towards a bright grey (dirty window, low sun)."""
    return _clip(rgb.astype(np.float32) * (1.0 - amount) + level * amount)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        return rgb
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


# Fixed-strength degradations for the robustness report. Seeded per image so
# the report is the same on every run.
DEGRADATIONS = {
    "dim": lambda im, rng: noise(exposure(im, 0.3), 4.0, rng),
    "overexposed": lambda im, rng: exposure(im, 1.7, gamma=0.8),
    "warm_cast": lambda im, rng: colour_cast(im, (1.25, 1.0, 0.7)),
    "cool_cast": lambda im, rng: colour_cast(im, (0.75, 0.95, 1.3)),
    "blur": lambda im, rng: blur(im, 2.5),
    "noise": lambda im, rng: noise(im, 18.0, rng),
    "haze": lambda im, rng: haze(im, 0.45),
}


def degrade(rgb: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    return DEGRADATIONS[name](rgb, np.random.default_rng(seed))


def geometric(rgb: np.ndarray, rng: np.random.Generator, out: int) -> np.ndarray:
    """Random hand-held framing: scale, shift, rotation, flips; square output."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    scale = math.sqrt(rng.uniform(0.35, 1.0))  # fraction of the short side kept
    crop = side * scale
    cx = w / 2 + rng.uniform(-1, 1) * (w - crop) / 2
    cy = h / 2 + rng.uniform(-1, 1) * (h - crop) / 2
    angle = rng.uniform(-30, 30) + 90 * rng.integers(0, 4)
    m = cv2.getRotationMatrix2D((cx, cy), angle, out / crop)
    m[0, 2] += out / 2 - cx
    m[1, 2] += out / 2 - cy
    img = cv2.warpAffine(rgb, m, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    return np.ascontiguousarray(img)


def photometric(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random mixture of camera conditions, each applied with some probability."""
    img = rgb
    if rng.random() < 0.8:  # light level: from dim to harsh
        gain = math.exp(rng.uniform(math.log(0.25), math.log(1.8)))
        img = exposure(img, gain, gamma=rng.uniform(0.7, 1.4))
    if rng.random() < 0.6:  # white balance
        t = rng.uniform(-1, 1)
        img = colour_cast(img, (1 + 0.3 * t + rng.uniform(-0.08, 0.08), 1 + rng.uniform(-0.08, 0.08), 1 - 0.3 * t + rng.uniform(-0.08, 0.08)))
    if rng.random() < 0.3:  # saturation
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[:, :, 1] *= rng.uniform(0.4, 1.4)
        img = cv2.cvtColor(_clip(hsv), cv2.COLOR_HSV2RGB)
    if rng.random() < 0.25:
        img = haze(img, rng.uniform(0.1, 0.5))
    r = rng.random()
    if r < 0.2:
        img = blur(img, rng.uniform(0.5, 3.0))
    elif r < 0.3:
        img = motion_blur(img, int(rng.integers(3, 12)), rng.uniform(0, 180))
    if rng.random() < 0.4:
        img = noise(img, rng.uniform(2, 20), rng)
    if rng.random() < 0.3:
        img = jpeg(img, int(rng.integers(30, 90)))
    return img


def occlude(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A skin- or sleeve-coloured blob at an edge: the hand holding the item."""
    img = rgb.copy()
    h, w = img.shape[:2]
    colour = rng.choice(np.array([[224, 172, 105], [141, 85, 36], [255, 219, 172], [60, 60, 70], [30, 40, 90]]))
    edge = rng.integers(0, 4)
    bw, bh = int(w * rng.uniform(0.15, 0.35)), int(h * rng.uniform(0.15, 0.35))
    cx = int(rng.uniform(0.2, 0.8) * w)
    cy = int(rng.uniform(0.2, 0.8) * h)
    centre = [(cx, 0), (cx, h - 1), (0, cy), (w - 1, cy)][edge]
    cv2.ellipse(img, centre, (bw, bh), 0, 0, 360, [int(c) for c in colour], -1)
    return img


def augment(rgb: np.ndarray, rng: np.random.Generator, out: int, clean: float = 0.0) -> np.ndarray:
    """One training view: framing, then camera conditions, sometimes a hand.

    ``clean`` is the share of views that keep the photo's own light (framing
    and hand still apply): too few clean views and the model underfits the
    plain case, which is most of what a kiosk sees.
    """
    img = geometric(rgb, rng, out)
    if clean <= 0.0 or rng.random() >= clean:
        img = photometric(img, rng)
    if rng.random() < 0.2:
        img = occlude(img, rng)
    return img


# ---- off the posterboard: TrashNet items on other backgrounds -----------------------------------
# TrashNet photographs every item on the same near-white board, so a model can learn the board as
# much as the material. The board is cheap to find (it is what the border looks like), so training
# can cut the item out and set it on a generated background: floors, tables, walls, a kiosk housing.

BOARD_EDGES_MAX = 0.01  # share of the cut's board that may be edges: see board_is_bare
MASK_SIZE = 160  # the cut is found at this long side (GrabCut's cost grows with the pixels), then scaled up
_MASKS: dict[bytes, Optional[np.ndarray]] = {}  # photo digest -> small uint8 cut (training asks per view)
_MASKS_MAX = 8192  # about 19 kB each
_MISSING = object()


def item_mask(rgb: np.ndarray) -> Optional[np.ndarray]:
    """0..1 float mask of what is not the board, or None when the board cannot be seen.

    The board is the pale, grey, even part of the border (OpenCV LAB: a, b near 128);
    an item that fills most of the border (a box close up) leaves no board to find.
    A colour threshold alone keeps the item's shadow (darker board) and loses clear
    plastic (board seen through it); GrabCut, seeded with the board at the border and
    the smooth, board-coloured parts (shadows, light falloff) as probably board, keeps
    the item's edges and the textured clear parts. Deterministic: one cut per photo.
    """
    key = hashlib.blake2b(rgb.tobytes(), digest_size=16).digest() + bytes(str(rgb.shape), "ascii")
    small = _MASKS.get(key, _MISSING)
    if small is _MISSING:  # read once, keep the local: another thread (the demo's camera) may clear the cache
        small = _cut(rgb)
        if len(_MASKS) >= _MASKS_MAX:
            _MASKS.clear()
        _MASKS[key] = small
    if small is None:
        return None
    h, w = rgb.shape[:2]
    mask = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(mask, (0, 0), 1.5)


def _cut(rgb: np.ndarray) -> Optional[np.ndarray]:
    h, w = rgb.shape[:2]
    s = MASK_SIZE / max(h, w)
    small = cv2.resize(rgb, (max(8, int(w * s)), max(8, int(h * s))), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    b = max(2, min(sh, sw) // 20)
    edge = np.zeros((sh, sw), bool)
    edge[:b], edge[-b:], edge[:, :b], edge[:, -b:] = True, True, True, True
    gx, gy = cv2.Sobel(lab[..., 0], cv2.CV_32F, 1, 0), cv2.Sobel(lab[..., 0], cv2.CV_32F, 0, 1)
    smooth = cv2.blur(np.hypot(gx, gy), (5, 5)) < 40  # shadows and falloff are smooth; clear plastic is not
    pale = (lab[..., 0] > 120) & (np.abs(lab[..., 1] - 128) < 12) & (np.abs(lab[..., 2] - 128) < 20)
    bare = edge & pale & smooth  # border pixels that look like the board (a cast or a light gradient allowed)
    if bare.sum() < 0.4 * edge.sum():
        return None  # the item fills the border: no board to cut from
    board = np.median(lab[bare], axis=0)
    dl = lab[..., 0] - board[0]
    dc = np.linalg.norm(lab[..., 1:] - board[1:], axis=2)
    seed = np.full((sh, sw), cv2.GC_PR_FGD, np.uint8)
    seed[(dc < 8) & (dl < 15) & (dl > -70) & smooth] = cv2.GC_PR_BGD  # the board, lit or in shadow
    seed[bare] = cv2.GC_BGD
    try:
        cv2.setRNGSeed(0)
        cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), seed, None, np.zeros((1, 65)), np.zeros((1, 65)), 4,
                    cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # one model had no pixels to learn from: no cut
        return None
    mask = ((seed == cv2.GC_FGD) | (seed == cv2.GC_PR_FGD)).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    mask = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_OPEN, k), cv2.MORPH_CLOSE, k, iterations=2)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    if n > 1:  # keep the item's parts: the biggest and any at least a tenth of it, not specks of board
        area = stats[1:, cv2.CC_STAT_AREA]
        mask = np.isin(labels, 1 + np.flatnonzero(area >= 0.1 * area.max())).astype(np.uint8)
    # fill holes (a window in a bottle): board parts that do not reach the photo's edge are item
    n, labels = cv2.connectedComponents(1 - mask)
    outside = np.unique(labels[edge])
    mask = (mask.astype(bool) | ~np.isin(labels, outside)).astype(np.uint8)
    return mask if board_is_bare(lab[..., 0], mask) else None


def board_is_bare(lightness: np.ndarray, mask: np.ndarray) -> bool:
    """Does what the cut calls board look like board: no edges away from the item?

    ``lightness``: LAB L on OpenCV's 8-bit scale (0..255), ``mask``: 0/1 uint8, both at the cut's size.
    A white jug, a sheet of paper or a clear bottle on the pale board can be cut away as board,
    leaving its label, a fold or nothing as "the item"; composited, such a cut teaches a texture
    labelled paper, and held up in a clip it is an empty hand. A bare board is smooth, so edges in
    it, a band around the cut aside, are mostly the outline, folds or print of an item the cut
    missed: then there is no cut (the photo trains on its own board; a clip holds it up whole, like
    a card). The line is not clean: on TrashNet `val`, cuts whose board is over 2.5 % edges were
    nearly all wrong, those between 1 and 2.5 % about half wrong (the good ones an item running
    off the photo or a sharp shadow), so 1 % also turns good cuts away, and a few wrong cuts (a
    clear jar's body lost on a smooth board) pass. Camera noise and JPEG do not make edges here:
    the cut's small size and the blur average them away.
    """
    board = cv2.dilate(mask, np.ones((9, 9), np.uint8)) == 0
    board[:3], board[-3:], board[:, :3], board[:, -3:] = False, False, False, False
    if not board.any():
        return False
    edges = cv2.Canny(cv2.GaussianBlur(lightness.astype(np.uint8), (3, 3), 0), 30, 90) > 0
    return float(edges[board].mean()) <= BOARD_EDGES_MAX


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A generated surface: a colour with a light gradient, a texture, sometimes stripes or tiles."""
    grey = rng.uniform(25, 225)  # mostly muted surfaces, now and then a coloured one
    base = np.clip(grey + rng.normal(0, 12 if rng.random() < 0.7 else 45, 3), 0, 255).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
    img = base + rng.uniform(-60, 60) * ramp[..., None]
    for cells, amp in ((4, rng.uniform(0, 40)), (16, rng.uniform(0, 25)), (64, rng.uniform(0, 12))):
        tex = cv2.resize(rng.normal(0, 1, (cells, cells)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        img += amp * tex[..., None] * rng.uniform(0.8, 1.0, 3)  # texture in light, hardly in hue
    kind = rng.integers(0, 4)
    if kind == 1:  # stripes: wood grain, planks, a slatted housing
        period = rng.uniform(6, 60)
        phase = (np.cos(angle) * xx + np.sin(angle) * yy) / period
        img += rng.uniform(10, 50) * np.sin(2 * math.pi * phase)[..., None]
    elif kind == 2:  # tiles: a floor or a wall
        s = int(rng.integers(20, 90))
        grout = ((xx.astype(int) % s) < 2) | ((yy.astype(int) % s) < 2)
        img[grout] = img[grout] * 0.55
    return _clip(img)


def composite(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The item cut from its board onto a generated background, with a soft contact shadow.

    Returns the photo unchanged when the cut-out is implausible (nearly nothing,
    or nearly everything: a sheet of paper filling the frame is its own board).
    """
    mask = plausible_mask(rgb)
    if mask is None:
        return rgb
    h, w = rgb.shape[:2]
    bg = background(rng, h, w).astype(np.float32)
    shadow = cv2.GaussianBlur(mask, (0, 0), 8.0)
    dx, dy = (int(v) for v in rng.integers(-8, 9, 2))
    shadow = np.roll(np.roll(shadow, dy, 0), dx, 1)
    bg *= (1.0 - rng.uniform(0.1, 0.45) * shadow)[..., None]
    m = mask[..., None]
    return _clip(rgb.astype(np.float32) * m + bg * (1.0 - m))


# ---- held up by a hand: the kiosk's own view of an item -----------------------------------------
SKIN = [(255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 56, 30)]


def plausible_mask(rgb: np.ndarray) -> Optional[np.ndarray]:
    """The item's cut-out, or None where the cut would be a guess: nearly nothing, nearly
    everything (a sheet of paper filling the frame is its own board), or running off the photo."""
    mask = item_mask(rgb)
    if mask is None or not 0.04 <= float(mask.mean()) <= 0.7:
        return None
    edge = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    return None if float((edge > 0.5).mean()) > 0.3 else mask


def held_cut(rgb: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """What is held up of this photo: the item's box (a little board around it) and its cut-out, where
    the cut is plausible; else the whole photo and None (held up like a card).

    Why the box: TrashNet frames a bottle cap and a box alike, so holding up the whole photo's extent
    made a small item a speck with a stick of an arm that the presence gate never saw.
    """
    mask = plausible_mask(rgb)
    if mask is None:
        return rgb, None
    h, w = mask.shape
    rows, cols = np.flatnonzero(mask.max(1) > 0.5), np.flatnonzero(mask.max(0) > 0.5)
    pad_y, pad_x = max(2, h // 30), max(2, w // 30)
    y0, y1 = max(0, rows.min() - pad_y), min(h, rows.max() + 1 + pad_y)
    x0, x1 = max(0, cols.min() - pad_x), min(w, cols.max() + 1 + pad_x)
    return rgb[y0:y1, x0:x1], mask[y0:y1, x0:x1]


def held_height(item: np.ndarray, view_w: int, view_h: int, fraction: float) -> int:
    """The height of ``item`` (``held_cut``'s) in a ``view_w`` x ``view_h`` view: ``fraction`` of the view's
    height, no wider than the view (a wide item is held as wide as the view)."""
    return max(8, min(int(view_h * fraction), int((view_w - 2) * item.shape[0] / item.shape[1])))


def place(view: np.ndarray, sprite: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Blend ``sprite`` (float RGB, 0..1 ``alpha``) into float ``view`` with its top-left at (``x``, ``y``),
    in place; below the view's bottom edge it is cut off (the forearm runs out of the view)."""
    rows = max(0, min(sprite.shape[0], view.shape[0] - y))
    if rows:
        a = alpha[:rows, :, None]
        region = view[y:y + rows, x:x + sprite.shape[1]]
        region[:] = sprite[:rows] * a + region * (1.0 - a)


def held_item(rgb: np.ndarray, mask: Optional[np.ndarray], height: int, view_h: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(RGB float32, 0..1 alpha) of ``held_cut``'s item and cut-out (None: the whole photo, held up like a
    card) ``height`` px tall, held by a hand at its lowest part, the forearm running down ``view_h`` px
    (out of any view the item is held in).
    ``kiosk eval --as-kiosk`` and the demo's synthetic camera show items this way.
    """
    ih = height
    iw = max(8, int(rgb.shape[1] * ih / rgb.shape[0]))
    item = cv2.resize(rgb, (iw, ih), interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha = (np.ones((ih, iw), np.float32) if mask is None
             else cv2.resize(mask, (iw, ih), interpolation=cv2.INTER_AREA))
    rows = np.flatnonzero(alpha.max(1) > 0.5)
    bottom = int(rows.max()) if len(rows) else ih - 1
    grip = alpha[max(0, bottom - ih // 8):bottom + 1].max(0) > 0.5
    cols = np.flatnonzero(grip) if grip.any() else np.arange(iw)
    sprite = np.zeros((ih + view_h, iw, 3), np.float32)
    shape = np.zeros(sprite.shape[:2], np.float32)
    sprite[:ih], shape[:ih] = item, alpha
    skin = np.array(SKIN[int(rng.integers(len(SKIN)))], np.float32) * rng.uniform(0.85, 1.1)
    sleeve = background(rng, 4, 4).reshape(-1, 3).mean(0).astype(np.float32)
    cx = int(np.clip(np.median(cols) + rng.uniform(-0.15, 0.15) * len(cols), 0, iw - 1))
    palm = (cx, max(0, bottom - ih // 40))
    wide = np.flatnonzero(alpha.max(0) > 0.5)
    item_w = int(wide.max() - wide.min() + 1) if len(wide) else iw
    half = int(np.clip(0.25 * item_w, 8, max(8, 0.2 * iw)))  # a hand in proportion to what it holds
    hand = np.zeros(sprite.shape[:2], np.uint8)
    cv2.ellipse(hand, palm, (half, max(6, int(0.6 * half))), 0, 0, 360, 1, -1)
    arm_w = max(4, int(0.7 * half))
    cv2.rectangle(hand, (cx - arm_w, palm[1]), (cx + arm_w, sprite.shape[0] - 1), 2, -1)
    cuff = palm[1] + int(0.3 * (view_h - palm[1]))
    hand_px = hand > 0
    colour = np.where((np.arange(sprite.shape[0]) > cuff)[:, None, None], sleeve, skin)
    shade = 1.0 - 0.25 * np.linspace(0, 1, iw, dtype=np.float32)[None, :, None]  # rounded, lit from one side
    sprite[hand_px] = (np.broadcast_to(colour, sprite.shape) * shade)[hand_px]
    shape[hand_px] = 1.0
    return sprite, shape
