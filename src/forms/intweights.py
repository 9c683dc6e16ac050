"""Signed integer weights in crossbar layout: the hand-off from compression to hardware.

A compressed model is a float PyTorch model whose mapped layers hold ``scale * weight_int``,
plus one :class:`IntegerLayer` per mapped layer. ``forms.compress`` produces them,
``forms.sim`` and ``forms.cost`` consume them (neither imports ``forms.compress``), and ``forms export``
writes them to an ``.npz`` that anyone can check without our code. All three sign encodings store the
SAME integers, so accuracy differences between encodings come only from the hardware.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from forms.errors import CheckpointError
from forms.geometry import fragment_signs, matrix_to_weight


def max_magnitude(weight_bits: int) -> int:
    """Largest integer magnitude with ``weight_bits`` magnitude bits: 2^weight_bits - 1."""
    return (1 << weight_bits) - 1


def matrix_shape(weight_shape: Sequence[int], groups: int) -> tuple[int, int, int]:
    """(groups, rows, cols) of the crossbar matrices of a Linear (2-D) or Conv2d (4-D) weight of
    ``weight_shape`` split into ``groups`` groups (the shapes :func:`forms.geometry.weight_to_matrix`
    gives); ValueError for any other weight shape or a group count that does not divide it."""
    dims = tuple(int(d) for d in weight_shape)
    if len(dims) not in (2, 4) or min(dims) < 1:
        raise ValueError(f"weight shape {dims} is neither a Linear (2-D) nor a Conv2d (4-D) weight")
    if len(dims) == 2:
        if groups != 1:
            raise ValueError(f"a Linear weight {dims} has one group, not {groups}")
        return (1, dims[1], dims[0])
    if groups < 1 or dims[0] % groups:
        raise ValueError(
            f"the {dims[0]} output channels of a weight {dims} do not split into {groups} groups"
        )
    return (groups, math.prod(dims[1:]), dims[0] // groups)


@dataclass
class IntegerLayer:
    """Integer weights of one mapped layer, in crossbar layout, and how to turn them back to floats."""

    name: str
    """Qualified module name in the model (``model.get_submodule(name)``)."""
    weight_int: Tensor
    """int64 (groups, rows, cols): signed integers with |w| <= 2^weight_bits - 1."""
    scale: Tensor
    """float32 step size: shape () for a per-layer scale or (groups, cols) per output channel."""
    weight_shape: tuple[int, ...]
    """Shape of the PyTorch weight tensor the matrices came from."""
    weight_bits: int
    """Magnitude bits (the sign is separate: per fragment in FORMS)."""
    fragment_size: int
    """R of the polarization constraint these integers satisfy (1 when a layer is left unpolarized)."""

    def __post_init__(self) -> None:
        """Refuse integers, scales and shapes that do not describe one layer of ``weight_shape``."""
        shape = tuple(self.weight_int.shape)
        if self.weight_int.dim() != 3:
            raise ValueError(f"{self.name}: weight_int must be (groups, rows, cols), got {shape}")
        if self.weight_int.is_floating_point() or self.weight_int.is_complex():
            raise ValueError(f"{self.name}: weight_int must hold integers, got dtype {self.weight_int.dtype}")
        expected = matrix_shape(self.weight_shape, shape[0])
        if shape != expected:
            raise ValueError(
                f"{self.name}: weight_int has shape {shape}, but a weight of shape "
                f"{tuple(self.weight_shape)} maps to crossbar matrices {expected}"
            )
        limit = max_magnitude(self.weight_bits)
        if self.weight_int.numel() and (
            int(self.weight_int.max()) > limit or int(self.weight_int.min()) < -limit
        ):
            raise ValueError(f"{self.name}: |weight_int| exceeds 2^{self.weight_bits} - 1 = {limit}")
        if self.scale.dim() != 0 and self.scale.numel() != shape[0] * shape[2]:
            raise ValueError(
                f"{self.name}: scale of shape {tuple(self.scale.shape)} is neither one per layer nor one per "
                f"column of {shape[0]} x {shape[2]}"
            )
        if not bool(torch.isfinite(self.scale).all()):
            raise ValueError(f"{self.name}: the scale holds NaN or infinite values")
        if self.fragment_size < 1:
            raise ValueError(f"{self.name}: fragment_size must be >= 1, got {self.fragment_size}")

    @property
    def column_scale(self) -> Tensor:
        """The scale broadcast to (groups, 1, cols), ready to multiply a (groups, rows, cols) matrix."""
        groups, _, cols = self.weight_int.shape
        return (
            self.scale.reshape(-1).expand(groups * cols).reshape(groups, 1, cols)
            if self.scale.dim() == 0
            else self.scale.reshape(groups, 1, cols)
        )

    def dequantized_matrix(self) -> Tensor:
        """Float crossbar matrices ``weight_int * scale`` (groups, rows, cols)."""
        return self.weight_int.to(torch.float32) * self.column_scale

    def dequantized_weight(self) -> Tensor:
        """The float PyTorch weight tensor these integers represent."""
        return matrix_to_weight(self.dequantized_matrix(), self.weight_shape)

    def mixed_sign_fragments(self) -> int:
        """Fragments of R rows that hold both a positive and a negative integer (0 when polarized)."""
        return int(fragment_signs(self.weight_int, self.fragment_size).mixed.sum())

    def state(self) -> dict[str, Any]:
        """Plain-dict form for ``torch.save`` (tensors, ints and strings only)."""
        return {
            "name": self.name,
            "weight_int": self.weight_int.to(torch.int64).cpu(),
            "scale": self.scale.to(torch.float32).cpu(),
            "weight_shape": list(self.weight_shape),
            "weight_bits": self.weight_bits,
            "fragment_size": self.fragment_size,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> IntegerLayer:
        """Inverse of :meth:`state`; stored integers of any integer type become int64, other numbers
        are refused (not rounded)."""
        stored = torch.as_tensor(state["weight_int"])
        integral = not (stored.is_floating_point() or stored.is_complex())
        return cls(
            name=str(state["name"]),
            weight_int=stored.to(torch.int64) if integral else stored,
            scale=torch.as_tensor(state["scale"], dtype=torch.float32),
            weight_shape=tuple(int(d) for d in state["weight_shape"]),
            weight_bits=int(state["weight_bits"]),
            fragment_size=int(state["fragment_size"]),
        )


def integer_layers_from_checkpoint(
    checkpoint: dict[str, Any], source: str = "checkpoint"
) -> list[IntegerLayer]:
    """The :class:`IntegerLayer` list a compressed checkpoint holds under ``"integer_layers"``."""
    states = checkpoint.get("integer_layers")
    if not states:
        raise CheckpointError(
            f"{source} holds no integer weights (stage '{checkpoint.get('stage', 'unknown')}'); "
            "compress it first with `forms compress --checkpoint <float checkpoint> --out <dir>`"
        )
    try:
        return [IntegerLayer.from_state(state) for state in states]
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{source}: corrupt integer layer record ({exc})") from None


def check_layers_fit(layers: Sequence[IntegerLayer], model: nn.Module, source: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` unless every integer layer is a Linear or Conv2d of ``model`` with
    its weight shape and group count (the integers must belong to this model)."""
    for layer in layers:
        try:
            module = model.get_submodule(layer.name)
        except AttributeError:
            raise CheckpointError(f"{source}: integer layer '{layer.name}' is not in the model") from None
        if not isinstance(module, nn.Linear | nn.Conv2d):
            raise CheckpointError(f"{source}: integer layer '{layer.name}' is a {type(module).__name__}")
        shape, groups = tuple(module.weight.shape), module.groups if isinstance(module, nn.Conv2d) else 1
        if shape != tuple(layer.weight_shape) or groups != layer.weight_int.shape[0]:
            raise CheckpointError(
                f"{source}: integer layer '{layer.name}' holds a weight of shape {tuple(layer.weight_shape)} "
                f"in {layer.weight_int.shape[0]} groups, the model's is {shape} in {groups}"
            )
