"""Test helpers: fake compressed layers (quantized, optionally polarized) for small models."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from forms.geometry import (
    fragment_view,
    from_fragment_view,
    mapped_layers,
    matrix_to_weight,
    weight_to_matrix,
)
from forms.intweights import IntegerLayer


def polarize_matrix(m: torch.Tensor, fragment_size: int) -> torch.Tensor:
    """Zero the minority sign in every fragment (sign of the fragment sum wins)."""
    frags = fragment_view(m, fragment_size)
    sign = torch.where(frags.sum(-2, keepdim=True) >= 0, 1.0, -1.0)
    return from_fragment_view(torch.where(frags * sign >= 0, frags, torch.zeros_like(frags)), m.shape[-2])


def fake_compress(
    model: nn.Module, weight_bits: int = 8, fragment_size: int = 8, polarize: bool = True
) -> list[IntegerLayer]:
    """Quantize (and polarize) every mapped layer in place; return the matching integer layers."""
    layers = []
    with torch.no_grad():
        for name, module in mapped_layers(model):
            groups = module.groups if isinstance(module, nn.Conv2d) else 1
            m = weight_to_matrix(module.weight.detach().clone(), groups)
            if polarize:
                m = polarize_matrix(m, fragment_size)
            top = (1 << weight_bits) - 1
            scale = m.abs().max().clamp(min=1e-8) / top
            w_int = torch.round(m / scale).clamp(-top, top).to(torch.int64)
            layer = IntegerLayer(
                name, w_int, scale.reshape(()), tuple(module.weight.shape), weight_bits, fragment_size
            )
            module.weight.copy_(matrix_to_weight(w_int.float() * scale, module.weight.shape))
            layers.append(layer)
    return layers


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
