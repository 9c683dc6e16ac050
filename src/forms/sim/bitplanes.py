"""Integer input codes as per-fragment digit patterns: the bit-matrix transpose of the bit-serial input.

At analog step ``b`` the ``Rg`` rows of one row group (fragment) apply the digits ``d_r = digit_b(x_r)``
(see :class:`forms.sim.quant_inputs.DigitPlan`). The *pattern* of that step is the integer

    pattern_b = sum_r d_r << (dac_bits * r),

so a pattern determines every partial sum the row group's columns produce at that step, and there are
only ``2^(dac_bits * Rg)`` of them. :func:`fragment_patterns` computes every step's pattern of every
fragment at once from int32 codes.

For a 1-bit DAC and ``Rg <= 8`` it is a bit-matrix transpose: byte ``k`` of the ``Rg`` (zero-padded
to 8) codes of a fragment form one int64 word (byte ``r`` = row ``r``), three mask/shift/xor rounds
transpose that 8 x 8 bit matrix (Warren, *Hacker's Delight*, 2nd ed., Sec. 7-3), and byte ``j`` of the
result is the pattern of step ``8k + j``. For ``8 < Rg <= 16`` a small lookup table spreads each
4-bit chunk of a code over 16-bit lanes, shifted by the row index, and the rows are summed (disjoint
bits). Other DAC widths use a plain per-step computation.
"""

from __future__ import annotations

import functools
import math
import sys

import torch
from torch import Tensor

from forms.sim.quant_inputs import DigitPlan, code_dtype
from forms.sim.workspace import Workspace

MAX_PATTERN_BITS = 16
"""Widest input pattern (DAC bits x rows of one row group) packed into int16 lanes and looked up
in per-pattern tables; wider groups (ISAAC and PRIME columns) take the GEMM path."""


def int_codes(codes: Tensor, plan: DigitPlan) -> Tensor:
    """Integer ``codes`` as int32 (int64 beyond 30 bits): the low ``plan.bits`` bits are the two's
    complement digits the plan streams (negative codes keep their sign extension above them, which
    no step reads; mask with 2^bits - 1 where the whole value matters)."""
    return codes.to(code_dtype(plan.bits))


def fragment_int_view(u: Tensor, fragment_size: int) -> Tensor:
    """(V, G, rows) integers -> (V, G, F, R) with the last fragment padded by zero rows."""
    v, g, rows = u.shape
    frags = math.ceil(rows / fragment_size)
    if frags * fragment_size == rows:
        return u.reshape(v, g, frags, fragment_size)
    out = u.new_zeros(v, g, frags * fragment_size)
    out[..., :rows] = u
    return out.view(v, g, frags, fragment_size)


def digit_planes(
    codes: Tensor, plan: DigitPlan, group_rows: int, dtype: torch.dtype, workspace: Workspace | None = None
) -> Tensor:
    """Digits (G*F, steps*V, Rg) in ``dtype`` of integer codes (V, G, rows), rows zero-padded to F
    row groups of ``group_rows``: row ``b*V + v`` of matrix ``g*F + f`` holds step ``b``'s digits of
    vector ``v`` on row group ``f`` (the GEMM engine's batched-GEMM operand), all steps at once.
    Codes of at most 8 bits may come as uint8 lanes holding their low 8 bits (two's complement: all
    the digits read, :func:`forms.sim.zeroskip.narrow_codes`). With a ``workspace`` the result and its
    integer scratch are views of its buffers."""
    # the low plan.bits bits (two's complement) are all the digits read: a byte each up to 8 bits
    lanes = plan.bits <= 8 and codes.dtype == torch.uint8
    u = fragment_int_view(codes if lanes else int_codes(codes, plan), group_rows)  # (V, G, F, Rg)
    v, g, f, rg = u.shape
    ws = workspace or Workspace()
    device, steps = u.device, plan.steps
    small = torch.uint8 if plan.bits <= 8 else u.dtype
    shifts = torch.tensor(plan.shifts, dtype=small, device=device).view(-1, 1, 1)
    masks = torch.tensor([(1 << w) - 1 for w in plan.widths], dtype=small, device=device).view(-1, 1, 1)
    by_group = u.permute(1, 2, 0, 3)  # (G, F, V, Rg), modulo 2^8 when bytes
    if by_group.dtype != small or not by_group.is_contiguous():
        by_group = ws.take("digit_codes", (g, f, v, rg), small, device).copy_(by_group)
    ints = ws.take("digit_ints", (g, f, steps, v, rg), small, device)
    torch.bitwise_right_shift(by_group.unsqueeze(2), shifts, out=ints).bitwise_and_(masks)
    digits = ws.take("digits", (g * f, steps * v, rg), dtype, device)
    digits.view(g, f, steps, v, rg).copy_(ints)
    return digits


def pattern_bits(plan: DigitPlan, group_rows: int) -> int:
    """Bits of one step's pattern: dac width (largest digit width) times the row-group size."""
    return max(plan.widths) * group_rows


