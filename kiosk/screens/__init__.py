"""The touchscreen's parts: layout, words, fonts, text fitting, painting, the PIN pad, snapshots.

Owns everything drawn; ``kiosk.ui`` (the entry module) wires them to pygame's
events. May import ``kiosk.view``, ``kiosk.commands``, ``kiosk.config`` and
each other; never the worker, the hardware or the model: a screen is drawn
from a frozen ``View`` alone, so any screen can be rendered from sample data.
"""
