"""Input zero-skipping statistics per sub-array (R rows x all columns of the layer's tiles).

Inputs stream as digits (one per analog step, see :class:`forms.sim.quant_inputs.DigitPlan`, LSB step
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

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from forms.sim.bitplanes import int_codes
from forms.sim.quant_inputs import DigitPlan

LOOKUP_BITS = 16
"""Codes up to this many bits count zero-skips with lookup tables of 2^bits entries."""


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


@functools.lru_cache(maxsize=32)
def _needed_steps_tables(plan: DigitPlan, device: str) -> tuple[Tensor, Tensor]:
    """Steps needed under "leading" and "bitplane" for every OR value of ``plan.bits`` bits (int64 each)."""
    leading, bitplane = _steps_needed(torch.arange(1 << plan.bits, dtype=torch.int64), plan)
    return leading.to(device), bitplane.to(device)


def _steps_needed(ored: Tensor, plan: DigitPlan) -> tuple[Tensor, Tensor]:
    """Steps needed under "leading" (up to the last non-zero digit) and "bitplane" (non-zero digits)
    for each OR value in ``ored``, int64 of ``ored``'s shape."""
    masks = [((1 << w) - 1) << s for s, w in zip(plan.shifts, plan.widths, strict=True)]
    present = torch.stack([torch.bitwise_and(ored, m) != 0 for m in masks])  # (steps, ...)
    idx = torch.arange(1, plan.steps + 1, device=ored.device, dtype=torch.int64)
    return (present * idx.view(-1, *([1] * ored.dim()))).amax(0), present.sum(0)


def _or_reduce(u: Tensor) -> Tensor:
    """Bitwise OR over the last dimension (log2 of its size halving passes)."""
    width = u.shape[-1]
    while width > 1:
        half = width // 2
        head = torch.bitwise_or(u[..., :half], u[..., half : 2 * half])
        if width % 2:
            head[..., :1] |= u[..., 2 * half :]
        u, width = head, half
    return u[..., 0]


def count_ored(ored: Tensor, plan: DigitPlan) -> ZeroSkipCounts:
    """Counts of sub-arrays given the OR of each one's R integer codes (any shape, any int dtype).

    Both rules depend only on which digits of the OR are non-zero, so for codes of at most
    ``LOOKUP_BITS`` bits the counts are a histogram of the OR values dotted with two per-value tables;
    wider codes test each step's digit mask. Bits above ``plan.bits`` (two's complement sign
    extension) are ignored.
    """
    counts = ZeroSkipCounts(rounds_total=int(ored.numel()) * plan.steps)
    if plan.bits <= LOOKUP_BITS:
        leading, bitplane = _needed_steps_tables(plan, str(ored.device))
        flat = torch.bitwise_and(ored.reshape(-1).to(torch.int64), (1 << plan.bits) - 1)
        histogram = torch.bincount(flat, minlength=1 << plan.bits)
        counts.rounds_needed_leading = int(torch.dot(histogram, leading))
        counts.rounds_needed_bitplane = int(torch.dot(histogram, bitplane))
        return counts
    leading, bitplane = _steps_needed(ored, plan)
    counts.rounds_needed_bitplane = int(bitplane.sum())
    counts.rounds_needed_leading = int(leading.sum())
    return counts


def _lane_dtype(plan: DigitPlan) -> torch.dtype | None:
    """The narrowest integer lane holding a code's ``plan.bits`` low bits (None beyond 16 bits)."""
    if plan.bits <= 8:
        return torch.uint8
    return torch.int16 if plan.bits <= 16 else None


_HALF_WIDTH = {torch.int64: torch.int32, torch.int32: torch.int16, torch.int16: torch.uint8}
"""The integer dtype of half the width, for folding a word's two halves onto one."""


def _or_subarrays(u: Tensor, fragment_size: int) -> Tensor:
    """OR of each sub-array of lane codes ``u`` (..., rows), rows a multiple of ``fragment_size``:
    (..., rows // fragment_size), in ``u``'s dtype.

    Where a sub-array fills whole 64-bit words, its words are OR-ed together and each word's halves
    are then OR-ed down to one lane (int64 -> int32 -> int16 -> uint8 views), so the work runs on
    words rather than on single lanes.
    """
    lanes = 8 // u.element_size()
    subarrays = u.shape[-1] // fragment_size
    if lanes < 4 or fragment_size % lanes:
        return _or_reduce(u.unflatten(-1, (subarrays, fragment_size)))
    words = u.contiguous().view(torch.int64).unflatten(-1, (subarrays, fragment_size // lanes))
    ored = _or_reduce(words)
    while ored.element_size() > u.element_size():
        halves = ored.unsqueeze(-1).view(_HALF_WIDTH[ored.dtype])
        ored = torch.bitwise_or(halves[..., 0], halves[..., 1])
    return ored.view(u.dtype)


def count_fragments(u: Tensor, plan: DigitPlan) -> ZeroSkipCounts:
    """Counts of int codes ``u`` (V, G, F, R) already split into zero-padded sub-arrays."""
    return count_ored(_or_reduce(u), plan)


def count_subarray_steps(
    codes: Tensor, plan: DigitPlan, fragment_size: int, chunk_elements: int = 1 << 22
) -> ZeroSkipCounts:
    """Count sub-array steps of integer input ``codes`` (vectors, groups, rows) under both rules.

    ``codes`` holds exact integers (any dtype); signed codes are read in two's complement. Vectors are
    processed in chunks of about ``chunk_elements`` inputs to bound memory. A short last sub-array is
    OR-reduced on its own (the zero rows that pad it would not change its OR).
    """
    vectors, groups, rows = codes.shape
    full, rest = divmod(rows, fragment_size)
    chunk = max(1, chunk_elements // max(1, groups * rows))
    counts = ZeroSkipCounts()
    lane = _lane_dtype(plan)
    for start in range(0, vectors, chunk):
        u = int_codes(codes[start : start + chunk], plan)
        if lane is not None:
            u = u.to(lane)  # wraps: keeps the low plan.bits bits, all that the rules read
        if full:
            counts.add(count_ored(_or_subarrays(u[..., : full * fragment_size], fragment_size), plan))
        if rest:
            counts.add(count_ored(_or_reduce(u[..., full * fragment_size :]), plan))
    return counts