def _one_bit_plan(plan: DigitPlan) -> bool:
    return all(w == 1 for w in plan.widths) and plan.shifts == tuple(range(plan.bits))


@functools.lru_cache(maxsize=32)
def _spread_table(lane_bits: int, rows: int, device: str) -> Tensor:
    """(rows * 2^chunk,) int64: entry r * 2^chunk + c has bit j of c at bit lane_bits * j + r."""
    chunk = 64 // lane_bits
    c = torch.arange(1 << chunk, dtype=torch.int64)
    bits = torch.bitwise_and(torch.bitwise_right_shift(c.unsqueeze(-1), torch.arange(chunk)), 1)
    spread = (bits << (lane_bits * torch.arange(chunk))).sum(-1)  # (2^chunk,)
    table = spread.unsqueeze(0) << torch.arange(rows).unsqueeze(-1)  # (rows, 2^chunk)
    return table.reshape(-1).to(device)


def fragment_patterns(u: Tensor, plan: DigitPlan, workspace: Workspace | None = None) -> Tensor:
    """Patterns (V, G, F, steps) of int codes ``u`` (V, G, F, Rg) (see the module doc).

    ``u`` holds :func:`int_codes` (two's complement digits in its low bits), split into fragments with
    :func:`fragment_int_view`. Patterns need ``dac_bits * Rg <= 16`` bits; the result is uint8 when
    they fit in 8 bits, else int32. With a ``workspace`` the 1-bit DAC's transposed patterns are a
    view of its buffers (valid until the next call with it).
    """
    rg = u.shape[-1]
    if pattern_bits(plan, rg) > MAX_PATTERN_BITS:
        raise ValueError(
            f"patterns of {rg} rows x {max(plan.widths)} DAC bits exceed {MAX_PATTERN_BITS} bits"
        )
    if _one_bit_plan(plan) and sys.byteorder == "little":
        if rg <= 8 and u.dtype == torch.int32:
            return _transposed_patterns(u, plan.bits, workspace or Workspace())
        return _spread_patterns(u, plan.bits)
    shifts = torch.tensor(plan.shifts, dtype=torch.int32, device=u.device)
    masks = torch.tensor([(1 << w) - 1 for w in plan.widths], dtype=torch.int32, device=u.device)
    place = torch.arange(rg, dtype=torch.int32, device=u.device) * max(plan.widths)
    digits = torch.bitwise_and(torch.bitwise_right_shift(u.unsqueeze(-1), shifts), masks)  # (...,Rg,S)
    return torch.bitwise_left_shift(digits, place.unsqueeze(-1)).sum(-2, dtype=torch.int32)


_TRANSPOSE8 = ((7, 0x00AA00AA00AA00AA), (14, 0x0000CCCC0000CCCC), (28, 0x00000000F0F0F0F0))


def _transposed_patterns(u: Tensor, bits: int, ws: Workspace) -> Tensor:
    v, g, f, rg = u.shape
    nbytes = math.ceil(bits / 8)
    planes = u.view(torch.uint8).view(v, g, f, rg, 4)[..., :nbytes].transpose(-1, -2)  # (V,G,F,B,Rg)
    block = ws.take("pattern-words", (v, g, f, nbytes, 8), torch.uint8, u.device)
    block[..., :rg] = planes
    block[..., rg:] = 0
    x = block.view(torch.int64)  # (V, G, F, B, 1): byte r of word k = byte k of row r
    t = ws.take("pattern-swaps", tuple(x.shape), torch.int64, u.device)
    for shift, mask in _TRANSPOSE8:  # in place: t = (x ^ x >> s) & mask; x ^= t ^ t << s
        torch.bitwise_right_shift(x, shift, out=t).bitwise_xor_(x).bitwise_and_(mask)
        x.bitwise_xor_(t).bitwise_xor_(t.bitwise_left_shift_(shift))
    return x.view(torch.uint8).view(v, g, f, nbytes * 8)[..., :bits]


def _spread_patterns(u: Tensor, bits: int) -> Tensor:
    v, g, f, rg = u.shape
    lane_bits = 8 if rg <= 8 else 16
    chunk = 64 // lane_bits
    words = math.ceil(bits / chunk)
    table = _spread_table(lane_bits, rg, str(u.device))
    shifts = torch.arange(words, dtype=u.dtype, device=u.device) * chunk
    # (V, G, F, Rg, words) chunk values, offset into the per-row table block
    index = torch.bitwise_and(torch.bitwise_right_shift(u.unsqueeze(-1), shifts), (1 << chunk) - 1)
    index += (torch.arange(rg, dtype=u.dtype, device=u.device) << chunk).view(rg, 1)
    spread = table[index.view(-1)].view(v, g, f, rg, words)
    packed = spread.sum(-2)  # (V, G, F, words): rows hold disjoint bits
    if lane_bits == 8:
        return packed.view(torch.uint8)[..., :bits]  # little-endian: lane j = byte j
    return torch.bitwise_and(packed.view(torch.int16)[..., :bits].to(torch.int32), 0xFFFF)
