"""The fast bit-level path (per-pattern tables) and its pieces against direct computations.

- digit patterns from the bit-matrix transpose / spread tables equal patterns built per step and row;
- the table engine equals the GEMM bit-level engine (both per (step, row group, column, slice) with
  the same ADC) on outputs and clip counts, for every encoding whose row groups fit a table;
- zero-skip counts from the OR lookup equal a per-step count, for any R (not only powers of two).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forms.encoding import lossless_adc_bits
from forms.sim.adc import Adc
from forms.sim.bitplanes import fragment_int_view, fragment_patterns, int_codes
from forms.sim.crossbar import CrossbarArray
from forms.sim.encodings import encode
from forms.sim.integer_gemm import integer_matmul
from forms.sim.quant_inputs import digit_plan
from forms.sim.spec import DeviceSpec
from forms.sim.workspace import Workspace
from forms.sim.zeroskip import count_subarray_steps


def direct_patterns(x: torch.Tensor, bits: int, dac: int, signed: bool, rg: int) -> torch.Tensor:
    """pattern[v, g, f, b] = sum_r digit_b(x_r) << (slot * r), straight from the digit plan.

    A row's slot is the widest digit of the plan (dac_bits, or fewer when the codes are narrower)."""
    plan = digit_plan(bits, dac, signed)
    slot = max(plan.widths)
    digits = plan.digits(x)  # (steps, V, G, rows)
    v, g, rows = x.shape
    frags = math.ceil(rows / rg)
    out = torch.zeros(v, g, frags, plan.steps, dtype=torch.int64)
    for r in range(rows):
        out[:, :, r // rg, :] += (digits[:, :, :, r] << (slot * (r % rg))).permute(1, 2, 0)
    return out


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(1, 40),
    rg=st.sampled_from([1, 2, 3, 4, 5, 8, 11, 16]),
    bits=st.integers(2, 24),
    dac=st.sampled_from([1, 2]),
    signed=st.booleans(),
)
def test_patterns_equal_per_step_digits(seed, rows, rg, bits, dac, signed) -> None:
    if dac * rg > 16:
        rg = 16 // dac
    gen = torch.Generator().manual_seed(seed)
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    x = torch.randint(lo, hi, (3, 2, rows), generator=gen).to(torch.float64)
    plan = digit_plan(bits, dac, signed)
    got = fragment_patterns(fragment_int_view(int_codes(x, plan), rg), plan)
    assert torch.equal(got.to(torch.int64), direct_patterns(x, bits, dac, signed, rg))
    ws = Workspace()  # buffers left by a larger call of other codes change nothing
    fragment_patterns(fragment_int_view(int_codes(-x.flip(0).repeat(3, 1, 2), plan), rg), plan, ws)
    again = fragment_patterns(fragment_int_view(int_codes(x, plan), rg), plan, ws)
    assert torch.equal(again, got)


def arrays(
    w, encoding, weight_bits, cell_bits, xbar_rows, r, bits, signed, dac, adc_bits, devices=None, flip=False
):
    """The same layer on the table engine and on the GEMM engine (tables disabled), all bit-level."""
    enc = encode(w, encoding, weight_bits, cell_bits, xbar_rows, r, flip)
    adc = Adc(adc_bits)
    plan = digit_plan(bits, dac, signed)
    table = CrossbarArray(w, enc, adc, plan, r, devices, force_bit_level=True)
    gemm = CrossbarArray(w, enc, adc, plan, r, devices, force_bit_level=True, table_limit=0)
    return table, gemm


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    encoding=st.sampled_from(["polarized", "offset", "differential"]),
    groups=st.integers(1, 2),
    rows=st.integers(1, 30),
    cols=st.integers(1, 6),
    r=st.sampled_from([2, 4, 8]),
    cell_bits=st.sampled_from([1, 2, 4]),
    bits=st.integers(2, 16),
    dac=st.sampled_from([1, 2]),
    signed=st.booleans(),
    adc_drop=st.integers(0, 4),
    flipped=st.booleans(),
)
def test_table_engine_equals_gemm_engine(
    seed, encoding, groups, rows, cols, r, cell_bits, bits, dac, signed, adc_drop, flipped
) -> None:
    gen = torch.Generator().manual_seed(seed)
    wb = 6
    top = (1 << wb) - 1
    w = torch.randint(-top, top + 1, (groups, rows, cols), generator=gen)
    if encoding == "polarized":
        sign = torch.randint(0, 2, (groups, math.ceil(rows / r), cols), generator=gen) * 2 - 1
        w = w.abs() * sign.repeat_interleave(r, 1)[:, :rows]
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    x = torch.randint(lo, hi, (7, groups, rows), generator=gen).to(torch.float64)
    x[x.abs() % 3 == 0] = 0
    xbar = r  # offset/differential convert whole r-row columns, so they fit a table too
    flip = flipped and encoding == "offset"
    adc_bits = max(1, lossless_adc_bits(r, cell_bits, dac, flip) - adc_drop)
    table, gemm = arrays(w, encoding, wb, cell_bits, xbar, r, bits, signed, dac, adc_bits, flip=flip)
    assert table.pattern_table() is not None and gemm.pattern_table() is None
    y_table, y_gemm = table(x), gemm(x)
    assert torch.equal(y_table, y_gemm)
    assert table.stats.clipped == gemm.stats.clipped
    assert table.stats.zero_skip == gemm.stats.zero_skip
    assert (table.engine, gemm.engine) == ("table", "gemm")


