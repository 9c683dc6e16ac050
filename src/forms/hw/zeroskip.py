"""Input zero-skipping statistics per sub-array (R rows x all columns of the layer's tiles).

Inputs stream as digits (one per analog step, see :class:`forms.hw.quant_inputs.DigitPlan`, LSB step
first, the two's-complement sign step last). For one input vector and one sub-array of R rows:

- without skipping, every step converts: ``steps`` conversions rounds;
- "leading" rule: the sub-array stops after the highest step at which any of its R inputs has a
  non-zero digit (max over the R inputs of their digit length); the steps above are skipped;
- "bitplane" rule: every step at which all R digits are zero is skipped.

A conversion round of a sub-array converts every physical column it spans: ``columns`` = weight
columns x slices x crossbar sets (the unit column of the offset encoding is not counted). So

    conversions_total            = sub-array rounds x columns,
    conversions_skipped_leading  = (rounds skipped by "leading") x columns,
    conversions_skipped_bitplane = (rounds skipped by "bitplane") x columns.

Sub-arrays of a short last tile are padded with zero inputs (they never add a needed step). Skipping
never changes a result: a step whose inputs are all zero sums to exactly zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from forms.hw.quant_inputs import DigitPlan


@dataclass
class ZeroSkipCounts:
    """Sub-array step counts of one layer; multiply by the columns to get conversions."""

    rounds_total: int = 0
    rounds_needed_leading: int = 0
    rounds_needed_bitplane: int = 0

    def add(self, other: ZeroSkipCounts) -> None:
        """Accumulate ``other`` into this record."""
        self.rounds_total += other.rounds_total
        self.rounds_needed_leading += other.rounds_needed_leading
        self.rounds_needed_bitplane += other.rounds_needed_bitplane


def count_subarray_steps(
    codes: Tensor, plan: DigitPlan, fragment_size: int, chunk_elements: int = 1 << 22
) -> ZeroSkipCounts:
    """Count sub-array steps of integer input ``codes`` (vectors, groups, rows) under both rules.

    ``codes`` holds exact integers (any dtype); signed codes are read in two's complement. Vectors are
    processed in chunks of about ``chunk_elements`` inputs to bound memory.
    """
    vectors, groups, rows = codes.shape
    frags = math.ceil(rows / fragment_size)
    width = 1 << max(0, fragment_size - 1).bit_length()  # R rounded up to a power of two
    per_vector = max(1, groups * frags * width)
    chunk = max(1, chunk_elements // per_vector)
    itype = torch.int32 if plan.bits <= 30 else torch.int64
    masks = [((1 << w) - 1) << s for s, w in zip(plan.shifts, plan.widths, strict=True)]
    idx = torch.arange(1, plan.steps + 1, device=codes.device, dtype=torch.int32).view(-1, 1, 1, 1)
    counts = ZeroSkipCounts()
    for start in range(0, vectors, chunk):
        u = codes[start : start + chunk].to(itype)
        if plan.signed:
            u = torch.bitwise_and(u, (1 << plan.bits) - 1)  # two's complement bit pattern
        pad = frags * fragment_size - rows
        if pad:
            u = torch.nn.functional.pad(u, (0, pad))
        u = u.reshape(u.shape[0], groups, frags, fragment_size)
        if width != fragment_size:
            u = torch.nn.functional.pad(u, (0, width - fragment_size))
        # OR over the R inputs of each sub-array, by halving (log2 R vectorized steps).
        while u.shape[-1] > 1:
            half = u.shape[-1] // 2
            u = torch.bitwise_or(u[..., :half], u[..., half:])
        ored = u[..., 0]  # (V, G, F): bit b set iff some input of the sub-array has bit b set
        present = torch.stack([torch.bitwise_and(ored, m) != 0 for m in masks])  # (steps, V, G, F)
        counts.rounds_total += int(ored.numel()) * plan.steps
        counts.rounds_needed_bitplane += int(present.sum())
        counts.rounds_needed_leading += int((present * idx).amax(dim=0).sum())
    return counts
