"""Running and measuring the model: onnxruntime sessions and their self-check, CPU facts, eval, bench, data.

``sessions.make_session`` builds every onnxruntime session; the classifier
(``kiosk.classifier``, entry module) uses it at run time, ``evaluate``,
``bench`` and training's export measure through the same path. No PyTorch
here. May import ``kiosk.preprocess``, ``kiosk.classifier``, ``kiosk.pipeline``,
``kiosk.config``; never the UI or the hardware.
"""