def test_table_engine_with_faults_and_variation_equals_gemm_engine() -> None:
    gen = torch.Generator().manual_seed(5)
    w = torch.randint(0, 64, (1, 24, 6), generator=gen)
    x = torch.randint(0, 256, (20, 1, 24), generator=gen).double()
    for devices in (DeviceSpec(stuck_at_0=0.1, stuck_at_1=0.1), DeviceSpec(variation=0.1, on_off_ratio=10.0)):
        table, gemm = arrays(w, "polarized", 6, 2, 16, 8, 8, False, 1, 4, devices)
        table.program(3)
        gemm.program(3)
        assert table.pattern_table() is not None
        y_table, y_gemm = table(x), gemm(x)
        if devices.variation:
            # float32 GEMM partial sums of non-integer levels can round differently at .5: nearly equal
            assert float((y_table - y_gemm).abs().max()) <= 0.02 * float(y_gemm.abs().max())
        else:
            assert torch.equal(y_table, y_gemm)
            assert table.stats.clipped == gemm.stats.clipped


def step_count(x: torch.Tensor, bits: int, dac: int, signed: bool, r: int) -> tuple[int, int, int]:
    """Per-step zero-skip count from the digits (no OR trick)."""
    plan = digit_plan(bits, dac, signed)
    d = plan.digits(x)  # (steps, V, G, rows)
    frags = math.ceil(x.shape[-1] / r)
    d = torch.nn.functional.pad(d, (0, frags * r - x.shape[-1])).reshape(*d.shape[:-1], frags, r)
    needed = (d != 0).any(-1)  # (steps, V, G, F)
    idx = torch.arange(1, plan.steps + 1).view(-1, 1, 1, 1)
    return needed[0].numel() * plan.steps, int((needed * idx).amax(0).sum()), int(needed.sum())


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 1000),
    rows=st.integers(1, 30),
    r=st.integers(1, 13),
    bits=st.sampled_from([2, 5, 8, 16, 17, 20]),
    dac=st.sampled_from([1, 2, 3]),
    signed=st.booleans(),
)
def test_zero_skip_lookup_equals_per_step_count(seed, rows, r, bits, dac, signed) -> None:
    gen = torch.Generator().manual_seed(seed)
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    x = torch.randint(lo, hi, (4, 2, rows), generator=gen).to(torch.float64)
    x[torch.rand(x.shape, generator=gen) < 0.6] = 0
    c = count_subarray_steps(x, digit_plan(bits, dac, signed), r)
    assert (c.rounds_total, c.rounds_needed_leading, c.rounds_needed_bitplane) == step_count(
        x, bits, dac, signed, r
    )


