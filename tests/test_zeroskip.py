"""Zero-skip counts against hand counts and a brute-force count over sub-arrays."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import forms
from _simhelpers import Block, projection_spec
from forms.encoding import Encoding, lossless_adc_bits
from forms.errors import ConfigError
from forms.sim import zeroskip
from forms.sim.adc import Adc
from forms.sim.crossbar import CrossbarArray
from forms.sim.encodings import encode
from forms.sim.integer_gemm import integer_matmul
from forms.sim.quant_inputs import DigitPlan, calibrate_inputs, digit_plan
from forms.sim.result import LayerZeroSkip, SimulationResult
from forms.sim.simnet import build_simulated_model, simulated_layers
from forms.sim.simulate import simulate_model
from forms.sim.spec import SimSpec
from forms.sim.zeroskip import ZeroSkipCounts, count_subarray_steps


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


def sparse_codes(
    seed: int, rows: int, bits: int, dac: int, signed: bool, sparsity: float
) -> tuple[torch.Tensor, DigitPlan]:
    """5 vectors x 2 groups x ``rows`` random ``bits``-bit codes (at least 2 bits signed), a ``sparsity``
    fraction of them zero, and their digit plan for a ``dac``-bit DAC."""
    bits = max(bits, 2) if signed else bits
    gen = torch.Generator().manual_seed(seed)
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    x = torch.randint(lo, hi, (5, 2, rows), generator=gen)
    x[torch.rand(x.shape, generator=gen) < sparsity] = 0
    return x, digit_plan(bits, dac, signed)


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
    x, plan = sparse_codes(seed, rows, bits, dac, signed, sparsity)
    codes = x.to(torch.int32) if as_int else x.to(torch.float64)
    c = count_subarray_steps(codes, plan, r, chunk_elements=1 + rows * 3)  # chunks of a few vectors
    assert (c.rounds_total, c.rounds_needed_leading, c.rounds_needed_bitplane) == reference_counts(x, plan, r)


def reference_activity(x: torch.Tensor, plan: DigitPlan, tile: int, per_tile: int) -> tuple[int, ...]:
    """Per-tile, per-step reads and per-(row, step) digits counted one by one from the digit masks."""
    masks = [((1 << w) - 1) << s for s, w in zip(plan.shifts, plan.widths, strict=True)]
    reads = leading = bitplane = digits = nonzero = 0
    for vec in x.to(torch.int64).tolist():
        for row in vec:
            digits += len(row) * plan.steps
            nonzero += sum(bool(v & m) for v in row for m in masks)
            for t0 in range(0, len(row), tile):
                needed = [any(v & m for v in row[t0 : t0 + tile]) for m in masks]
                reads += plan.steps * per_tile
                bitplane += sum(needed) * per_tile
                leading += max((s + 1 for s, n in enumerate(needed) if n), default=0) * per_tile
    return reads, leading, bitplane, digits, nonzero


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 1000),
    rows=st.integers(1, 70),
    r=st.sampled_from([1, 2, 4, 8, 16]),
    per_tile_fragments=st.integers(1, 5),
    crossbars=st.integers(1, 3),
    bits=st.integers(1, 20),
    dac=st.integers(1, 3),
    signed=st.booleans(),
    sparsity=st.floats(0.0, 0.99),
)
def test_reads_and_digits_match_reference(
    seed: int,
    rows: int,
    r: int,
    per_tile_fragments: int,
    crossbars: int,
    bits: int,
    dac: int,
    signed: bool,
    sparsity: float,
) -> None:
    """Crossbar reads (tile OR of the sub-array ORs) and non-zero digits (SWAR popcount over packed
    lanes) equal a plain count, for 8-, 16- and 32-bit lanes, multi-bit DACs and signed codes."""
    x, plan = sparse_codes(seed, rows, bits, dac, signed, sparsity)
    tile = r * per_tile_fragments
    c = count_subarray_steps(
        x.to(torch.int32), plan, r, chunk_elements=1 + rows * 3, tile_rows=tile, crossbars_per_tile=crossbars
    )
    got = (c.reads_total, c.reads_needed_leading, c.reads_needed_bitplane, c.digits_total, c.digits_nonzero)
    assert got == reference_activity(x, plan, tile, crossbars)
    assert (c.rounds_total, c.rounds_needed_leading, c.rounds_needed_bitplane) == reference_counts(x, plan, r)


def test_a_crossbar_saves_a_read_only_when_every_fragment_is_idle() -> None:
    """Hand count: 4-bit unsigned inputs, R = 2, crossbars of 4 rows (2 fragments), 3 crossbars per
    row tile (column tiles x sets).

    Crossbar A = [1, 0 | 2, 0]: at bits 2 and 3 every row's digit is zero, so both rules skip those two
    reads. Crossbar B = [15, 0 | 0, 0]: its second fragment is idle at every bit (4 conversion rounds
    skipped) but the first needs every bit, so B skips no read under either rule.
    """
    plan = digit_plan(4, 1, False)
    codes = torch.tensor([[[1, 0, 2, 0, 15, 0, 0, 0]]])
    c = count_subarray_steps(codes, plan, 2, tile_rows=4, crossbars_per_tile=3)
    assert c.reads_total == 2 * 4 * 3
    assert c.reads_needed_leading == c.reads_needed_bitplane == (2 + 4) * 3
    # sub-arrays: [1,0] needs bit 0 (leading 1, bitplane 1); [2,0] bit 1 (2, 1); [15,0] (4, 4); [0,0] none
    assert (c.rounds_total, c.rounds_needed_leading, c.rounds_needed_bitplane) == (16, 7, 6)
    # digits: 8 rows x 4 bits; non-zero: 1 and 2 have one set bit, 15 four
    assert (c.digits_total, c.digits_nonzero) == (32, 6)


def _simulated(net: nn.Module, layers: list, spec: SimSpec, images: torch.Tensor) -> nn.Module:
    names = [layer.name for layer in layers]
    quantizers = calibrate_inputs(
        net, names, [images], spec.input_bits, significant_bits=spec.input_significant_bits
    )
    return build_simulated_model(net, layers, quantizers, spec)


def _layer_counts(model: nn.Module) -> dict[str, tuple[ZeroSkipCounts, bool]]:
    return {
        layer.name: (layer.array.stats.zero_skip, layer.quantizer.signed) for layer in simulated_layers(model)
    }


@pytest.mark.parametrize("adc_bits", [None, 3])
def test_eight_significant_bits_on_a_sixteen_bit_datapath(adc_bits: int | None) -> None:
    """Activations quantized to 8 bits and streamed 16 wide give the 8-bit run's codes and outputs
    (lossless or clipping ADC); on unsigned layers the leading rule skips at least the upper 8 steps,
    exactly the steps the 8-bit run does not stream."""
    torch.manual_seed(0)
    net = Block().eval()
    layers = forms.project(net, projection_spec(weight_bits=6, fragment_size=4))
    images = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    base = {"rows": 32, "cols": 32, "adc_bits": adc_bits}
    narrow = _simulated(net, layers, SimSpec.from_dict({**base, "input_bits": 8}), images)
    wide = _simulated(
        net, layers, SimSpec.from_dict({**base, "input_bits": 16, "input_significant_bits": 8}), images
    )
    with torch.no_grad():
        assert torch.equal(narrow(images), wide(images))
    for name, (counts16, signed) in _layer_counts(wide).items():
        counts8, _ = _layer_counts(narrow)[name]
        assert counts16.rounds_total == 2 * counts8.rounds_total
        assert counts16.digits_total == 2 * counts8.digits_total
        if not signed:
            assert counts16.rounds_needed_leading == counts8.rounds_needed_leading
            assert counts16.rounds_needed_bitplane == counts8.rounds_needed_bitplane
            assert counts16.reads_needed_leading == counts8.reads_needed_leading
            assert counts16.digits_nonzero == counts8.digits_nonzero
            assert counts16.rounds_total - counts16.rounds_needed_leading >= counts16.rounds_total // 2


def test_significant_bits_cannot_exceed_the_datapath() -> None:
    with pytest.raises(ConfigError, match="input_significant_bits=9 exceeds input_bits=8"):
        SimSpec.from_dict({"input_bits": 8, "input_significant_bits": 9})


def test_layer_record_of_counts_and_records_without_reads() -> None:
    """Skipped = total - needed for reads as for conversions; records written before reads and digits
    were measured still load (None) and write back without them."""
    counts = ZeroSkipCounts(16, 7, 6, 24, 18, 18, 32, 6)
    z = LayerZeroSkip.from_counts(counts, columns=5, steps=4, fragment_size=2)
    assert (z.conversions_total, z.conversions_skipped_leading, z.conversions_skipped_bitplane) == (
        80,
        45,
        50,
    )
    assert (z.reads_total, z.reads_skipped_leading, z.reads_skipped_bitplane) == (24, 6, 6)
    assert (z.input_digits_total, z.input_digits_nonzero) == (32, 6)
    assert LayerZeroSkip.from_dict(z.to_dict()) == z
    old = {k: v for k, v in z.to_dict().items() if not k.startswith(("reads", "input_digits"))}
    assert LayerZeroSkip.from_dict(old).reads_total is None
    assert LayerZeroSkip.from_dict(old).to_dict() == old


def test_simulation_records_reads_and_digits_per_layer_and_in_total() -> None:
    torch.manual_seed(0)
    net = Block().eval()
    layers = forms.project(net, projection_spec(weight_bits=6, fragment_size=4))
    images = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.zeros(6, dtype=torch.int64)
    spec = SimSpec.from_dict({"rows": 16, "cols": 16, "input_bits": 8})
    result = simulate_model(spec, net, layers, images, labels, images, device="cpu")
    totals = result.zero_skip_totals
    for z in result.zero_skip.values():
        assert z.reads_total is not None and z.input_digits_total is not None
        assert 0 <= z.reads_skipped_leading <= z.reads_skipped_bitplane <= z.reads_total  # type: ignore[operator]
        assert 0 <= z.input_digits_nonzero <= z.input_digits_total  # type: ignore[operator]
    assert totals["reads_total"] == sum(z.reads_total or 0 for z in result.zero_skip.values())
    assert SimulationResult.from_dict(result.to_dict()).to_dict() == result.to_dict()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 1000), n=st.integers(0, 300))
def test_both_popcounts_count_every_set_bit(seed: int, n: int) -> None:
    """The CPU popcount (numpy) and the byte-histogram one (other devices) agree with Python's."""
    gen = torch.Generator().manual_seed(seed)
    words = torch.randint(-(1 << 62), 1 << 62, (n,), generator=gen) * torch.randint(1, 4, (n,), generator=gen)
    want = sum(bin(w & ((1 << 64) - 1)).count("1") for w in words.tolist())
    assert zeroskip._popcount(words) == zeroskip._popcount_bytes(words) == want


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 1000),
    rows=st.integers(1, 90),
    r=st.sampled_from([1, 2, 3, 4, 8, 16, 32]),
    per_tile_fragments=st.integers(1, 4),
    bits=st.integers(1, 40),
    dac=st.integers(1, 4),
    signed=st.booleans(),
    sparsity=st.floats(0.0, 0.99),
)
def test_smeared_flag_counts_match_reference_on_every_lane_width(
    seed: int, rows: int, r: int, per_tile_fragments: int, bits: int, dac: int, signed: bool, sparsity: float
) -> None:
    """Every count from popcounts of digit flags and of flags smeared down (8-, 16-, 32- and 64-bit
    lanes: codes of 1..40 bits) equals the plain per-step count, the float codes' counts the int
    codes'."""
    x, plan = sparse_codes(seed, rows, bits, dac, signed, sparsity)
    tile = r * per_tile_fragments
    counts = [
        count_subarray_steps(
            codes, plan, r, chunk_elements=1 + rows * 2, tile_rows=tile, crossbars_per_tile=2
        )
        for codes in (x, x.to(torch.float64))
    ]
    assert counts[0] == counts[1]
    c = counts[0]
    assert (c.rounds_total, c.rounds_needed_leading, c.rounds_needed_bitplane) == reference_counts(x, plan, r)
    got = (c.reads_total, c.reads_needed_leading, c.reads_needed_bitplane, c.digits_total, c.digits_nonzero)
    assert got == reference_activity(x, plan, tile, 2)


