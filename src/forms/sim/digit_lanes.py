"""Input codes on narrow integer lanes, and what the zero-skip rules read of them.

The zero-skip counting (:mod:`forms.sim.zeroskip`) reads only the low ``plan.bits`` bits of each code
(its two's complement digits), so codes travel on the narrowest lane holding them (8 or 16 bits), many
to a 64-bit word. A description of a :class:`~forms.sim.quant_inputs.DigitPlan` on such lanes lives
here: word masks for the bit-parallel counts (:func:`lane_masks`), which the torch passes and the
compiled pass (:mod:`forms.sim.zeroskip_native`) both read.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from forms.sim.quant_inputs import DigitPlan


def lane_dtype(plan: DigitPlan) -> torch.dtype | None:
    """The narrowest integer lane holding a code's ``plan.bits`` low bits (None beyond 16 bits)."""
    if plan.bits <= 8:
        return torch.uint8
    return torch.int16 if plan.bits <= 16 else None


def _as_int64(mask: int) -> int:
    """A 64-bit pattern as the signed int64 holding the same bits."""
    return mask - (1 << 64) if mask >= 1 << 63 else mask


@dataclass(frozen=True)
class LaneMasks:
    """Word masks of one digit plan on lanes of one width (each a signed int64 pattern)."""

    wider: tuple[tuple[int, int], ...]
    """(k, mask) for k = 1 .. widest digit - 1: a 1 at the least significant bit of every digit wider
    than k bits, of every lane (the flags a right shift by k still reaches from inside the digit)."""
    flags: int
    """A 1 at the least significant bit of every digit of every lane."""
    smear: tuple[tuple[int, int], ...]
    """(k, mask) for k = 1, 2, 4, ... below the plan's bits: the bits of each lane that a right shift
    by k fills from the same lane (the low lane_bits - k bits of every lane)."""


@functools.lru_cache(maxsize=64)
def lane_masks(plan: DigitPlan, lane_bits: int) -> LaneMasks:
    """The masks of ``plan`` on lanes of ``lane_bits`` bits packed into 64-bit words."""
    lanes = range(0, 64, lane_bits)
    digits = tuple(zip(plan.shifts, plan.widths, strict=True))

    def lsbs(min_width: int) -> int:
        return _as_int64(sum(1 << (lane + s) for lane in lanes for s, w in digits if w >= min_width))

    smear = []
    k = 1
    while k < plan.bits:
        smear.append((k, _as_int64(sum(((1 << (lane_bits - k)) - 1) << lane for lane in lanes))))
        k *= 2
    wider = tuple((k, lsbs(k + 1)) for k in range(1, max(plan.widths)))
    return LaneMasks(wider, lsbs(1), tuple(smear))
