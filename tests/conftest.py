"""Shared fixtures: the repo config, a tiny real ONNX model, the TrashNet data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

# helper modules whose asserts should read like test asserts, wherever a test module imports them first
pytest.register_assert_rewrite("tests.conftest_hardware", "tests.fakes")

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "trashnet"
CLASSES = ["cardboard", "glass", "metal", "paper", "plastic", "trash"]

# Colour prototypes (RGB) of the tiny model: it names the class whose colour is
# nearest to the mean colour of the crop. ``scene_prototypes`` refits three of
# them to the synthetic scene's items (bottle -> glass, box -> cardboard,
# can -> metal) as the presence gate actually crops them.
SCENE_CLASSES = ["glass", "cardboard", "metal"]
PROTOTYPES = {
    "cardboard": (170, 120, 60),
    "glass": (40, 160, 70),
    "metal": (200, 40, 50),
    "paper": (245, 245, 245),
    "plastic": (60, 60, 210),
    "trash": (150, 40, 160),
}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: minutes rather than seconds (emulated CPUs, chroots); "
                            "`-m 'not slow'` for a quick run")


@pytest.fixture(autouse=True)
def _runtime_dir(tmp_path, monkeypatch):
    """systemd's $RUNTIME_DIRECTORY, per test and absent: no test reads or writes a real /run/kiosk."""
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "run"))


@pytest.fixture
def repo():
    return REPO


@pytest.fixture
def config_dict():
    return yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))


def build_tiny_model(path: Path, classes=CLASSES, size=(224, 224), clahe=True, sharpness=8.0,
                     prototypes=PROTOTYPES) -> Path:
    """A real ONNX graph (mean colour -> nearest prototype logits) with its card."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from kiosk.classifier import ModelCard

    mean, std = 127.0, 128.0
    p = np.array([[(c - mean) / std for c in prototypes.get(k, (128, 128, 128))] for k in classes], np.float32)
    w = (2 * sharpness * p.T).astype(np.float32)  # logits = k(2 p.f - |p|^2): nearest prototype wins
    b = (-sharpness * (p ** 2).sum(1)).astype(np.float32)
    h, wd = size
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "W", "B"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, h, wd])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, len(classes)])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    ModelCard.write(path, {  # bound to the model, hashed, as export makes cards
        "name": "tiny-colour-test-model",
        "classes": list(classes),
        "input": {"size": [h, wd], "layout": "NCHW", "color": "RGB", "mean": [mean] * 3, "std": [std] * 3},
        "clahe": {"enabled": clahe, "clip_limit": 2.0, "tile_grid": 8},
        "output": "logits",
    })
    return path


def fit_scene_prototypes(seconds: float = 18.0, fps: float = 30.0) -> dict:
    """Mean colour of the gate's crops of each synthetic item, after CLAHE."""
    from kiosk.devices.synthetic_camera import SyntheticScene
    from kiosk.config import PresenceConfig
    from kiosk.preprocess import InputSpec, crop_for_model
    from kiosk.presence import PresenceGate

    scene = SyntheticScene((640, 480), seed=0)
    gate = PresenceGate(PresenceConfig(), (640, 480))
    sums: dict[int, list] = {}
    for i in range(int(seconds * fps)):
        t = i / fps
        img = scene.render(t)
        p = gate.update(img)
        if p.present and p.roi is not None and scene.phase(t)[0] == "hold":
            small = crop_for_model(p.roi.crop(img), InputSpec())
            sums.setdefault(scene.item_index(t) % 3, []).append(small.reshape(-1, 3).mean(0))
    protos = dict(PROTOTYPES)
    for idx, name in enumerate(SCENE_CLASSES):
        protos[name] = tuple(float(v) for v in np.mean(sums[idx], axis=0))
    return protos


@pytest.fixture(scope="session")
def scene_prototypes():
    return fit_scene_prototypes()


@pytest.fixture
def tiny_model(tmp_path):
    return build_tiny_model(tmp_path / "tiny.onnx")


@pytest.fixture
def scene_model(tmp_path, scene_prototypes):
    """The tiny model fitted to the synthetic scene's three items."""
    return build_tiny_model(tmp_path / "scene.onnx", prototypes=scene_prototypes, sharpness=40.0)


@pytest.fixture
def cfg_with(config_dict, tmp_path):
    """Build a validated config from the repo's, with overrides and a tiny model."""
    from kiosk.config import parse_config

    def make(overrides=None, model=None):
        data = json.loads(json.dumps(config_dict))
        for dotted, value in (overrides or {}).items():
            node = data
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
            node[leaf] = value
        model = model or build_tiny_model(tmp_path / "tiny.onnx")
        data.setdefault("model", {})["path"] = str(model)
        data.setdefault("storage", {})["data_dir"] = str(tmp_path / "data")
        return parse_config(data, base_dir=tmp_path)

    return make


@pytest.fixture
def cfg(cfg_with):
    return cfg_with()


@pytest.fixture
def trashnet():
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data/trashnet is not present")
    return SHARED_DATA
