"""Identities of the bit-accurate crossbar engine (docs/design.md, "Shared definitions").

The first: with ideal cells and a lossless ADC every encoding's output EQUALS the integer matrix
product, on the fast path and on the forced bit-level path. Then a narrow ADC against a direct
per-(step, fragment, column, slice) computation written from the definitions, and ISAAC's flipped
columns exact with one ADC bit fewer.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forms.encoding import lossless_adc_bits
from forms.errors import ConfigError
from forms.sim.adc import Adc
from forms.sim.crossbar import CrossbarArray
from forms.sim.encodings import encode
from forms.sim.integer_gemm import integer_matmul
from forms.sim.quant_inputs import digit_plan

ENCODINGS = ["polarized", "offset", "differential"]


def random_case(seed: int, groups: int, rows: int, cols: int, weight_bits: int, r: int, polarized: bool):
    gen = torch.Generator().manual_seed(seed)
    top = (1 << weight_bits) - 1
    w = torch.randint(-top, top + 1, (groups, rows, cols), generator=gen)
    if polarized:
        frags = math.ceil(rows / r)
        sign = torch.randint(0, 2, (groups, frags, cols), generator=gen) * 2 - 1
        w = w.abs() * sign.repeat_interleave(r, 1)[:, :rows]
    return w


def random_codes(seed: int, vectors: int, groups: int, rows: int, bits: int, signed: bool) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed + 1)
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    x = torch.randint(lo, hi, (vectors, groups, rows), generator=gen)
    x[x.abs() % 3 == 0] = 0  # some zeros so zero-skipping has something to do
    return x.to(torch.float64)


def make_array(
    w,
    encoding,
    weight_bits,
    cell_bits,
    xbar_rows,
    r,
    bits,
    signed,
    dac=1,
    adc_bits=None,
    flipped=False,
    force=False,
):
    enc = encode(w, encoding, weight_bits, cell_bits, xbar_rows, r, flipped)
    lossless = lossless_adc_bits(enc.group_rows, cell_bits, dac, flipped)
    adc = Adc(adc_bits if adc_bits is not None else lossless)
    return CrossbarArray(w, enc, adc, digit_plan(bits, dac, signed), r, force_bit_level=force)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    encoding=st.sampled_from(ENCODINGS),
    groups=st.integers(1, 2),
    rows=st.integers(1, 40),
    cols=st.integers(1, 7),
    xbar_rows=st.sampled_from([8, 16, 32]),
    r_div=st.sampled_from([1, 2, 4, 8]),
    cell_bits=st.sampled_from([1, 2, 4]),
    weight_bits=st.integers(4, 9),
    bits=st.integers(2, 16),
    signed=st.booleans(),
    dac=st.sampled_from([1, 2]),
    force=st.booleans(),
)
def test_ideal_lossless_equals_integer_matmul(
    seed, encoding, groups, rows, cols, xbar_rows, r_div, cell_bits, weight_bits, bits, signed, dac, force
) -> None:
    r = xbar_rows // r_div
    w = random_case(seed, groups, rows, cols, weight_bits, r, encoding == "polarized")
    x = random_codes(seed, 5, groups, rows, bits, signed)
    arr = make_array(w, encoding, weight_bits, cell_bits, xbar_rows, r, bits, signed, dac, force=force)
    y = arr(x)
    assert torch.equal(y, integer_matmul(x, w))
    assert arr.stats.clipped == 0
    assert (arr.stats.bit_level_calls > 0) == force


@pytest.mark.parametrize("bits", [1, 3, 16])
def test_unsigned_one_bit_to_sixteen_bit_inputs(bits: int) -> None:
    w = random_case(3, 1, 20, 4, 8, 4, True)
    x = random_codes(3, 6, 1, 20, bits, False)
    for force in (False, True):
        arr = make_array(w, "polarized", 8, 2, 16, 4, bits, False, force=force)
        assert torch.equal(arr(x), integer_matmul(x, w))


def digits_of(x: torch.Tensor, bits: int, signed: bool) -> list[tuple[int, torch.Tensor]]:
    """(weight, bit plane) pairs of integer codes, straight from two's complement."""
    u = x.to(torch.int64) % (1 << bits)
    out = []
    for b in range(bits):
        weight = -(1 << b) if (signed and b == bits - 1) else (1 << b)
        out.append((weight, (u >> b) & 1))
    return out


