"""onnxruntime sessions, built one way, and the check that they compute what the card says.

Every session in the project (kiosk, ``kiosk bench``, ``kiosk eval``,
export, tests) comes from :func:`make_session`, so a benchmark times what
the kiosk runs. ``optimise=False`` is the *reference path*: graph
optimisations off, so a QDQ graph is computed in float (QuantizeLinear /
DequantizeLinear as written, no fused integer kernels). It is slower, and it
is what the int8 kernels must agree with on every CPU.

Why a self-check: onnxruntime picks its int8 kernels by CPU. On x86-64 with
AVX2 or AVX-512 but no VNNI, the u8*s8 kernels use ``VPMADDUBSW``, whose
int16 pair sums saturate when weights use the full 8 bits; VNNI and ARM
kernels do not. A model that is right on the export machine can so answer
worse elsewhere, silently. The card carries golden inputs (made from a
seed, byte-for-byte the same everywhere) and the reference path's logits on
them; :func:`check_kernels` runs them at load, which is also the warm-up.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from kiosk.errors import ModelError

GOLDEN_GRIDS = (4, 7, 8, 14, 16, 28, 32, 56)  # block sizes; coarse to fine structure
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


class ModelMismatchError(ModelError):
    """No way of running the model on this CPU reproduces the card's reference logits."""

    code = "E302"


KERNEL_FALLBACK_CODE = "E301"  # warning: sorting on the reference path because the int8 kernels disagree


def make_session(path: str | Path, threads: int = 2, optimise: bool = True):
    """The one way an onnxruntime session is built: fixed threads, no spinning, CPU provider."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimise
                                     else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    # the UI and camera need the CPU between inferences: threads sleep instead of spinning
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for bad graphs
        raise ModelError(f"onnxruntime cannot load {Path(path).name}: {str(e).splitlines()[0][:200]}") from None


def run_batch(session, inputs: np.ndarray) -> np.ndarray:
    """Logits for each input (N, ...) one at a time, as the kiosk runs them (batch of one)."""
    name, out = session.get_inputs()[0].name, session.get_outputs()[0].name
    return np.concatenate([session.run([out], {name: inputs[i : i + 1]})[0] for i in range(len(inputs))])


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A counter-based hash: the same bits from every numpy on every CPU (no RNG stream to drift)."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _M64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return z ^ (z >> np.uint64(31))


def golden_images(seed: int, count: int, size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """``count`` RGB uint8 pictures: coloured blocks (bright, high contrast) plus fine noise.

    Blocks of strong colour drive the activations to the top of their range,
    where saturating kernels go wrong first; no photo needs shipping.
    """
    h, w = size
    out = np.empty((count, h, w, 3), np.uint8)
    for k in range(count):
        g = next((g for g in GOLDEN_GRIDS[k % len(GOLDEN_GRIDS):] + GOLDEN_GRIDS if h % g == 0 and w % g == 0), 1)
        base = np.uint64((seed * 1_000_003 + k) << 32)
        cells = _splitmix64(base + np.arange((h // g) * (w // g) * 3, dtype=np.uint64))
        coarse = (cells >> np.uint64(56)).astype(np.int16).reshape(h // g, w // g, 3)
        img = np.repeat(np.repeat(coarse, g, 0), g, 1)
        fine = _splitmix64(base + np.uint64(1 << 31) + np.arange(h * w * 3, dtype=np.uint64))
        img = img + ((fine >> np.uint64(59)).astype(np.int16) - 16).reshape(h, w, 3)
        out[k] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def golden_inputs(seed: int, count: int, spec) -> np.ndarray:
    """The golden pictures normalised as the model expects (no CLAHE: it is the kernels under test)."""
    from kiosk.preprocess import normalise

    return np.stack([normalise(img, spec) for img in golden_images(seed, count, spec.size)])


def inputs_digest(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes()).hexdigest()


@dataclass(frozen=True)
class SelfCheck:
    """What the card's golden inputs say about the model on this CPU (one record for kiosk and doctor)."""

    path: str  # "optimised" (int8 kernels), "reference" (graph optimisations off) or "unchecked"
    optimised_diff: Optional[float]  # largest |logit - card logit| on the int8 kernels
    reference_diff: Optional[float]
    tolerance: Optional[float]
    detail: str

    @property
    def fallback(self) -> bool:
        return self.path == "reference"


