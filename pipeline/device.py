"""The device a stage runs on, chosen once from `train.device` (or a command's --device)."""
from __future__ import annotations

import torch


def pick_device(name: str) -> torch.device:
    """"cuda", "cpu", or "auto" (CUDA when available); "cuda" without a CUDA device is a ValueError."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device is 'cuda' but no CUDA device is available")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")
