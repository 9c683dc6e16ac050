"""The exact GEMM path and its dtype rule: integer codes times integer weights, exactly, in floats.

Floats hold integers exactly up to their significand: below 2^24 in float32, 2^53 in float64. The
engines' exact sums pick their dtype by :func:`exact_float_dtype` from a bound on
the magnitudes they can reach and the grid their values lie on (1 for integers, a power of two below 1 for
the outputs of an ADC with a fractional step), so float32 (fast) is used only where it is provably
exact.

:func:`exact_matmul` goes further for a GEMM whose whole sums would need float64: every partial sum of
``k`` rows is below ``k * max|x| * max|w|``, so a GEMM over row chunks short enough to keep that below
2^24 is exact in float32, and float64 adds the chunks' integer sums exactly. On issue 20's workload (W
1152 x 128 8-bit, codes bounded by 2^8: three chunks of at most 516 rows) the float32 chunks cost about a
third of one float64 GEMM on the machines of docs/benchmarks.md. The codes are converted chunk by
chunk of vectors into a buffer kept per thread, so no call writes a fresh tensor of every code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from forms.sim.boundary import IntegerRange, check_integers, check_shape
from forms.sim.workspace import thread_scratch

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


MIN_SPLIT_ROWS = 64
"""Shortest row chunk a float64 GEMM is split into to run in float32: shorter chunks would spend more
on adding their (vectors x columns) partial results than the float32 GEMMs save."""

EXACT_CHUNK_CODES = 1 << 22
"""Codes converted per chunk of vectors (16 MiB of float32, 32 MiB of float64, in the kept buffer)."""


@dataclass(frozen=True)
class ExactPlan:
    """How :func:`exact_matmul` forms exact sums: the float dtype and the rows per GEMM."""

    dtype: torch.dtype
    """float32 where every partial sum of ``chunk_rows`` rows is exact in it, else float64."""
    chunk_rows: int
    """Rows per GEMM (all rows when one GEMM is exact)."""


def exact_plan(rows: int, max_code: float, max_weight: float) -> ExactPlan:
    """The :class:`ExactPlan` of ``rows``-row sums of codes up to ``max_code`` times weights up to
    ``max_weight`` in magnitude: one float32 GEMM when all ``rows`` keep their sums below 2^24, float32
    chunks of as many rows as keep them so (at least :data:`MIN_SPLIT_ROWS`), else one float64 GEMM;
    always float64 when torch's float32 matmul precision is not "highest" (its faster modes round)."""
    whole = ExactPlan(torch.float64, max(rows, 1))
    if torch.get_float32_matmul_precision() != "highest":  # TF32 or bfloat16 passes would round
        return whole
    product = max_code * max_weight
    if exact_float_dtype(rows * product) is torch.float32:
        return ExactPlan(torch.float32, max(rows, 1))
    chunk = int((FLOAT32_EXACT - 1) // product)
    return ExactPlan(torch.float32, chunk) if chunk >= MIN_SPLIT_ROWS else whole


def exact_matmul(
    codes: Tensor,
    weight: Tensor,
    max_code: float,
    max_weight: float,
    convert: Callable[[Tensor, Tensor], None] | None = None,
) -> Tensor:
    """``codes @ W`` per group, exactly: codes (V, G, rows), W (G, rows, cols) -> (V, G, cols) float64,
    with |codes| <= ``max_code`` and |W| <= ``max_weight`` (:func:`exact_plan` picks the GEMMs). The
    caller has checked that both hold integers (:func:`integer_matmul` does; a crossbar array checks its
    codes per call and its weights when programmed). ``convert(part, operand)``, where given, writes each
    chunk of codes (n, G, rows) into the GEMM's float operand (G, n, rows) in place of a plain copy (a
    crossbar array counts zero-skips on the way, :func:`forms.sim.zeroskip.convert_and_count`)."""
    vectors, groups, rows = codes.shape
    plan = exact_plan(rows, max_code, max_weight)
    w = weight.to(plan.dtype)
    out = torch.empty(vectors, groups, weight.shape[-1], dtype=torch.float64, device=codes.device)
    step = max(1, EXACT_CHUNK_CODES // max(1, groups * rows))
    ws = thread_scratch()
    for start in range(0, vectors, step):
        part = codes[start : start + step].transpose(0, 1)  # (G, n, rows)
        x = ws.take(f"exact-codes-{plan.dtype}", tuple(part.shape), plan.dtype, codes.device)
        if convert is None:
            x.copy_(part)
        else:
            convert(codes[start : start + step], x)
        out[start : start + step] = _chunked_bmm(x, w, plan.chunk_rows).transpose(0, 1)
    return out


def _chunked_bmm(x: Tensor, w: Tensor, chunk_rows: int) -> Tensor:
    """``x @ w`` (G, n, rows) x (G, rows, cols) as the sum of GEMMs over ``chunk_rows`` rows each,
    added in float64 (each GEMM's sums exact in its own dtype)."""
    rows = x.shape[-1]
    total = torch.bmm(x[..., :chunk_rows], w[:, :chunk_rows]).to(torch.float64)
    for start in range(chunk_rows, rows, chunk_rows):
        total += torch.bmm(x[..., start : start + chunk_rows], w[:, start : start + chunk_rows])
    return total


def integer_matmul(codes: Tensor, weight_int: Tensor, max_code: int | None = None) -> Tensor:
    """Exact ``codes @ W`` per group: codes (V, G, rows), W (G, rows, cols) -> (V, G, cols) float64.

    The GEMMs are :func:`exact_matmul`'s (float32, whole or in row chunks, where every partial sum is
    provably exact; else float64). ``max_code`` bounds |x| when known. Raises
    :class:`~forms.errors.ConfigError` when the shapes do not match or an operand holds a value that is
    not a finite integer (exact in float64, and at most ``max_code`` in magnitude for the codes).
    """
    check_shape(weight_int, (None, None, None), "integer_matmul: weights (groups, rows, cols)")
    groups, rows, _ = weight_int.shape
    check_shape(codes, (None, groups, rows), "integer_matmul: codes (vectors, groups, rows)")
    max_w = check_integers(weight_int, _EXACT_INTEGERS, "integer_matmul: weights")
    allowed = _EXACT_INTEGERS if max_code is None else IntegerRange(-max_code, max_code, "|code| <= max_code")
    max_x = check_integers(codes, allowed, "integer_matmul: codes")
    return exact_matmul(codes, weight_int, float(max_x if max_code is None else max_code), max_w)