def _max_diff(session, inputs: np.ndarray, logits: np.ndarray) -> float:
    return float(np.abs(run_batch(session, inputs) - logits).max())


def check_kernels(session, make_reference: Callable[[], object], card_check: Optional[dict], spec,
                  cpu_label: str = "", card_name: str = "model card"):
    """Return ``(session, SelfCheck)``: the optimised ``session`` when it matches the card, else
    the reference session ``make_reference()`` builds (only then: it costs a second session).

    Raises :class:`ModelMismatchError` when neither matches (the kiosk goes out
    of service rather than answer worse), :class:`ModelError` when the card's
    golden inputs cannot be rebuilt here.
    """
    if not card_check:
        run_batch(session, np.zeros((2, *_input_shape(spec)), np.float32))  # warm-up only
        return session, SelfCheck("unchecked", None, None, None, "card has no golden logits (self_check): not checked")
    try:
        seed, count = int(card_check["seed"]), int(card_check["count"])
        want = np.asarray(card_check["logits"], np.float32)
        tol = float(card_check["tolerance"])
        digest = str(card_check["inputs_sha256"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{card_name}: self_check lacks or mangles a field: {e!r}") from None
    inputs = golden_inputs(seed, count, spec)
    if inputs_digest(inputs) != digest:
        raise ModelError(f"{card_name}: the golden inputs made here differ from the card's "
                         f"(sha256 {inputs_digest(inputs)[:12]}... vs {digest[:12]}...): kiosk.model.sessions changed?")
    if want.shape != (count, len(want[0]) if len(want) else 0):
        raise ModelError(f"{card_name}: self_check.logits has shape {want.shape}, expected {count} rows")
    d_opt = _max_diff(session, inputs, want)
    where = f" on this CPU ({cpu_label})" if cpu_label else " on this CPU"
    if d_opt <= tol:
        return session, SelfCheck("optimised", d_opt, None, tol,
                                  f"int8 kernels match the card's reference: max logit diff {d_opt:.3f} <= {tol}")
    reference = make_reference()
    d_ref = _max_diff(reference, inputs, want)
    if d_ref <= tol:
        return reference, SelfCheck(
            "reference", d_opt, d_ref, tol,
            f"model computes differently{where}: int8 kernels off by {d_opt:.2f} on the card's golden inputs "
            f"(tolerance {tol}); sorting on the reference path (graph optimisations off, slower), which matches "
            f"({d_ref:.3f})")
    raise ModelMismatchError(
        f"model computes differently{where}: int8 kernels off by {d_opt:.2f} and the reference path by "
        f"{d_ref:.2f} on the card's golden inputs (tolerance {tol}); no path matches the card")


def _input_shape(spec) -> tuple[int, int, int]:
    h, w = spec.size
    return (3, h, w) if spec.layout == "NCHW" else (h, w, 3)


def main(argv=None) -> int:
    """``python -m kiosk.model.sessions --model M --inputs X.npy --out Y.npy``: logits for saved inputs.

    Deliberately nothing but the session: the tests and ``kiosk export`` run it
    under ``qemu-x86_64 -cpu Haswell`` to see the AVX2 kernels from any x86
    machine, and emulation is slow, so the preprocessing stays outside.
    """
    import argparse

    ap = argparse.ArgumentParser(prog="python -m kiosk.model.sessions", description=main.__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--inputs", required=True, help=".npy of model inputs, first axis = images")
    ap.add_argument("--out", required=True, help=".npy to write the logits to")
    ap.add_argument("--reference", action="store_true", help="graph optimisations off (the reference path)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    session = make_session(args.model, args.threads, optimise=not args.reference)
    np.save(args.out, run_batch(session, np.load(args.inputs)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
