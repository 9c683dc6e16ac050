"""Which torch device a run uses: the one rule behind every ``--device`` (train, compress, simulate)."""

from __future__ import annotations

import torch

from forms.errors import ConfigError

DEVICE_NAMES = ("auto", "cpu", "cuda")
"""Values of a ``device`` option: ``auto`` is CUDA when a GPU is available, else the CPU."""


def resolve_device(name: str) -> torch.device:
    """The device ``name`` stands for; :class:`ConfigError` for an unknown name or CUDA without a GPU."""
    if name not in DEVICE_NAMES:
        raise ConfigError(f"device must be one of {', '.join(DEVICE_NAMES)}, got '{name}'")
    cuda = torch.cuda.is_available()
    if name == "cuda" and not cuda:
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and cuda) else "cpu")