def test_scratch_buffers_left_by_other_calls_change_no_count() -> None:
    """The per-thread scratch buffers reused between calls (and a fresh thread's own) give every call
    the counts it gives alone: a wider, larger call in between leaves nothing behind."""
    small, plan = sparse_codes(3, 40, 8, 1, False, 0.5)
    large, wide_plan = sparse_codes(4, 400, 12, 2, True, 0.3)
    first = count_subarray_steps(small, plan, 8, tile_rows=16)
    count_subarray_steps(large.repeat(50, 1, 1), wide_plan, 16, tile_rows=64)
    assert count_subarray_steps(small, plan, 8, tile_rows=16) == first
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(lambda: count_subarray_steps(small, plan, 8, tile_rows=16)).result() == first
    assert (
        first.rounds_total,
        first.rounds_needed_leading,
        first.rounds_needed_bitplane,
    ) == reference_counts(small, plan, 8)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 1000),
    rows=st.integers(1, 70),
    r=st.sampled_from([1, 4, 8, 16]),
    bits=st.integers(1, 20),
    dac=st.integers(1, 3),
    signed=st.booleans(),
)
def test_narrowed_codes_hold_the_low_bits_and_count_as_the_codes(
    seed: int, rows: int, r: int, bits: int, dac: int, signed: bool
) -> None:
    """The narrow lanes a crossbar counts from (and its GEMM engine reads digits from) hold every code's
    low bits, at the range's ends too, and count as the codes do, narrowed apart or while counting."""
    x, plan = sparse_codes(seed, rows, bits, dac, signed, 0.4)
    low, high = (-(1 << (plan.bits - 1)), (1 << (plan.bits - 1)) - 1) if signed else (0, (1 << plan.bits) - 1)
    x[0, 0, 0], x[-1, -1, -1] = low, high
    codes = x.to(torch.int32)
    lanes = zeroskip.narrow_codes(codes, plan).clone()
    assert lanes.element_size() <= codes.element_size()
    low_bits = (1 << plan.bits) - 1
    assert torch.equal(lanes.to(torch.int64) & low_bits, x.to(torch.int64) & low_bits)
    tile = 2 * r
    assert count_subarray_steps(lanes, plan, r, tile_rows=tile) == count_subarray_steps(
        codes, plan, r, tile_rows=tile
    )
    w = torch.zeros(2, rows, 3, dtype=torch.int64)
    enc = encode(w, Encoding.OFFSET, 6, 2, tile, r)
    fused, counts = zeroskip.narrow_and_count(codes, plan, enc)
    assert torch.equal(fused, lanes)
    assert counts == zeroskip.count_layer_activity(codes, plan, enc)


