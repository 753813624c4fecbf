"""Where torch work runs: one rule for training, evaluation and prediction."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` → the first CUDA GPU when there is one, else the CPU; otherwise ``torch.device(name)``.

    Raises:
        RuntimeError: a CUDA device is named but none is visible.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was requested but no CUDA GPU is visible; use 'auto' or 'cpu'")
    return dev


__all__ = ["resolve_device"]
