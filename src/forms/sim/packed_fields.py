"""Several integer partial sums in one float32: packed columns for the GEMM engine.

With integral cell levels and integer digits every partial sum of a converted column is an integer in
``[0, S]``, ``S`` = the column's level sum times the largest DAC digit. Floats add integers below
2^24 exactly, so ``n = 24 // w`` columns fit in one float32 column, ``w`` = the bit length of the
largest ``S`` over the converted columns: with the K columns zero-padded to ``n * J``,

    packed[r, j] = sum_k 2^(w k) levels[r, k J + j]          (fields k < n, J packed columns)

and one GEMM of the digits with the packed levels yields every field exactly (the packed partial sum
``sum_k 2^(w k) P_k`` stays below 2^(w n) <= 2^24, and so does every partial sum of its products).
Unpacking is exact float arithmetic: ``t = floor(P * 2^-w)`` holds the fields above the lowest one,
``P - 2^w t`` the lowest. The GEMM, the engine's dominant cost, shrinks n-fold: for 128-row ISAAC and
PRIME columns of 2-bit cells with a 1-bit DAC, n = 2 where some column's sums reach 9 bits (at most
384), n = 3 where they all stay below 256.

The K columns are zero-padded to ``n * J``, ``J = ceil(K / n)``, so column ``i`` of the unpacked
result is column ``i`` of the levels (the padding columns after them are zero).

Signed levels (the signed slices of :mod:`forms.sim.slice_lanes`) take one more bit per field: a
field's sums lie in ``(-2^(w-1), 2^(w-1))`` when ``w - 1`` bits hold the largest sum of |levels| times
the largest digit, and unpacking first adds ``2^(w-1)`` to every field (one add of a constant to the
packed sum: every field is then non-negative), unpacks, and subtracts it again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from forms.sim.workspace import Workspace

FLOAT32_SIGNIFICAND_BITS = 24
"""Integers below 2^24 are exact in float32."""


@dataclass(frozen=True)
class PackedColumns:
    """Converted columns packed ``fields`` to a float32 column (module docstring)."""

    levels: Tensor
    """(G*F, Rg, J) float32 packed levels."""
    fields: int
    """n: columns per packed column."""
    width: int
    """w: bits per field."""
    signed: bool = False
    """True when levels may be negative (fields carry a sign bit)."""

    @property
    def columns(self) -> int:
        """Unpacked columns n * J (the converted columns plus zero padding)."""
        return self.fields * int(self.levels.shape[-1])

    def unpack(self, packed: Tensor, workspace: Workspace | None = None) -> Tensor:
        """Packed partial sums (B, M, J) -> (B, M, n * J) float32 fields, column k J + j holding field
        k of packed column j (exact float arithmetic). With a ``workspace`` the result is a view of
        its buffers."""
        b, m, j = packed.shape
        ws = workspace or Workspace()
        out = ws.take("fields", (b, m, self.fields, j), torch.float32, packed.device)
        scale = float(1 << self.width)
        half = float(1 << (self.width - 1))
        rest = packed  # holds fields k and above
        if self.signed:  # every field offset by 2^(w-1): non-negative
            bias = sum(half * float(1 << (self.width * k)) for k in range(self.fields))
            rest = torch.add(packed, bias, out=out[:, :, 0])
        for k in range(self.fields - 1):  # a handful of fields, three elementwise passes each
            above = torch.mul(rest, 1.0 / scale, out=out[:, :, k + 1]).floor_()
            torch.add(rest, above, alpha=-scale, out=out[:, :, k])
            rest = above
        if self.signed:
            out.sub_(half)
        return out.view(b, m, self.fields * j)


def field_bits(levels: Tensor, max_digit: int) -> int:
    """Bits of a field of integral ``levels`` (B, Rg, K) with digits up to ``max_digit``: those of the
    largest sum of |levels| over a column times ``max_digit``, plus a sign bit where a level is negative."""
    if not levels.numel():
        return 1
    largest = int(levels.abs().sum(1).max()) * max_digit
    return max(1, largest.bit_length()) + int(bool((levels < 0).any()))


def pack_columns(levels: Tensor, max_digit: int) -> PackedColumns | None:
    """Pack integral ``levels`` (G*F, Rg, K) (signed fields where some level is negative); None when
    fewer than two fields fit in float32."""
    b, rg, k = levels.shape
    width = field_bits(levels, max_digit)
    fields = FLOAT32_SIGNIFICAND_BITS // width
    if fields < 2 or k == 0:
        return None
    per_field = math.ceil(k / fields)  # J packed columns
    padded = torch.nn.functional.pad(levels.to(torch.float64), (0, fields * per_field - k))
    weights = torch.tensor(
        [float(1 << (width * i)) for i in range(fields)], dtype=torch.float64, device=levels.device
    )
    packed = (padded.view(b, rg, fields, per_field) * weights.view(1, 1, fields, 1)).sum(2)
    return PackedColumns(packed.to(torch.float32), fields, width, bool((levels < 0).any()))
