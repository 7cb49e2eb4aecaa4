"""Training, export and quantisation (need the `train` extra: PyTorch)."""
