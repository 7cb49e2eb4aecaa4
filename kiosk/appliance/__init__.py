"""The kiosk as an appliance: event log, stats, systemd notify, signals, config location, doctor, technician CLI.

What a technician and systemd see. May import any other package; only the
worker (``kiosk.main``) and ``kiosk.cli`` import from here.
"""
