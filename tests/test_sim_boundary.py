"""The simulator's library boundary, ADC arithmetic with a fractional step, and grouped-layer counts.

- Every engine (exact fast path, table engine, GEMM engine; all three encodings) and ``encode`` /
  ``integer_matmul`` refuse non-finite, non-integer, out-of-range or wrongly shaped weights and input
  codes with a ConfigError naming the problem, and fragment sizes that do not divide the crossbar.
- With a fractional ADC step the outputs equal an exact-rational computation from the encoded cells,
  and a conversion is counted as clipped exactly when the ADC clips it (also at a half-code boundary).
- A grouped layer's zero-skip conversion totals count each group once.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from forms.encoding import Encoding, lossless_adc_bits
from forms.errors import ConfigError
from forms.geometry import fragment_view
from forms.intweights import IntegerLayer
from forms.sim.adc import Adc
from forms.sim.crossbar import DEFAULT_TABLE_LIMIT, CrossbarArray
from forms.sim.encodings import EncodedLayer, encode
from forms.sim.integer_gemm import integer_matmul
from forms.sim.quant_inputs import InputQuantizer, code_range, digit_plan
from forms.sim.result import LayerZeroSkip
from forms.sim.simnet import SimulatedLayer
from forms.sim.spec import SimSpec
from forms.sim.table_engine import TableEngine

ENGINES = ("exact", "table", "gemm")
R = 4


def layer_weights(
    seed: int, encoding: Encoding, groups: int, rows: int, cols: int, weight_bits: int
) -> Tensor:
    """Random integer weights (single-signed fragments of R rows under the polarized encoding)."""
    gen = torch.Generator().manual_seed(seed)
    top = (1 << weight_bits) - 1
    w = torch.randint(-top, top + 1, (groups, rows, cols), generator=gen)
    if encoding is Encoding.POLARIZED:
        sign = torch.randint(0, 2, (groups, math.ceil(rows / R), cols), generator=gen) * 2 - 1
        w = w.abs() * sign.repeat_interleave(R, 1)[:, :rows]
    return w


def engine_array(engine: str, encoding: Encoding, w: Tensor, bits: int, signed: bool) -> CrossbarArray:
    """A lossless crossbar array of ``w`` (6-bit weights, 2-bit cells, 8-row crossbars) whose calls
    take ``engine``."""
    enc = encode(w, encoding, 6, 2, 8, R)
    adc = Adc(lossless_adc_bits(enc.group_rows, 2, 1))
    plan = digit_plan(bits, 1, signed)
    limit = 0 if engine == "gemm" else DEFAULT_TABLE_LIMIT
    return CrossbarArray(w, enc, adc, plan, R, force_bit_level=engine != "exact", table_limit=limit)


BAD_VALUES = ("nan", "inf", "-inf", "fraction", "below", "above")
MESSAGES = {
    "nan": "NaN or infinite",
    "inf": "NaN or infinite",
    "-inf": "NaN or infinite",
    "fraction": "must be integers",
    "below": "fall outside",
    "above": "fall outside",
}


def spoil(values: Tensor, kind: str, index: int, allowed: tuple[int, int], offset: int) -> Tensor:
    """``values`` (float64) with one entry made non-finite, fractional or out of ``allowed``."""
    out = values.to(torch.float64).clone()
    flat = out.view(-1)
    i = index % flat.numel()
    low, high = allowed
    flat[i] = {
        "nan": math.nan,
        "inf": math.inf,
        "-inf": -math.inf,
        "fraction": min(float(flat[i]), high - 1.0) + 0.5,
        "below": low - offset,
        "above": high + offset,
    }[kind]
    return out


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    engine=st.sampled_from(ENGINES),
    encoding=st.sampled_from(list(Encoding)),
    groups=st.integers(1, 2),
    rows=st.integers(1, 12),
    bits=st.integers(2, 9),
    signed=st.booleans(),
    kind=st.sampled_from(BAD_VALUES),
    index=st.integers(0, 1000),
    offset=st.sampled_from([1, 5, 1 << 20]),
)
def test_every_engine_refuses_bad_input_codes(
    seed, engine, encoding, groups, rows, bits, signed, kind, index, offset
) -> None:
    w = layer_weights(seed, encoding, groups, rows, 3, 6)
    arr = engine_array(engine, encoding, w, bits, signed)
    low, high = code_range(bits, signed)
    x = torch.randint(low, high + 1, (4, groups, rows), generator=torch.Generator().manual_seed(seed))
    assert torch.equal(arr(x.double()), integer_matmul(x, w))  # the good codes run
    assert arr.engine == engine
    bad = spoil(x, kind, index, (low, high), offset)
    with pytest.raises(ConfigError, match=MESSAGES[kind]):
        arr(bad)
    if kind in ("below", "above"):  # integer codes: the same min/max check
        with pytest.raises(ConfigError, match=MESSAGES[kind]):
            arr(bad.to(torch.int64))
    if engine == "table":
        table = arr.pattern_table()
        assert table is not None
        with pytest.raises(ConfigError, match=MESSAGES[kind]):
            TableEngine(table, arr.encoded, arr.plan).run(bad, 1 << 20, None)
    if engine == "gemm":
        with pytest.raises(ConfigError, match=MESSAGES[kind]):
            arr.gemm_engine().run(bad, 1 << 20, None)
    spoilt = float(bad.view(-1)[index % bad.numel()])
    if not math.isfinite(spoilt) or abs(spoilt) > arr.max_code or kind == "fraction":
        with pytest.raises(ConfigError, match=MESSAGES[kind]):  # its bound: |code| <= max_code
            integer_matmul(bad, w, arr.max_code)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("encoding", list(Encoding))
def test_every_engine_refuses_misshapen_codes(engine: str, encoding: Encoding) -> None:
    w = layer_weights(1, encoding, 1, 10, 3, 6)
    arr = engine_array(engine, encoding, w, 8, False)
    good = torch.ones(5, 1, 10)
    arr(good)
    for shape in ((5, 1, 11), (5, 1, 9), (5, 2, 10), (5, 10), (1, 5, 1, 10)):
        with pytest.raises(ConfigError, match="have shape"):
            arr(torch.ones(shape))
        if engine == "table":
            table = arr.pattern_table()
            assert table is not None
            with pytest.raises(ConfigError, match="have shape"):
                TableEngine(table, arr.encoded, arr.plan).run(torch.ones(shape), 1 << 20, None)
        if engine == "gemm":
            with pytest.raises(ConfigError, match="have shape"):
                arr.gemm_engine().run(torch.ones(shape), 1 << 20, None)
    with pytest.raises(ConfigError, match="have shape"):
        integer_matmul(torch.ones(5, 1, 11), w)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    encoding=st.sampled_from(list(Encoding)),
    weight_bits=st.integers(1, 8),
    kind=st.sampled_from(BAD_VALUES),
    index=st.integers(0, 1000),
    offset=st.sampled_from([1, 7, 1 << 40]),
)
def test_encode_and_arrays_refuse_bad_weights(seed, encoding, weight_bits, kind, index, offset) -> None:
    top = (1 << weight_bits) - 1
    w = layer_weights(seed, Encoding.OFFSET, 1, 8, 3, weight_bits).abs()  # one sign: polarized accepts it
    bad = spoil(w, kind, index, (-top, top), offset)
    cell_bits = 1
    with pytest.raises(ConfigError, match=MESSAGES[kind]):
        encode(bad, encoding, weight_bits, cell_bits, 8, R, name="conv7")
    enc = encode(w, encoding, weight_bits, cell_bits, 8, R)
    with pytest.raises(ConfigError, match=MESSAGES[kind]):
        CrossbarArray(bad, enc, Adc(4), digit_plan(4, 1, False), R)
    if kind not in ("below", "above"):  # integer_matmul takes any integer exact in float64
        with pytest.raises(ConfigError, match=MESSAGES[kind]):
            integer_matmul(torch.ones(2, 1, 8), bad)


def test_messages_name_the_layer_and_the_problem() -> None:
    w = torch.tensor([[[2.0], [float("nan")], [1.0], [3.0]]])
    # NaN used to become INT64_MIN, whose |.| overflowed past the range check ("mixed signs" under polarized)
    with pytest.raises(ConfigError, match=r"conv7: integer weights: 1 value\(s\) are NaN or infinite"):
        encode(w, "polarized", 4, 2, 4, 4, name="conv7")
    with pytest.raises(ConfigError, match=r"conv7: integer weights must be integers: .* e\.g\. 2\.7"):
        encode(torch.tensor([[[2.7], [1.0]]]), "offset", 4, 2, 4, 4, name="conv7")
    with pytest.raises(ConfigError, match=r"fall outside \[-15, 15\] \(\|w\| <= 2\^4 - 1"):
        encode(torch.tensor([[[16], [1]]]), "differential", 4, 2, 4, 4)
    with pytest.raises(ConfigError, match=r"\(groups, rows, cols\) have shape \(2, 1\)"):
        encode(torch.ones(2, 1), "offset", 4, 2, 4, 4)
    arr = engine_array("exact", Encoding.OFFSET, torch.ones(1, 6, 2, dtype=torch.int64), 8, False)
    with pytest.raises(ConfigError, match=r"layer: input codes fall outside \[0, 255\] \(8-bit unsigned"):
        arr(torch.full((1, 1, 6), 256.0))
    with pytest.raises(ConfigError, match=r"fall outside \[0, 255\].*found values from -5 to 1"):
        arr(torch.tensor([[[-5, 1, 1, 1, 1, 1]]]))


@pytest.mark.parametrize("encoding", list(Encoding))
@pytest.mark.parametrize(("crossbar_rows", "fragment_size"), [(128, 3), (128, 256), (128, 0), (0, 1)])
def test_fragment_sizes_must_divide_the_crossbar_rows(
    encoding: str, crossbar_rows: int, fragment_size: int
) -> None:
    with pytest.raises(ConfigError, match="crossbar"):
        encode(torch.ones(1, 8, 2, dtype=torch.int64), encoding, 4, 2, crossbar_rows, fragment_size)


def test_arrays_refuse_weights_or_fragments_that_do_not_fit_the_encoding() -> None:
    w = torch.ones(1, 8, 2, dtype=torch.int64)
    enc = encode(w, "polarized", 4, 2, 8, 4)
    adc, plan = Adc(4), digit_plan(4, 1, False)
    with pytest.raises(ConfigError, match="R=2 differs from the R=4"):
        CrossbarArray(w, enc, adc, plan, 2)
    with pytest.raises(
        ConfigError, match=r"of the encoded layer have shape \(1, 9, 2\); expected \(1, 8, 2\)"
    ):
        CrossbarArray(torch.ones(1, 9, 2, dtype=torch.int64), enc, adc, plan, 4)
    with pytest.raises(ConfigError, match=r"fall outside \[-15, 15\]"):
        CrossbarArray(w * 16, enc, adc, plan, 4)
    with pytest.raises(ConfigError, match="at least 1 row"):
        fragment_view(torch.ones(4, 2), 0)


def test_simulated_layer_refuses_non_finite_activations() -> None:
    fc = nn.Linear(6, 3)
    with torch.no_grad():
        fc.weight.copy_(torch.arange(18.0).view(3, 6) - 9)
    layer = integer_linear(fc)
    spec = SimSpec.from_dict({"rows": 8, "input_bits": 8})
    sim = SimulatedLayer(fc, layer, InputQuantizer(0.5, 8, True), spec)
    x = torch.randn(4, 6)
    sim(x)
    for bad in (math.nan, math.inf):
        x[2, 3] = bad
        with pytest.raises(ConfigError, match=r"fc: the activations entering this layer: 1 value\(s\)"):
            sim(x)
    with pytest.raises(ConfigError, match="fc: input codes must be integers"):
        sim.vectors(torch.full((2, 6), 0.5))
    with pytest.raises(ConfigError, match=r"fc: input codes fall outside \[-128, 127\]"):
        sim.vectors(torch.full((2, 6), 128.0))
    with pytest.raises(ConfigError, match="makes 16-bit codes but the crossbars stream input_bits=8"):
        SimulatedLayer(fc, layer, InputQuantizer(0.5, 16, True), spec)
    for mode in ("reference", "simulate"):  # both paths refuse NaN activations
        sim.mode = mode
        with pytest.raises(ConfigError, match="activations entering this layer"):
            sim(x)


def integer_linear(fc: nn.Linear) -> IntegerLayer:
    """The integer layer of a Linear whose weights already are integers (R = 1, 8-bit)."""
    w_int = fc.weight.detach().t().unsqueeze(0).to(torch.int64)
    return IntegerLayer("fc", w_int, torch.tensor(1.0), tuple(fc.weight.shape), 8, 1)


# ---- item 12: a fractional ADC step, exactly -------------------------------------------------------------


def exact_reference(enc: EncodedLayer, codes: Tensor, bits: int, signed: bool, adc: Adc) -> tuple[list, int]:
    """Outputs (as Fractions) and clip count from the encoded cells in exact rational arithmetic.

    Per step b (weight coef * 2^shift), group g, row group f, column c and converted column q:
    p = sum_r d_r cells[g, f, r, c, q] (an integer), code = clamp(round_half_even(p / step), 0, max),
    y += weight * (signed_place_value * code * step + flip_correction * U); plus the input-sum term.
    """
    num, den = Fraction(adc.step).as_integer_ratio()
    plan = digit_plan(bits, 1, signed)
    digits = fragment_view(plan.digits(codes).transpose(-1, -2), enc.group_rows)  # (steps, V, F, Rg, G)
    cells = enc.cells.to(torch.int64)  # (G, F, Rg, C, Q)
    place = enc.signed_place_value.to(torch.int64)  # (G, F, C, Q): +-2^k
    flip = enc.flip_correction.to(torch.int64) if enc.flip_correction is not None else None
    total = torch.zeros(codes.shape[0], enc.groups, enc.columns, dtype=torch.int64)  # in units of 1/den
    clipped = 0
    for b, weight in enumerate(plan.digit_weights().to(torch.int64).tolist()):
        d = digits[b].permute(3, 0, 1, 2)  # (G, V, F, Rg)
        p = torch.einsum("gvfr,gfrcq->gvfcq", d, cells) * den  # p / step = p * den / num
        q, r = torch.div(p, num, rounding_mode="floor"), torch.remainder(p, num)
        code = q + ((2 * r > num) | ((2 * r == num) & (q % 2 == 1))).to(torch.int64)
        clipped += int((code > adc.max_code).sum())
        code = code.clamp(0, adc.max_code)
        step_sum = (code * place.unsqueeze(1)).sum((2, 4)) * num  # (G, V, C), units of 1/den
        if flip is not None:
            step_sum += (d.sum(-1).unsqueeze(-1) * flip.unsqueeze(1)).sum(2) * den
        total += weight * step_sum.transpose(0, 1)
    total += int(enc.input_sum_coefficient) * codes.to(torch.int64).sum(-1, keepdim=True) * den
    return [Fraction(int(t), den) for t in total.flatten().tolist()], clipped


def check_exact(arr: CrossbarArray, x: Tensor, bits: int, signed: bool) -> None:
    want, clipped = exact_reference(arr.encoded, x, bits, signed, arr.adc)
    got = [Fraction(v) for v in arr(x).flatten().tolist()]  # float64 -> its exact value
    assert got == want
    assert arr.stats.clipped == clipped


def test_fractional_step_regression_offset_16_bit_weights() -> None:
    # weights near full scale, 14-bit inputs, one column: the shift-and-add bound with step 0.5 was
    # taken for whole-number ADC outputs, so float32 summed half-integers (off by up to 4095.5)
    gen = torch.Generator().manual_seed(0)
    for cell_bits, step in ((2, 0.5), (1, 0.25), (4, 0.5)):
        w = torch.randint(30000, 65536, (1, 128, 1), generator=gen)
        x = torch.randint(4000, 1 << 13, (6, 1, 128), generator=gen).double()
        x[0] = (1 << 13) - 1
        enc = encode(w, "offset", 16, cell_bits, 128, 8)
        arr = CrossbarArray(w, enc, Adc(8, step), digit_plan(14, 1, True), 8)
        check_exact(arr, x, 14, True)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    encoding=st.sampled_from(list(Encoding)),
    engine=st.sampled_from(["table", "gemm"]),
    groups=st.integers(1, 2),
    rows=st.integers(1, 20),
    cols=st.integers(1, 3),
    cell_bits=st.sampled_from([1, 2, 4]),
    weight_bits=st.sampled_from([4, 8, 12, 16]),
    bits=st.integers(2, 14),
    signed=st.booleans(),
    adc_bits=st.integers(2, 10),
    step=st.sampled_from([0.25, 0.5, 1.5, 2.0]),
    flipped=st.booleans(),
)
def test_fractional_step_equals_exact_rational_reference(
    seed, encoding, engine, groups, rows, cols, cell_bits, weight_bits, bits, signed, adc_bits, step, flipped
) -> None:
    w = layer_weights(seed, encoding, groups, rows, cols, weight_bits)
    gen = torch.Generator().manual_seed(seed + 1)
    low, high = code_range(bits, signed)
    x = torch.randint(low, high + 1, (5, groups, rows), generator=gen).double()
    x[0] = high
    enc = encode(w, encoding, weight_bits, cell_bits, 8, R, flipped)
    limit = 0 if engine == "gemm" else DEFAULT_TABLE_LIMIT
    arr = CrossbarArray(w, enc, Adc(adc_bits, step), digit_plan(bits, 1, signed), R, table_limit=limit)
    check_exact(arr, x, bits, signed)


@settings(max_examples=200, deadline=None)
@given(
    bits=st.integers(1, 6),
    step=st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0]),
    halves=st.lists(st.integers(-4, 300), min_size=1, max_size=20),
    integral=st.booleans(),
)
def test_a_conversion_is_counted_as_clipped_iff_it_is_clipped(bits, step, halves, integral) -> None:
    adc = Adc(bits, step)
    boundary = 2 * adc.max_code + 1  # (max_code + 0.5) * step, in half steps
    values = [Fraction(boundary + h - 8, 2) * Fraction(step) for h in halves]
    if integral and step == 1.0:
        values = [v.__floor__() for v in values]  # integral partial sums are integers on the code grid
    else:
        integral = False
    partial = torch.tensor([float(v) for v in values], dtype=torch.float64)
    clipped = adc.convert_(partial, integral)
    for value, out, flag in zip(values, partial.tolist(), clipped.tolist(), strict=True):
        code = round(Fraction(value) / Fraction(step))  # half to even
        assert out == float(min(max(code, 0), adc.max_code) * Fraction(step))
        assert flag == (code > adc.max_code)  # counted exactly when the clamp cut the code
    at_boundary = torch.tensor([(adc.max_code + 0.5) * step], dtype=torch.float64)
    assert adc.convert_(at_boundary, integral=False).tolist() == [True]  # rounds up to an even code: clipped


@pytest.mark.parametrize("engine", ["table", "gemm"])
def test_engines_count_a_sum_at_the_half_code_boundary(engine: str) -> None:
    # cells 3, 3, 1 summed by three 1-digits: p = 7 = (3 + 0.5) * 2 for a 2-bit ADC of step 2; 3.5
    # rounds half to even up to code 4, which clips to 3: the output is 6 and one clip is counted
    w = torch.tensor([[[3], [3], [1], [0]]])
    enc = encode(w, "polarized", 2, 2, 4, 4)
    limit = 0 if engine == "gemm" else DEFAULT_TABLE_LIMIT
    arr = CrossbarArray(w, enc, Adc(2, 2.0), digit_plan(1, 1, False), 4, table_limit=limit)
    y = arr(torch.tensor([[[1.0, 1.0, 1.0, 0.0]], [[1.0, 1.0, 0.0, 1.0]]]))
    assert arr.engine == engine
    assert y.flatten().tolist() == [6.0, 6.0]  # 6 = 3 * 2 both times; only the first clipped (7 -> 3.5)
    assert arr.stats.clipped == 1


# ---- grouped layers: conversions counted once per group ----------------------------------------------------


@pytest.mark.parametrize("encoding", list(Encoding))
def test_grouped_layer_counts_each_group_once(encoding: Encoding) -> None:
    w = layer_weights(3, encoding, 2, 10, 3, 6)
    x = torch.randint(0, 256, (7, 2, 10), generator=torch.Generator().manual_seed(4)).double()
    x[x < 100] = 0
    both = engine_array("exact", encoding, w, 8, False)
    both(x)
    alone = [engine_array("exact", encoding, w[g : g + 1], 8, False) for g in range(2)]
    for g, arr in enumerate(alone):
        arr(x[:, g : g + 1])
    whole, first, second = (
        LayerZeroSkip.from_counts(arr.stats.zero_skip, arr.stats.columns, arr.plan.steps, R)
        for arr in (both, *alone)
    )
    assert whole.columns == 3 * both.encoded.physical_columns  # one group's columns
    for key in ("conversions_total", "conversions_skipped_leading", "conversions_skipped_bitplane"):
        assert getattr(whole, key) == getattr(first, key) + getattr(second, key)
    if encoding is Encoding.POLARIZED:  # sub-arrays are the row groups: every conversion, counted once
        assert whole.conversions_total == both.stats.conversions