@pytest.mark.parametrize(
    ("bits", "signed"), [(3, True), (8, False), (8, True), (15, False), (16, False), (16, True)]
)
def test_statistics_change_no_output_of_the_exact_path(bits: int, signed: bool) -> None:
    """With statistics the exact path converts the codes for its GEMM while it counts them
    (:func:`zeroskip.convert_and_count`): the same integer product as without them, at the range's ends."""
    x, plan = sparse_codes(7, 40, bits, 1, signed, 0.3)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    x[0, :, :3] = high
    x[1, :, :3] = low
    w = torch.randint(-31, 32, (2, 40, 6), generator=torch.Generator().manual_seed(3))
    enc = encode(w, Encoding.OFFSET, 6, 2, 16, 16)
    arr = CrossbarArray(w, enc, Adc(lossless_adc_bits(16, 2, 1, False)), plan, 16)
    with_stats, without = arr(x), arr(x, collect=False)
    assert arr.lossless and torch.equal(with_stats, without)
    assert torch.equal(with_stats, integer_matmul(x, w))
    assert arr.stats.zero_skip == zeroskip.count_layer_activity(x, plan, arr.encoded)


def test_table_engine_counts_every_vector_once_whatever_its_chunks() -> None:
    """The table engine counts zero-skips over all its codes at once: the same record for chunks of a
    few vectors as for one chunk, and as the exact path's."""
    x, plan = sparse_codes(11, 48, 8, 1, False, 0.5)
    x = x.repeat(8, 1, 1)
    sign = torch.randint(0, 2, (2, 6, 5), generator=torch.Generator().manual_seed(4)) * 2 - 1
    w = torch.randint(0, 32, (2, 48, 5), generator=torch.Generator().manual_seed(5))
    w = w * sign.repeat_interleave(8, 1)
    enc = encode(w, Encoding.POLARIZED, 6, 2, 16, 8)
    records = []
    for chunk_elements, force in ((1 << 10, True), (1 << 24, True), (1 << 24, False)):
        adc = Adc(lossless_adc_bits(8, 2, 1, False))
        arr = CrossbarArray(w, enc, adc, plan, 8, chunk_elements=chunk_elements, force_bit_level=force)
        assert torch.equal(arr(x), integer_matmul(x, w))
        assert arr.engine == ("table" if force else "exact")
        records.append(arr.stats.zero_skip)
    assert records[0] == records[1] == records[2]
