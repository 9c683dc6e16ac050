"""THE definition of how a weight tensor becomes crossbar rows, columns and fragments.

Imported by ``forms.compress``, ``forms.sim`` and ``forms.cost`` so that the fragments ADMM enforces
are exactly the fragments the simulator and the cost model read (docs/design.md, "Shared definitions").
How many crossbars a matrix takes depends on the encoding: see :mod:`forms.encoding`.

- Crossbar matrix of a layer: ``Linear(in, out)`` -> ``W.T`` of shape (in, out);
  ``Conv2d(Cin, Cout, kh, kw, groups=g)`` -> one matrix per group,
  ``W[g-th block].reshape(Cout/g, Cin/g*kh*kw).T``, rows in PyTorch's (c, i, j) order.
  Matrices are returned stacked as (groups, rows, cols); a Linear layer has groups = 1.
- Rows are cut into row tiles of ``CrossbarSpec.rows``; a fragment is R consecutive rows of one
  column inside one tile. Because R divides the tile height, fragment boundaries are simply every
  R rows of the whole matrix: fragment k of a column holds rows [k*R, (k+1)*R). Only the last
  fragment may be short; views here pad it with zero rows, which never change a sign or a sum.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from forms.errors import UnsupportedLayerError

# Re-exported (``as``): the torch-free shape facts live in forms.geometry_shapes for the cost model.
from forms.geometry_shapes import LayerGeometry as LayerGeometry
from forms.geometry_shapes import num_row_fragments as num_row_fragments

MAPPED_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
"""Layer types placed on crossbars."""

UNSUPPORTED_WEIGHT_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Bilinear,
    nn.Embedding,
    nn.EmbeddingBag,
    nn.MultiheadAttention,
    nn.RNNBase,
)
"""Weight-bearing layers that have no crossbar mapping; a model holding one is refused by name."""


def supported_layer_names() -> str:
    """Human-readable list of the layer types the mapping supports."""
    return ", ".join(f"nn.{t.__name__}" for t in MAPPED_LAYER_TYPES)


def mapped_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Return ``(qualified name, module)`` of every Conv2d/Linear in ``model``, in module order.

    Raises :class:`UnsupportedLayerError` naming the first weight-bearing layer the crossbar mapping
    cannot place, or when the model has no Conv2d/Linear layer at all.
    """
    layers: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if isinstance(module, MAPPED_LAYER_TYPES):
            layers.append((name, module))
        elif isinstance(module, UNSUPPORTED_WEIGHT_LAYERS):
            raise UnsupportedLayerError(
                f"layer '{name}' ({type(module).__name__}) cannot be mapped onto crossbars; "
                f"supported layers: {supported_layer_names()} (BatchNorm, activations, pooling and "
                "residual adds run digitally)"
            )
    if not layers:
        raise UnsupportedLayerError(
            f"model {type(model).__name__} has no layer to map onto crossbars; "
            f"it needs at least one of {supported_layer_names()}"
        )
    return layers


def layer_groups(module: nn.Module) -> int:
    """Number of crossbar matrices of a mapped layer: ``groups`` of a Conv2d, 1 for a Linear."""
    return int(module.groups) if isinstance(module, nn.Conv2d) else 1


def weight_to_matrix(weight: Tensor, groups: int = 1) -> Tensor:
    """Crossbar matrices (groups, rows, cols) of a Linear (2-D) or Conv2d (4-D) weight tensor."""
    if weight.dim() == 2:
        if groups != 1:
            raise ValueError(f"a Linear weight has one group, got groups={groups}")
        return weight.t().unsqueeze(0)
    if weight.dim() == 4:
        cout = weight.shape[0]
        if cout % groups != 0:
            raise ValueError(f"{cout} output channels do not split into {groups} groups")
        return weight.reshape(groups, cout // groups, -1).transpose(1, 2)
    raise ValueError(f"expected a 2-D (Linear) or 4-D (Conv2d) weight, got shape {tuple(weight.shape)}")


def matrix_to_weight(matrix: Tensor, weight_shape: torch.Size | tuple[int, ...]) -> Tensor:
    """Inverse of :func:`weight_to_matrix`: a weight tensor of ``weight_shape`` from its matrices."""
    if matrix.dim() != 3:
        raise ValueError(f"expected crossbar matrices (groups, rows, cols), got shape {tuple(matrix.shape)}")
    if len(weight_shape) == 2:
        return matrix[0].t().contiguous()
    return matrix.transpose(1, 2).reshape(weight_shape).contiguous()


def fragment_view(matrix: Tensor, fragment_size: int) -> Tensor:
    """Matrices (..., rows, cols) as (..., fragments, R, cols), the last fragment zero-padded."""
    rows = matrix.shape[-2]
    pad = num_row_fragments(rows, fragment_size) * fragment_size - rows
    if pad:
        matrix = torch.nn.functional.pad(matrix, (0, 0, 0, pad))
    return matrix.reshape(*matrix.shape[:-2], -1, fragment_size, matrix.shape[-1])


def from_fragment_view(fragments: Tensor, rows: int) -> Tensor:
    """Inverse of :func:`fragment_view`: drop the padding rows and return (..., rows, cols)."""
    merged = fragments.reshape(*fragments.shape[:-3], -1, fragments.shape[-1])
    return merged[..., :rows, :]


@dataclass(frozen=True)
class FragmentSigns:
    """Sign of every fragment of a matrix stack, and which fragments hold both signs."""

    signs: Tensor
    """(..., fragments, cols) int8: +1 when no entry is negative (all-zero fragments are +1), else -1."""
    mixed: Tensor
    """(..., fragments, cols) bool: the fragment holds a positive AND a negative entry."""


def fragment_signs(matrix: Tensor, fragment_size: int) -> FragmentSigns:
    """Signs of the fragments of matrices (..., rows, cols); see :class:`FragmentSigns`."""
    frags = fragment_view(matrix, fragment_size)
    has_neg = (frags < 0).any(dim=-2)
    has_pos = (frags > 0).any(dim=-2)
    signs = torch.where(has_neg, -1, 1).to(torch.int8)
    return FragmentSigns(signs=signs, mixed=has_neg & has_pos)


def layer_geometry(name: str, module: nn.Module) -> LayerGeometry:
    """Geometry of one Conv2d/Linear module."""
    if not isinstance(module, MAPPED_LAYER_TYPES):
        raise UnsupportedLayerError(
            f"layer '{name}' ({type(module).__name__}) is not mappable; supported: {supported_layer_names()}"
        )
    weight = module.weight
    assert isinstance(weight, Tensor)
    groups = layer_groups(module)
    rows, cols = weight_to_matrix(weight.detach(), groups).shape[1:]
    kind = "conv" if isinstance(module, nn.Conv2d) else "linear"
    return LayerGeometry(name, kind, tuple(weight.shape), groups, int(rows), int(cols))


def model_geometry(model: nn.Module) -> list[LayerGeometry]:
    """Geometry of every mapped layer of ``model`` (see :func:`mapped_layers`)."""
    return [layer_geometry(name, module) for name, module in mapped_layers(model)]


def iter_matrices(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    """Yield ``(name, crossbar matrices)`` of every mapped layer (detached views of the weights)."""
    for name, module in mapped_layers(model):
        weight = module.weight
        assert isinstance(weight, Tensor)
        yield name, weight_to_matrix(weight.detach(), layer_groups(module))
