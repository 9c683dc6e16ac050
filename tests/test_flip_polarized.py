"""Flipped columns under every encoding (FORMS's fragments included): exact at the flipped lossless
ADC width on every engine, the flipped width really lossless, and a narrow flipped ADC equal to a
direct computation from the definition (docs/design.md, "The three encodings")."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forms.config import CrossbarSpec
from forms.encoding import Encoding
from forms.sim.adc import Adc
from forms.sim.crossbar import CrossbarArray
from forms.sim.encodings import encode
from forms.sim.integer_gemm import integer_matmul
from forms.sim.quant_inputs import digit_plan


def polarized_weights(gen: torch.Generator, shape: tuple[int, int, int], bits: int, r: int) -> torch.Tensor:
    """Random ``bits``-bit integers, one random sign per fragment of ``r`` rows; half the fragments at
    the largest magnitude so that many columns need flipping."""
    g, rows, cols = shape
    top = (1 << bits) - 1
    mag = torch.randint(0, top + 1, shape, generator=gen)
    frags = math.ceil(rows / r)
    big = torch.rand(g, frags, cols, generator=gen) < 0.5
    mag = torch.where(big.repeat_interleave(r, 1)[:, :rows], top, mag)
    sign = (torch.randint(0, 2, (g, frags, cols), generator=gen) * 2 - 1).repeat_interleave(r, 1)[:, :rows]
    return mag * sign


def codes(gen: torch.Generator, shape: tuple[int, int, int], bits: int, signed: bool) -> torch.Tensor:
    """Random codes with some zeros, the first vector at the largest positive code everywhere."""
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    x = torch.randint(lo, hi, shape, generator=gen)
    x[torch.rand(shape, generator=gen) < 0.3] = 0
    x[0] = hi - 1
    return x.to(torch.float64)


def flipped_array(w, encoding, weight_bits, crossbar, bits, signed, dac, adc_bits=None, force=False):
    """A flipped-column array of ``w`` with the flipped lossless ADC (or ``adc_bits``)."""
    enc = encode(
        w, encoding, weight_bits, crossbar.cell_bits, crossbar.rows, crossbar.fragment_size, flipped=True
    )
    width = (
        Encoding(encoding).lossless_adc_bits(crossbar, dac, flipped=True) if adc_bits is None else adc_bits
    )
    plan = digit_plan(bits, dac, signed)
    return CrossbarArray(w, enc, Adc(width), plan, crossbar.fragment_size, force_bit_level=force)


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    encoding=st.sampled_from(list(Encoding)),
    rows=st.integers(1, 40),
    r=st.sampled_from([1, 2, 4, 8]),
    cell_bits=st.sampled_from([1, 2, 3]),
    weight_bits=st.integers(3, 8),
    bits=st.integers(2, 10),
    dac=st.sampled_from([1, 2]),
    signed=st.booleans(),
    engine=st.sampled_from(["exact", "table", "gemm"]),
)
def test_flipped_is_exact_at_the_flipped_lossless_width(
    seed, encoding, rows, r, cell_bits, weight_bits, bits, dac, signed, engine
) -> None:
    """At ``Encoding.lossless_adc_bits(..., flipped=True)`` no conversion clips and every engine's
    output equals the integer product bit for bit."""
    if cell_bits > Encoding(encoding).stored_bits(weight_bits):
        cell_bits = 1
    gen = torch.Generator().manual_seed(seed)
    crossbar = CrossbarSpec(rows=16, cols=16, cell_bits=cell_bits, fragment_size=r)
    w = polarized_weights(gen, (2, rows, 5), weight_bits, r)
    x = codes(gen, (6, 2, rows), bits, signed)
    arr = flipped_array(w, encoding, weight_bits, crossbar, bits, signed, dac, force=engine != "exact")
    if engine == "gemm":
        arr.set_table_limit(0)
    assert arr.max_partial <= arr.adc.max_code  # the flipped width holds every partial sum
    assert torch.equal(arr(x), integer_matmul(x, w))
    assert arr.stats.clipped == 0
    table_fits = max(arr.plan.widths) * arr.encoded.group_rows <= 16  # pattern bits of a row group
    assert arr.engine == ("gemm" if engine == "table" and not table_fits else engine)


def test_forms_fragments_of_eight_are_lossless_at_four_bits_only_flipped() -> None:
    """R = 8 rows of 2-bit cells, 1-bit DAC: with every input 1 a fragment of 3s sums to 24 and one of
    2s to 16, beyond a 4-bit ADC (15); flipped they store 0s and 1s, read 0 and 8, and the output is
    exact."""
    crossbar = CrossbarSpec(rows=128, cols=128, cell_bits=2, fragment_size=8)
    assert Encoding.POLARIZED.lossless_adc_bits(crossbar, 1, flipped=True) == 4
    assert Encoding.POLARIZED.lossless_adc_bits(crossbar, 1) == 5
    big = torch.tensor([3] * 8 + [-2] * 8)  # column 0: a fragment of 3s, a negative one of 2s
    small = torch.tensor([1, 2, 0, 1, 0, 0, 1, 2, 0, -1, -2, 0, -1, 0, 0, -1])
    w = torch.stack([big, small], -1).unsqueeze(0)  # (1, 16 rows, 2 columns)
    x = torch.tensor([[[1.0] * 16], [[1.0, 0.0] * 8]])
    for flipped, clips in ((True, 0), (False, 2)):
        enc = encode(w, "polarized", 2, 2, 128, 8, flipped=flipped)
        arr = CrossbarArray(w, enc, Adc(4), digit_plan(1, 1, False), 8, force_bit_level=True)
        y = arr(x)
        assert arr.stats.clipped == clips  # unflipped: 24 and 16 > 15 (vector 0)
        assert torch.equal(y, integer_matmul(x, w)) == (clips == 0)


def direct_flipped_polarized(x, w, weight_bits, cell_bits, r, bits, signed, adc_bits):
    """y and clips from the definition: per (bit, fragment, column, slice) a column whose real cells
    sum above R * M / 2 stores M - c, converts clipped, and is read back as M * U - reading."""
    v, g, rows = x.shape
    m, top = (1 << cell_bits) - 1, (1 << adc_bits) - 1
    u = x.to(torch.int64) % (1 << bits)
    y = torch.zeros(v, g, w.shape[2], dtype=torch.float64)
    clipped = 0
    for b in range(bits):
        weight = -(1 << b) if (signed and b == bits - 1) else (1 << b)
        plane = ((u >> b) & 1).double()
        for f0 in range(0, rows, r):
            rs = slice(f0, min(rows, f0 + r))
            sign = torch.where((w[:, rs] < 0).any(1), -1.0, 1.0)  # (g, cols)
            digit_sum = plane[:, :, rs].sum(-1, keepdim=True)  # U
            for k in range(math.ceil(weight_bits / cell_bits)):
                cells = (w[:, rs].abs() >> (k * cell_bits)) & m
                flip = 2 * cells.sum(1) > r * m  # (g, cols)
                stored = torch.where(flip.unsqueeze(1), m - cells, cells).double()
                p = torch.einsum("vgr,grc->vgc", plane[:, :, rs], stored)
                clipped += int((p > top).sum())
                read = torch.where(flip, m * digit_sum - p.clamp(max=top), p.clamp(max=top))
                y += weight * (1 << (k * cell_bits)) * sign * read
    return y, clipped


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(4, 40),
    adc_bits=st.integers(1, 4),
    signed=st.booleans(),
    bits=st.integers(2, 8),
    gemm=st.booleans(),
)
def test_narrow_flipped_polarized_matches_direct_computation(
    seed, rows, adc_bits, signed, bits, gemm
) -> None:
    """Below the flipped lossless width the table and GEMM engines clip exactly as the definition:
    fragment signs and flips both on the digital side."""
    r, wb, cb = 8, 6, 2
    gen = torch.Generator().manual_seed(seed)
    w = polarized_weights(gen, (2, rows, 5), wb, r)
    x = codes(gen, (4, 2, rows), bits, signed)
    crossbar = CrossbarSpec(rows=16, cols=16, cell_bits=cb, fragment_size=r)
    arr = flipped_array(w, "polarized", wb, crossbar, bits, signed, 1, adc_bits=adc_bits)
    if gemm:
        arr.set_table_limit(0)
    want, clipped = direct_flipped_polarized(x, w, wb, cb, r, bits, signed, adc_bits)
    assert torch.equal(arr(x), want)
    assert arr.stats.clipped == clipped


@pytest.mark.parametrize("encoding", list(Encoding))
def test_flipped_cells_decode_to_the_weights(encoding: Encoding) -> None:
    """The flipped cells, place values and U coefficients still represent the integers exactly, and
    no flipped column sums above half its range."""
    gen = torch.Generator().manual_seed(7)
    w = polarized_weights(gen, (2, 20, 6), 6, 4)
    enc = encode(w, encoding, 6, 2, 8, 4, flipped=True)
    assert enc.flipped is not None and bool(enc.flipped.any())
    assert torch.equal(enc.decoded_matrix(), w)
    assert int(2 * enc.cells.sum(2).max()) <= enc.group_rows * enc.cell_max


@pytest.mark.parametrize("gemm", [False, True])
def test_flipped_and_compacted_risky_columns_match_direct_computation(gemm: bool) -> None:
    """R = 8, 2-bit weights (one slice), a 3-bit ADC (7): column 0 holds 3s (sums 24, stored flipped as
    0s, exact), column 1 alternates 3 and 0 (sums 12, not flipped, may clip: the one risky column),
    the others hold 0s and 1s (exact). The risky column runs compacted; flips and fragment signs stay
    exact on both sides of the split."""
    gen = torch.Generator().manual_seed(3)
    rows, r = 16, 8
    mag = torch.randint(0, 2, (1, rows, 6), generator=gen)
    mag[:, :, 0] = 3
    mag[:, :, 1] = torch.tensor([3, 0] * (rows // 2))
    sign = (torch.randint(0, 2, (1, rows // r, 6), generator=gen) * 2 - 1).repeat_interleave(r, 1)
    w = mag * sign
    x = codes(gen, (5, 1, rows), 6, True)
    crossbar = CrossbarSpec(rows=16, cols=16, cell_bits=2, fragment_size=r)
    arr = flipped_array(w, "polarized", 2, crossbar, 6, True, 1, adc_bits=3)
    if gemm:
        arr.set_table_limit(0)
    assert arr.encoded.flipped is not None and bool(arr.encoded.flipped[..., 0, :].all())
    assert arr.risky_count == 1 and not arr.dense
    want, clipped = direct_flipped_polarized(x, w, 2, 2, r, 6, True, 3)
    assert torch.equal(arr(x), want)
    assert arr.stats.clipped == clipped > 0
    assert arr.engine == ("gemm" if gemm else "table")