def test_gathered_partial_sums_equal_gemm_partial_sums() -> None:
    # an ADC step of 1.5 makes ADC outputs non-integers: the table engine steps aside and the GEMM
    # engine runs; its partial sums looked up per pattern equal the GEMMs' exactly.
    gen = torch.Generator().manual_seed(9)
    for encoding, flip in (("polarized", False), ("offset", True), ("differential", False)):
        w = torch.randint(-31, 32, (2, 21, 5), generator=gen)
        if encoding == "polarized":
            w = w.abs() * torch.where(torch.arange(21) % 16 < 8, 1, -1).view(1, 21, 1)
        x = torch.randint(-128, 128, (9, 2, 21), generator=gen).double()
        enc = encode(w, encoding, 5, 2, 8, 8, flip)
        plan = digit_plan(8, 1, True)
        looked = CrossbarArray(w, enc, Adc(3, 1.5), plan, 8, force_bit_level=True)
        gemm = CrossbarArray(w, enc, Adc(3, 1.5), plan, 8, force_bit_level=True, table_limit=0)
        assert looked.pattern_table() is None and looked.partial_tables() is not None
        assert torch.equal(looked(x), gemm(x))
        assert looked.stats.clipped == gemm.stats.clipped > 0


def test_read_noise_from_gathered_sigmas_matches_gemm_engine() -> None:
    # the same seeds draw the same Gaussians: outputs agree up to float32 rounding of the sigmas
    w = torch.randint(0, 64, (1, 24, 6), generator=torch.Generator().manual_seed(2))
    x = torch.randint(0, 256, (30, 1, 24), generator=torch.Generator().manual_seed(3)).double()
    devices = DeviceSpec(read_noise=0.2, variation=0.05)
    looked, gemm = arrays(w, "polarized", 6, 2, 16, 8, 8, False, 1, 5, devices)
    gemm.set_table_limit(0)
    for arr in (looked, gemm):
        arr.program(4)
    assert looked.pattern_table() is None and looked.partial_tables() is not None
    y1, y2 = looked(x), gemm(x)
    assert float((y1 - y2).abs().max()) <= 1e-3 * float(y2.abs().max())
    assert not torch.equal(looked(x), y1)  # a fresh draw per read


@pytest.mark.parametrize("bits", [8, 12])
def test_table_split_by_row_groups_equals_gemm_engine(bits: int) -> None:
    # 8-bit weights over many fragments: one bag per vector would pass 2^24, so the table sums ranges of
    # fragments (every step at once) or of steps in separate float32 bags; outputs stay exact
    gen = torch.Generator().manual_seed(bits)
    rows, r = 800, 8
    sign = torch.randint(0, 2, (1, rows // r, 6), generator=gen) * 2 - 1
    w = torch.randint(100, 128, (1, rows, 6), generator=gen) * sign.repeat_interleave(r, 1)
    x = torch.randint(0, 1 << bits, (9, 1, rows), generator=gen).to(torch.float64)
    table, gemm = arrays(w, "polarized", 8, 2, 128, r, bits, False, 1, 5)
    assert torch.equal(table(x), gemm(x)) and torch.equal(table(x), integer_matmul(x, w))
    layer_table = table.pattern_table()
    assert layer_table is not None
    groups = layer_table.table.step_groups
    by_row_groups = any(grp.first_row_group > 0 for grp in groups)
    assert len(groups) > 1 and by_row_groups == (bits == 8)  # 12 bits: step ranges need fewer groups


def test_table_engine_results_do_not_depend_on_threads_or_chunks() -> None:
    """A narrow ADC on polarized R = 8 (some conversions clip): outputs, clips and zero-skips are the
    same at 1 and 2 threads and for chunks of a few vectors or of all of them."""
    gen = torch.Generator().manual_seed(21)
    w = torch.randint(0, 64, (1, 64, 12), generator=gen)
    w = w * (torch.randint(0, 2, (1, 8, 12), generator=gen) * 2 - 1).repeat_interleave(8, 1)
    x = torch.randint(0, 256, (300, 1, 64), generator=gen).double()
    x[x % 3 == 0] = 0
    enc = encode(w, "polarized", 6, 2, 16, 8)
    runs = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            for chunk_elements in (1 << 10, 1 << 22):
                arr = CrossbarArray(
                    w,
                    enc,
                    Adc(4),
                    digit_plan(8, 1, False),
                    8,
                    chunk_elements=chunk_elements,
                    force_bit_level=True,
                )
                runs.append((arr(x), arr.stats.clipped, arr.stats.zero_skip, arr.engine))
    finally:
        torch.set_num_threads(threads)
    assert runs[0][1] > 0 and runs[0][3] == "table"
    for run in runs[1:]:
        assert torch.equal(run[0], runs[0][0]) and run[1:] == runs[0][1:]