def direct_polarized(x, w, weight_bits, cell_bits, r, bits, signed, adc_bits):
    """y and clip count straight from docs/design.md: per (bit, fragment, column, slice) clipped sums."""
    v, g, rows = x.shape
    cols = w.shape[2]
    slices = math.ceil(weight_bits / cell_bits)
    top = (1 << adc_bits) - 1
    y = torch.zeros(v, g, cols, dtype=torch.float64)
    clipped = 0
    mag = w.abs()
    for weight, plane in digits_of(x, bits, signed):
        for f0 in range(0, rows, r):
            rs = slice(f0, min(rows, f0 + r))
            sign = torch.where((w[:, rs] < 0).any(1), -1.0, 1.0)  # (g, cols)
            for k in range(slices):
                cells = (mag[:, rs] >> (k * cell_bits)) & ((1 << cell_bits) - 1)
                p = torch.einsum("vgr,grc->vgc", plane[:, :, rs].double(), cells.double())
                clipped += int((p > top).sum())
                y += weight * (1 << (k * cell_bits)) * sign * p.clamp(max=top)
    return y, clipped


def direct_offset(x, w, weight_bits, cell_bits, xbar_rows, bits, signed, adc_bits):
    """ISAAC's offset encoding from its definition: (w + 2^bits) in cells, bias removed via sum(x)."""
    v, g, rows = x.shape
    cols = w.shape[2]
    slices = math.ceil((weight_bits + 1) / cell_bits)
    top = (1 << adc_bits) - 1
    stored = w + (1 << weight_bits)
    y = torch.zeros(v, g, cols, dtype=torch.float64)
    clipped = 0
    for weight, plane in digits_of(x, bits, signed):
        for t0 in range(0, rows, xbar_rows):
            rs = slice(t0, min(rows, t0 + xbar_rows))
            for k in range(slices):
                cells = (stored[:, rs] >> (k * cell_bits)) & ((1 << cell_bits) - 1)
                p = torch.einsum("vgr,grc->vgc", plane[:, :, rs].double(), cells.double())
                clipped += int((p > top).sum())
                y += weight * (1 << (k * cell_bits)) * p.clamp(max=top)
    y -= (1 << weight_bits) * x.sum(-1, keepdim=True)
    return y, clipped


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(4, 40),
    cell_bits=st.sampled_from([1, 2, 4]),
    adc_bits=st.integers(1, 5),
    signed=st.booleans(),
    bits=st.integers(2, 8),
)
def test_narrow_adc_polarized_matches_direct_computation(
    seed, rows, cell_bits, adc_bits, signed, bits
) -> None:
    r, wb = 8, 6
    w = random_case(seed, 2, rows, 5, wb, r, True)
    x = random_codes(seed, 4, 2, rows, bits, signed)
    arr = make_array(w, "polarized", wb, cell_bits, 16, r, bits, signed, adc_bits=adc_bits)
    y = arr(x)
    want, clipped = direct_polarized(x, w, wb, cell_bits, r, bits, signed, adc_bits)
    assert torch.equal(y, want)
    assert arr.stats.clipped == clipped
    if clipped == 0:  # no partial sum exceeded the range: the narrow ADC changed nothing
        assert torch.equal(y, integer_matmul(x, w))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(4, 40), adc_bits=st.integers(3, 6), signed=st.booleans())
def test_narrow_adc_offset_matches_direct_computation(seed, rows, adc_bits, signed) -> None:
    wb, cb, xr, bits = 5, 2, 16, 6
    w = random_case(seed, 1, rows, 4, wb, xr, False)
    x = random_codes(seed, 4, 1, rows, bits, signed)
    arr = make_array(w, "offset", wb, cb, xr, 8, bits, signed, adc_bits=adc_bits)
    want, clipped = direct_offset(x, w, wb, cb, xr, bits, signed, adc_bits)
    assert torch.equal(arr(x), want)
    assert arr.stats.clipped == clipped


