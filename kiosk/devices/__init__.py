"""The hardware front: flaps (``kiosk.actuators``) and scales (``kiosk.weighing``) built from the config.

``hardware.Hardware`` is what the worker drives; ``simpins`` are the mock pins
simulated chips hang off for the desktop demo and tests. May import the
device families and ``kiosk.faults``/``kiosk.commands``; never the UI.
"""
