"""Masked retraining with a straight-through quantizer, and baking the final integer model.

After the hard projection the structure is frozen: which entries are pruned (zero mask), each
fragment's sign, and each layer's quantization step. :class:`ConstrainedWeight` is registered on
every mapped layer's ``weight`` with ``torch.nn.utils.parametrize``, so the user's module types
(and any code that reads ``module.weight``) are kept. Its forward maps the latent float weight to a
feasible one: zero mask -> clamp to the fragment sign -> quantize, the rounding passed straight
through for the gradient (Bengio et al., 2013, arXiv:1308.3432). :func:`bake` removes the
parametrizations and stores ``scale * integer`` as the plain weight, returning the
:class:`forms.intweights.IntegerLayer` records.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from forms.compress.projections import (
    LayerConstraint,
    Projection,
    clamp_to_signs,
    column_scale,
    quantize,
    quantize_int,
)
from forms.geometry import matrix_to_weight, weight_to_matrix
from forms.intweights import IntegerLayer


class ConstrainedWeight(nn.Module):
    """Parametrization: latent weight -> pruned, sign-clamped, quantized weight (STE on rounding)."""

    keep: Tensor
    signs: Tensor
    scale: Tensor

    def __init__(self, constraint: LayerConstraint, projection: Projection) -> None:
        super().__init__()
        self.groups = constraint.groups
        self.weight_shape = tuple(constraint.weight_shape)
        self.weight_bits = constraint.weight_bits
        self.polarized = projection.signs is not None
        self.register_buffer("keep", projection.keep.to(torch.float32).clone())
        signs = projection.signs if projection.signs is not None else torch.ones_like(projection.matrix)
        self.register_buffer("signs", signs.to(torch.float32).clone())
        self.register_buffer("scale", projection.scale.to(torch.float32).clone())

    def feasible_matrix(self, weight: Tensor) -> Tensor:
        """The latent weight's matrices after the zero mask and the sign clamp (not yet quantized)."""
        m = weight_to_matrix(weight, self.groups) * self.keep
        return clamp_to_signs(m, self.signs) if self.polarized else m

    def integers(self, weight: Tensor) -> Tensor:
        """int64 (groups, rows, cols) the latent ``weight`` maps to."""
        m = self.feasible_matrix(weight.detach())
        return quantize_int(m, column_scale(self.scale, m), self.weight_bits)

    def forward(self, weight: Tensor) -> Tensor:
        """Feasible weight with a straight-through gradient for the rounding, in ``weight``'s memory format.

        Keeping a channels-last latent's format keeps retraining as fast as channels-last training: an
        NCHW weight beside channels-last activations is slower (docs/benchmarks.md, memory-format).
        """
        m = self.feasible_matrix(weight)
        q = quantize(m.detach(), column_scale(self.scale, m), self.weight_bits)
        out = matrix_to_weight(m + (q - m).detach(), self.weight_shape)
        if out.dim() == 4 and weight.is_contiguous(memory_format=torch.channels_last):
            return out.contiguous(memory_format=torch.channels_last)
        return out


def attach(model: nn.Module, constraints: list[LayerConstraint], projections: dict[str, Projection]) -> None:
    """Register a :class:`ConstrainedWeight` on every constrained layer (latent = current weight)."""
    for c in constraints:
        module = model.get_submodule(c.name)
        parametrize.register_parametrization(module, "weight", ConstrainedWeight(c, projections[c.name]))


def load_projected(
    model: nn.Module, constraints: list[LayerConstraint], projections: dict[str, Projection]
) -> None:
    """Hard projection: overwrite every constrained layer's weight with its feasible projection."""
    with torch.no_grad():
        for c in constraints:
            weight = model.get_submodule(c.name).weight
            assert isinstance(weight, Tensor)
            weight.copy_(matrix_to_weight(projections[c.name].matrix, c.weight_shape).to(weight))


def _parametrization(module: nn.Module) -> ConstrainedWeight:
    plist = module.parametrizations["weight"]  # type: ignore[index]
    p = plist[0]
    assert isinstance(p, ConstrainedWeight)
    return p


def bake(model: nn.Module, constraints: list[LayerConstraint]) -> list[IntegerLayer]:
    """Remove the parametrizations, set each weight to ``scale * integer`` and return the integers.

    The baked weight is computed exactly as :meth:`IntegerLayer.dequantized_weight` computes it, so
    a model rebuilt from the checkpoint and one rebuilt from the integer records are bit-identical.
    """
    layers = []
    for c in constraints:
        module = model.get_submodule(c.name)
        p = _parametrization(module)
        latent = module.parametrizations["weight"].original  # type: ignore[index, union-attr]
        ints = p.integers(latent)
        layer = IntegerLayer(
            name=c.name,
            weight_int=ints.cpu(),
            scale=p.scale.detach().cpu().clone(),
            weight_shape=tuple(c.weight_shape),
            weight_bits=c.weight_bits,
            fragment_size=c.integer_fragment_size,
        )
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
        with torch.no_grad():
            weight = module.weight
            assert isinstance(weight, torch.Tensor)
            weight.copy_(layer.dequantized_weight().to(weight))
        layers.append(layer)
    return layers


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]], batches: int, device: torch.device
) -> bool:
    """Re-estimate BatchNorm running statistics (cumulative average over ``batches`` training batches).

    Projection moves every weight, so the statistics the float model collected no longer describe
    the activations; re-estimating them costs forward passes only. Returns False when the model has
    no BatchNorm layer (nothing done).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or batches <= 0:
        return False
    saved = [(m.momentum, m.training) for m in bns]
    was_training = model.training
    model.train()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    for i, (x, _) in enumerate(loader):
        if i >= batches:
            break
        model(x.to(device))
    for m, (momentum, _) in zip(bns, saved, strict=True):
        m.momentum = momentum
    model.train(was_training)
    return True
