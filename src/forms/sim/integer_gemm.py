"""The exact GEMM path and its dtype rule: integer codes times integer weights, exactly, in floats.

Floats hold integers exactly up to their significand: below 2^24 in float32, 2^53 in float64. Every
exact sum the simulator forms in floats picks its dtype by :func:`exact_float_dtype` from a bound on
the magnitudes it can reach and the grid its values lie on (1 for integers, a power of two below 1 for
the outputs of an ADC with a fractional step), so float32 (fast) is used only where it is provably
exact.
"""

from __future__ import annotations

import torch
from torch import Tensor

from forms.sim.boundary import IntegerRange, check_integers, check_shape

FLOAT32_EXACT = 1 << 24
"""Integers below 2^24 are exact in float32 (24-bit significand)."""

FLOAT64_EXACT = 1 << 53
"""Integers below 2^53 are exact in float64 (53-bit significand)."""

_EXACT_INTEGERS = IntegerRange(1 - FLOAT64_EXACT, FLOAT64_EXACT - 1, "integers exact in float64")


def exact_float_dtype(bound: float, grid: float = 1.0) -> torch.dtype:
    """float32 when every multiple of ``grid`` up to magnitude ``bound`` is exact in it, float64 otherwise.

    ``grid`` is a power of two: 1 for integers, :attr:`forms.sim.adc.Adc.grid` for converted values;
    the multiples are exact in float32 while ``bound / grid`` stays below 2^24.
    """
    return torch.float32 if bound / grid < FLOAT32_EXACT else torch.float64


def exact_matmul(codes: Tensor, weight: Tensor, bound: float) -> Tensor:
    """``codes @ W`` per group in the dtype exact for sums up to ``bound``: codes (V, G, rows), W (G,
    rows, cols) -> (V, G, cols) float64. The caller has checked that both hold integers
    (:func:`integer_matmul` does; a crossbar array checks its codes per call and its weights when
    programmed)."""
    dtype = exact_float_dtype(bound)
    x = codes.to(dtype).transpose(0, 1)  # (G, V, rows)
    y = torch.bmm(x, weight.to(dtype))  # (G, V, cols)
    return y.transpose(0, 1).to(torch.float64)


def integer_matmul(codes: Tensor, weight_int: Tensor, max_code: int | None = None) -> Tensor:
    """Exact ``codes @ W`` per group: codes (V, G, rows), W (G, rows, cols) -> (V, G, cols) float64.

    Uses float32 when every sum is provably below 2^24 (rows * max|x| * max|w|), float64 otherwise.
    ``max_code`` bounds |x| when known. Raises :class:`~forms.errors.ConfigError` when the shapes do not
    match or an operand holds a value that is not a finite integer (exact in float64, and at most
    ``max_code`` in magnitude for the codes).
    """
    check_shape(weight_int, (None, None, None), "integer_matmul: weights (groups, rows, cols)")
    groups, rows, _ = weight_int.shape
    check_shape(codes, (None, groups, rows), "integer_matmul: codes (vectors, groups, rows)")
    max_w = check_integers(weight_int, _EXACT_INTEGERS, "integer_matmul: weights")
    allowed = _EXACT_INTEGERS if max_code is None else IntegerRange(-max_code, max_code, "|code| <= max_code")
    max_x = check_integers(codes, allowed, "integer_matmul: codes")
    return exact_matmul(codes, weight_int, rows * float(max_x if max_code is None else max_code) * max_w)
