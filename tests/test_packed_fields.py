"""The GEMM engine's fast pieces against direct computations.

- packed columns: one float32 GEMM with several columns packed per float yields every column's
  partial sums exactly (:mod:`forms.sim.packed_fields`), for signed levels too;
- per-pattern partial sums built row by row equal the digit GEMM they replace;
- the counting ADC conversion equals the plain one and its clip count, and leaves sums a lossless ADC
  cannot change untouched;
- the batched digit planes equal the plan's per-step digits.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forms.sim.adc import Adc, count_above
from forms.sim.bitplanes import digit_planes
from forms.sim.lookup import pattern_digits, pattern_partial_sums
from forms.sim.packed_fields import FLOAT32_SIGNIFICAND_BITS, field_bits, pack_columns
from forms.sim.quant_inputs import digit_plan
from forms.sim.workspace import Workspace
from forms.sim.zeroskip import narrow_codes


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    batch=st.integers(1, 3),
    rows=st.integers(1, 300),
    k=st.integers(1, 45),
    cell_bits=st.sampled_from([1, 2, 4]),
    dac_bits=st.sampled_from([1, 2, 3]),
    signed=st.booleans(),
)
def test_unpacked_fields_equal_each_columns_gemm(seed, batch, rows, k, cell_bits, dac_bits, signed) -> None:
    gen = torch.Generator().manual_seed(seed)
    low = 1 - (1 << cell_bits) if signed else 0  # signed: the difference of two crossbar sets
    levels = torch.randint(low, 1 << cell_bits, (batch, rows, k), generator=gen).float()
    max_digit = (1 << dac_bits) - 1
    digits = torch.randint(0, max_digit + 1, (batch, 17, rows), generator=gen).float()
    digits[:, 0] = max_digit  # the largest partial sums occur
    packed = pack_columns(levels, max_digit)
    width = field_bits(levels, max_digit)
    if packed is None:
        assert 2 * width > FLOAT32_SIGNIFICAND_BITS
        return
    assert packed.width == width and packed.fields == FLOAT32_SIGNIFICAND_BITS // width
    assert packed.signed == bool((levels < 0).any())
    got = packed.unpack(torch.bmm(digits, packed.levels), Workspace())
    want = torch.bmm(digits.double(), levels.double())
    assert got.shape == (batch, 17, packed.columns) and packed.columns - k < packed.fields
    assert torch.equal(got[..., :k].double(), want)
    assert not got[..., k:].any()  # padding columns hold zero levels


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 8), dac_bits=st.sampled_from([1, 2]))
def test_pattern_partial_sums_equal_the_digit_gemm(seed, rows, dac_bits) -> None:
    if rows * dac_bits > 12:
        rows = 12 // dac_bits
    gen = torch.Generator().manual_seed(seed)
    levels = torch.randint(0, 16, (2, rows, 5), generator=gen).double()
    want = torch.matmul(pattern_digits(rows, dac_bits, "cpu"), levels)
    assert torch.equal(pattern_partial_sums(levels, dac_bits), want)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    bits=st.integers(1, 8),
    step=st.sampled_from([1.0, 0.5, 1.5, 2.0]),
    integral=st.booleans(),
)
def test_counted_conversion_equals_plain_conversion(seed, bits, step, integral) -> None:
    gen = torch.Generator().manual_seed(seed)
    adc = Adc(bits, step)
    partial = torch.randint(-3, 2 * adc.max_code + 4, (6, 50), generator=gen).float()
    if not integral:
        partial += torch.rand(6, 50, generator=gen)
    plain, counted = partial.clone(), partial.clone()
    clipped = adc.convert_(plain, integral and step == 1.0)
    assert adc.convert_counted_(counted, integral and step == 1.0) == int(clipped.sum())
    assert torch.equal(plain, counted)
    if integral and step == 1.0:  # non-negative integer sums with a known bound
        sums = partial.clamp(min=0)
        plain, bounded = sums.clone(), sums.clone()
        clipped = adc.convert_(plain, True)
        assert adc.convert_counted_(bounded, True, max_sum=float(sums.max())) == int(clipped.sum())
        assert torch.equal(plain, bounded)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), limit=st.integers(0, 40), double=st.booleans())
def test_count_above_equals_the_comparison_count(seed, limit, double) -> None:
    gen = torch.Generator().manual_seed(seed)
    values = torch.randint(-5, 50, (7, 33), generator=gen).to(torch.float64 if double else torch.float32)
    assert count_above(values, limit) == int((values > limit).sum())
    assert count_above(values[:, ::2], limit) == int((values[:, ::2] > limit).sum())  # strided views


def test_counted_conversion_leaves_lossless_sums_alone() -> None:
    adc = Adc(4)
    partial = torch.arange(16.0)
    assert adc.convert_counted_(partial, True, max_sum=15) == 0
    assert torch.equal(partial, torch.arange(16.0))
    over = torch.tensor([3.0, 17.0, 16.0])
    assert adc.convert_counted_(over, True, max_sum=17) == 2 and over.tolist() == [3.0, 15.0, 15.0]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(1, 30),
    group_rows=st.sampled_from([1, 4, 8, 16]),
    bits=st.integers(2, 16),
    dac=st.sampled_from([1, 2, 3]),
    signed=st.booleans(),
)
def test_digit_planes_equal_per_step_digits(seed, rows, group_rows, bits, dac, signed) -> None:
    gen = torch.Generator().manual_seed(seed)
    plan = digit_plan(bits, dac, signed)
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    x = torch.randint(lo, hi, (5, 2, rows), generator=gen)
    got = digit_planes(x, plan, group_rows, torch.float32)
    frags = -(-rows // group_rows)
    want = torch.nn.functional.pad(plan.digits(x), (0, frags * group_rows - rows))  # (S, V, G, F*Rg)
    want = want.view(plan.steps, 5, 2, frags, group_rows).permute(2, 3, 0, 1, 4)
    assert torch.equal(got, want.reshape(2 * frags, plan.steps * 5, group_rows).float())
    lanes = narrow_codes(x, plan)  # uint8 up to 8 bits: the low bits, two's complement
    assert torch.equal(digit_planes(lanes, plan, group_rows, torch.float32), got)
