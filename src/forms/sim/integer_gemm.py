"""The exact GEMM path and its dtype rule: integer codes times integer weights, exactly, in floats.

Floats hold integers exactly up to their significand: below 2^24 in float32, 2^53 in float64. Every
exact sum the simulator forms in floats picks its dtype by :func:`exact_float_dtype` from a bound on
the magnitudes it can reach, so float32 (fast) is used only where it is provably exact.
"""

from __future__ import annotations

import torch
from torch import Tensor

FLOAT32_EXACT = 1 << 24
"""Integers below 2^24 are exact in float32 (24-bit significand)."""


def exact_float_dtype(bound: float) -> torch.dtype:
    """float32 when integers of magnitude ``bound`` are exact in it (below 2^24), float64 otherwise."""
    return torch.float32 if bound < FLOAT32_EXACT else torch.float64


def integer_matmul(codes: Tensor, weight_int: Tensor, max_code: int | None = None) -> Tensor:
    """Exact ``codes @ W`` per group: codes (V, G, rows), W (G, rows, cols) -> (V, G, cols) float64.

    Uses float32 when every sum is provably below 2^24 (rows * max|x| * max|w|), float64 otherwise.
    ``max_code`` bounds |x| when known (saves a pass over the codes).
    """
    rows = weight_int.shape[1]
    max_x = float(max_code) if max_code is not None else float(codes.abs().max()) if codes.numel() else 0.0
    max_w = float(weight_int.abs().max()) if weight_int.numel() else 0.0
    dtype = exact_float_dtype(rows * max_x * max_w)
    x = codes.to(dtype).transpose(0, 1)  # (G, V, rows)
    y = torch.bmm(x, weight_int.to(dtype))  # (G, V, cols)
    return y.transpose(0, 1).to(torch.float64)
