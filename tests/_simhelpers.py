"""Test helpers: a small model of every conv geometry, the projection settings the sim tests use, and a
one-shot projected LeNet-5 checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import forms


def projection_spec(
    weight_bits: int, fragment_size: int, polarize: bool = True, scale: str = "channel"
) -> forms.CompressSpec:
    """Settings of :func:`forms.project`: ``weight_bits``-bit integers, polarized in fragments of
    ``fragment_size`` rows (or not), one scale per output channel or per ``layer``."""
    return forms.CompressSpec.model_validate(
        {
            "crossbar": {"fragment_size": fragment_size},
            "quant": {"weight_bits": weight_bits, "scale": scale},
            "polarize": {"enabled": polarize},
        }
    )


def compressed_lenet5_checkpoint(
    path: Path, fragment_size: int = 8, seed: int = 0, dataset: str = "mnist"
) -> Path:
    """An untrained LeNet-5, projected one-shot (the simulator and cost model only need valid integers),
    saved as a compressed checkpoint recording ``dataset`` as its data."""
    from forms.nn.checkpoint import save_checkpoint
    from forms.nn.models import build_model

    torch.manual_seed(seed)
    model = build_model("lenet5")
    layers = forms.project(model, projection_spec(weight_bits=8, fragment_size=fragment_size))
    save_checkpoint(
        {
            "stage": "compressed",
            "model": {"name": "lenet5", "kwargs": {"in_channels": 1, "num_classes": 10, "image_size": 28}},
            "state_dict": model.state_dict(),
            "optimizer": None,
            "epoch": 0,
            "seed": 0,
            "config": {},
            "data": {"dataset": dataset, "pad_to": None, "channels": None},
            "integer_layers": [layer.state() for layer in layers],
        },
        path,
    )
    return path


class Block(nn.Module):
    """Conv geometries (groups, stride, dilation, padding), BN, a residual add, pooling, a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.grouped = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4, bias=False)
        self.down = nn.Conv2d(8, 12, 3, stride=2, padding=1)
        self.fc = nn.Linear(12 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn(self.stem(x)))
        h = F.relu(h + self.grouped(h))
        h = F.relu(self.down(h))
        return self.fc(F.adaptive_avg_pool2d(h, 4).flatten(1))
