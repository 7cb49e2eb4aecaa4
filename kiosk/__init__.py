"""Waste-sorting kiosk: camera -> CLAHE -> presence gate -> int8 ONNX classifier -> decision -> UI and flaps."""

__version__ = "0.1.0"
