"""Load cells: HX711 decoding and drivers, per-bin scales and their calibration.

Pure decoding and fill logic sit beside the I/O so they are tested with plain
data. May import ``kiosk.config``, ``kiosk.datatypes``, ``kiosk.faults`` and
``kiosk.devices.simpins``; never the UI or the worker.
"""