def test_clipping_changes_only_vectors_with_an_overflowing_sum() -> None:
    # one fragment of 4 rows, 2-bit cells holding 3: a sum of k ones reads 3k; a 3-bit ADC holds 7.
    w = torch.full((1, 4, 1), 3, dtype=torch.int64)
    x = torch.tensor([[[1, 1, 0, 0]], [[1, 1, 1, 0]], [[0, 0, 0, 0]], [[1, 0, 0, 0]]], dtype=torch.float64)
    arr = make_array(w, "polarized", 2, 2, 4, 4, 1, False, adc_bits=3)
    y = arr(x)
    assert y.flatten().tolist() == [6.0, 7.0, 0.0, 3.0]  # only the 3-input vector (sum 9) clips to 7
    assert arr.stats.clipped == 1


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(1, 70),
    cell_bits=st.sampled_from([1, 2, 4]),
    dac=st.sampled_from([1, 2]),
    signed=st.booleans(),
)
def test_flipped_offset_is_exact_with_one_bit_fewer(seed, rows, cell_bits, dac, signed) -> None:
    wb, xr, bits = 7, 32, 8
    w = random_case(seed, 1, rows, 6, wb, xr, False)
    w[:, : rows // 2] = (1 << wb) - 1  # large weights: columns that need flipping
    x = random_codes(seed, 5, 1, rows, bits, signed)
    x[0] = (1 << (bits - 1)) - 1  # the largest digits everywhere
    full = lossless_adc_bits(xr, cell_bits, dac)
    assert lossless_adc_bits(xr, cell_bits, dac, flipped=True) == full - 1
    arr = make_array(
        w, "offset", wb, cell_bits, xr, 8, bits, signed, dac, adc_bits=full - 1, flipped=True, force=True
    )
    assert torch.equal(arr(x), integer_matmul(x, w))
    assert arr.stats.clipped == 0


def test_unflipped_offset_with_one_bit_fewer_clips() -> None:
    wb, xr, bits = 7, 32, 4
    w = torch.full((1, 32, 3), (1 << wb) - 1, dtype=torch.int64)
    x = torch.full((2, 1, 32), (1 << bits) - 1, dtype=torch.float64)
    full = lossless_adc_bits(xr, 2, 1)
    arr = make_array(w, "offset", wb, 2, xr, 8, bits, False, adc_bits=full - 1)
    assert not torch.equal(arr(x), integer_matmul(x, w))
    assert arr.stats.clipped > 0


def test_lossless_bits_match_isaac_and_forms_figures() -> None:
    # ISAAC (ISCA 2016): R=128, v=1, w=2 -> 9 bits, 8 with flipping; FORMS fragments R=4/8/16/32 -> 4..7 bits.
    assert lossless_adc_bits(128, 2, 1) == 9
    assert lossless_adc_bits(128, 2, 1, flipped=True) == 8
    assert [lossless_adc_bits(r, 2, 1) for r in (4, 8, 16, 32)] == [4, 5, 6, 7]


def test_polarized_refuses_mixed_sign_fragments() -> None:
    w = torch.tensor([[[1], [-1], [2], [3]]])
    with pytest.raises(ConfigError, match="encoding the checkpoint cannot provide"):
        encode(w, "polarized", 4, 2, 4, 4)
    encode(w, "polarized", 4, 2, 4, 1)  # R = 1 is always single-signed


@pytest.mark.parametrize(
    ("weight_bits", "cell_bits", "encoding"), [(0, 2, "offset"), (4, 9, "polarized"), (2, 4, "polarized")]
)
def test_bad_widths_are_refused(weight_bits: int, cell_bits: int, encoding: str) -> None:
    with pytest.raises(ConfigError):
        encode(torch.zeros(1, 4, 1, dtype=torch.int64), encoding, weight_bits, cell_bits, 4, 4)


def test_adc_needs_a_bit() -> None:
    with pytest.raises(ValueError, match="at least 1 bit"):
        Adc(0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(8, 40), signed=st.booleans())
def test_compacted_risky_columns_match_direct_computation(seed: int, rows: int, signed: bool) -> None:
    # small weights everywhere except one column: only that column's fragments can overflow a 4-bit ADC
    r, wb, cb, bits, adc_bits = 8, 6, 2, 6, 4
    w = random_case(seed, 2, rows, 6, wb, r, True)
    w = torch.where(torch.arange(6) == 2, w.sign() * 63, w.clamp(-1, 1))
    x = random_codes(seed, 4, 2, rows, bits, signed)
    arr = make_array(w, "polarized", wb, cb, 16, r, bits, signed, adc_bits=adc_bits)
    assert arr.risky_count > 0 and not arr.dense
    want, clipped = direct_polarized(x, w, wb, cb, r, bits, signed, adc_bits)
    assert torch.equal(arr(x), want)
    assert arr.stats.clipped == clipped
    table = arr.pattern_table()  # the table covers only the column that can clip
    assert arr.engine == "table" and table is not None and table.output_columns is not None
    assert table.output_columns.tolist() == [2]
    gemm = make_array(w, "polarized", wb, cb, 16, r, bits, signed, adc_bits=adc_bits)
    gemm.set_table_limit(0)  # the GEMM engine on the same compacted columns
    assert torch.equal(gemm(x), want) and gemm.engine == "gemm"
    assert gemm.stats.clipped == clipped
