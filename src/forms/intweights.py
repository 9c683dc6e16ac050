"""Signed integer weights in crossbar layout: the hand-off from compression to hardware.

A compressed model is a float PyTorch model whose mapped layers hold ``scale * weight_int``,
plus one :class:`IntegerLayer` per mapped layer. ``forms.compress`` produces them,
``forms.sim`` and ``forms.cost`` consume them (neither imports ``forms.compress``), and ``forms export``
writes them to an ``.npz`` that anyone can check without our code. All three sign encodings store the
SAME integers, so accuracy differences between encodings come only from the hardware.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from forms.geometry import fragment_signs, matrix_to_weight


def max_magnitude(weight_bits: int) -> int:
    """Largest integer magnitude with ``weight_bits`` magnitude bits: 2^weight_bits - 1."""
    return (1 << weight_bits) - 1


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
        if self.weight_int.dim() != 3:
            raise ValueError(
                f"{self.name}: weight_int must be (groups, rows, cols), got {tuple(self.weight_int.shape)}"
            )
        limit = max_magnitude(self.weight_bits)
        if self.weight_int.numel() and int(self.weight_int.abs().max()) > limit:
            raise ValueError(f"{self.name}: |weight_int| exceeds 2^{self.weight_bits} - 1 = {limit}")

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
        """Inverse of :meth:`state`."""
        return cls(
            name=str(state["name"]),
            weight_int=torch.as_tensor(state["weight_int"], dtype=torch.int64),
            scale=torch.as_tensor(state["scale"], dtype=torch.float32),
            weight_shape=tuple(int(d) for d in state["weight_shape"]),
            weight_bits=int(state["weight_bits"]),
            fragment_size=int(state["fragment_size"]),
        )


def integer_layers_from_checkpoint(
    checkpoint: dict[str, Any], source: str = "checkpoint"
) -> list[IntegerLayer]:
    """The :class:`IntegerLayer` list a compressed checkpoint holds under ``"integer_layers"``."""
    from forms.errors import CheckpointError

    states = checkpoint.get("integer_layers")
    if not states:
        raise CheckpointError(
            f"{source} holds no integer weights (stage '{checkpoint.get('stage', 'unknown')}'); "
            "compress it first with `forms compress --checkpoint <float checkpoint> --out <dir>`"
        )
    try:
        return [IntegerLayer.from_state(state) for state in states]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: corrupt integer layer record ({exc})") from None
