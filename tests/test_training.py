"""Training recipe bookkeeping (needs the train extra; skipped without PyTorch)."""

from __future__ import annotations

import shlex

import pytest

pytest.importorskip("torch")

from kiosk.training.train import build_parser, train_command  # noqa: E402


def test_train_command_reproduces_the_recorded_recipe():
    """The card's command, parsed again, gives back the run's arguments."""
    recipe = vars(build_parser().parse_args(["--out", "build/x y", "--epochs", "30", "--clean-fraction", "0.25"]))
    cmd = train_command(recipe)
    assert cmd.startswith("kiosk train --data ") and "--clean-fraction 0.25" in cmd and "--lr" not in cmd
    assert "'build/x y'" in cmd  # quoted for the shell
    assert vars(build_parser().parse_args(shlex.split(cmd)[2:])) == recipe
