"""Test helpers: fake compressed layers (quantized, optionally polarized) for small models."""

from __future__ import annotations

import torch
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
