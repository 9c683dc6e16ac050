"""Zero-skip counts against hand counts and a brute-force count over sub-arrays."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forms.sim.quant_inputs import DigitPlan, digit_plan
from forms.sim.zeroskip import count_subarray_steps


def counts(values: list[list[int]], bits: int, r: int, signed: bool = False, dac: int = 1) -> tuple[int, ...]:
    x = torch.tensor(values, dtype=torch.float64).unsqueeze(1)  # (V, 1 group, rows)
    c = count_subarray_steps(x, digit_plan(bits, dac, signed), r)
    return c.rounds_total, c.rounds_needed_leading, c.rounds_needed_bitplane


def test_hand_made_unsigned() -> None:
    # one sub-array of 4 inputs, 4-bit: OR = 0b0101 -> bit planes 0 and 2 needed; leading needs 3 steps
    assert counts([[1, 0, 0, 4]], 4, 4) == (4, 3, 2)
    assert counts([[0, 0, 0, 0]], 4, 4) == (4, 0, 0)
    assert counts([[15, 0, 0, 0]], 4, 4) == (4, 4, 4)
    # two sub-arrays of 2 rows: [8, 0] needs step 3 only (bitplane 1, leading 4); [0, 1]: 1 and 1
    assert counts([[8, 0, 0, 1]], 4, 2) == (8, 5, 2)


def test_hand_made_signed_and_multibit_dac() -> None:
    # -1 in 4-bit two's complement is 1111: every step including the sign step
    assert counts([[-1, 0, 0, 0]], 4, 4, signed=True) == (4, 4, 4)
    # +2 = 0010: the sign step (last) is skipped by both rules
    assert counts([[2, 0, 0, 0]], 4, 4, signed=True) == (4, 2, 1)
    # 2-bit DAC, 4-bit unsigned: 0b0100 has digits (0, 1): two steps, one needed
    assert counts([[4, 0, 0, 0]], 4, 4, dac=2) == (2, 2, 1)


def test_short_last_subarray_is_padded_with_zeros() -> None:
    # 5 rows, R = 4: the second sub-array holds one real input
    assert counts([[0, 0, 0, 0, 3]], 2, 4) == (4, 2, 2)


def brute_force(x: torch.Tensor, bits: int, r: int, signed: bool) -> tuple[int, int, int]:
    total = leading = bitplane = 0
    for vec in x.to(torch.int64).tolist():
        for row in vec:
            for f0 in range(0, len(row), r):
                frag = [v % (1 << bits) for v in row[f0 : f0 + r]]
                needed = [any((v >> b) & 1 for v in frag) for b in range(bits)]
                total += bits
                bitplane += sum(needed)
                leading += max((b + 1 for b in range(bits) if needed[b]), default=0)
    return total, leading, bitplane


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 1000),
    rows=st.integers(1, 20),
    r=st.sampled_from([1, 2, 4, 8]),
    bits=st.integers(2, 10),
    signed=st.booleans(),
    sparsity=st.floats(0.0, 0.95),
)
def test_matches_brute_force(seed: int, rows: int, r: int, bits: int, signed: bool, sparsity: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    x = torch.randint(lo, hi, (3, 2, rows), generator=gen).to(torch.float64)
    x[torch.rand(x.shape, generator=gen) < sparsity] = 0
    c = count_subarray_steps(x, digit_plan(bits, 1, signed), r, chunk_elements=16)  # tiny chunks
    assert (c.rounds_total, c.rounds_needed_leading, c.rounds_needed_bitplane) == brute_force(
        x, bits, r, signed
    )
    assert c.rounds_total == 3 * 2 * math.ceil(rows / r) * bits
    assert c.rounds_needed_bitplane <= c.rounds_needed_leading <= c.rounds_total


def reference_counts(x: torch.Tensor, plan: DigitPlan, r: int) -> tuple[int, int, int]:
    """Straightforward per-sub-array, per-step count from ``plan``'s digit masks (no OR, no tables)."""
    masks = [((1 << w) - 1) << s for s, w in zip(plan.shifts, plan.widths, strict=True)]
    total = leading = bitplane = 0
    for vec in x.to(torch.int64).tolist():
        for row in vec:
            for f0 in range(0, len(row), r):
                needed = [any(v & m for v in row[f0 : f0 + r]) for m in masks]
                total += plan.steps
                bitplane += sum(needed)
                leading += max((s + 1 for s, n in enumerate(needed) if n), default=0)
    return total, leading, bitplane


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 1000),
    rows=st.integers(1, 70),
    r=st.sampled_from([3, 4, 8, 12, 16, 24, 32, 64]),
    bits=st.integers(1, 16),
    dac=st.integers(1, 3),
    signed=st.booleans(),
    as_int=st.booleans(),
    sparsity=st.floats(0.0, 0.99),
)
def test_word_folded_counts_match_reference(
    seed: int, rows: int, r: int, bits: int, dac: int, signed: bool, as_int: bool, sparsity: float
) -> None:
    """The counts from narrow lanes OR-ed as 64-bit words equal a plain per-step count, for 8- and
    16-bit lanes, sub-arrays that fill whole words or not, multi-bit DACs, int or float codes."""
    if signed and bits < 2:
        bits = 2
    gen = torch.Generator().manual_seed(seed)
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    x = torch.randint(lo, hi, (5, 2, rows), generator=gen)
    x[torch.rand(x.shape, generator=gen) < sparsity] = 0
    plan = digit_plan(bits, dac, signed)
    codes = x.to(torch.int32) if as_int else x.to(torch.float64)
    c = count_subarray_steps(codes, plan, r, chunk_elements=1 + rows * 3)  # chunks of a few vectors
    assert (c.rounds_total, c.rounds_needed_leading, c.rounds_needed_bitplane) == reference_counts(x, plan, r)
