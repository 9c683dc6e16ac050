"""The signed-slice GEMM (:mod:`forms.sim.slice_lanes`) of chips whose conversions are all the identity.

It must equal, bit for bit, both the integer product and the GEMM engine converting every
(step, row group, set, slice) partial sum on its own; and it must not apply wherever a conversion can
clip or round (a narrow ADC, read noise).
"""

from __future__ import annotations

import dataclasses

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forms.sim.adc import Adc
from forms.sim.crossbar import CrossbarArray
from forms.sim.integer_gemm import integer_matmul
from forms.sim.spec import DeviceSpec
from test_crossbar import make_array, random_case, random_codes


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    encoding=st.sampled_from(["polarized", "offset", "differential"]),
    groups=st.integers(1, 2),
    rows=st.integers(1, 70),
    cols=st.integers(1, 6),
    xbar_rows=st.sampled_from([8, 16, 32]),
    cell_bits=st.sampled_from([1, 2, 4]),
    weight_bits=st.integers(4, 9),
    bits=st.integers(2, 12),
    signed=st.booleans(),
    dac=st.sampled_from([1, 2, 3]),
    flipped=st.booleans(),
)
def test_signed_slices_equal_every_conversion_and_the_integer_product(
    seed, encoding, groups, rows, cols, xbar_rows, cell_bits, weight_bits, bits, signed, dac, flipped
) -> None:
    r = xbar_rows // 2 if encoding == "polarized" else xbar_rows
    w = random_case(seed, groups, rows, cols, weight_bits, r, encoding == "polarized")
    x = random_codes(seed, 7, groups, rows, bits, signed)
    arr = make_array(
        w, encoding, weight_bits, cell_bits, xbar_rows, r, bits, signed, dac, flipped=flipped, force=True
    )
    arr.set_table_limit(0)  # the GEMM engine
    engine = arr.gemm_engine()
    assert engine.lanes is not None
    y = arr(x)
    assert torch.equal(y, integer_matmul(x, w))
    assert arr.stats.clipped == 0 and arr.engine == "gemm"
    every_conversion = dataclasses.replace(engine, lanes=None).run(x, 3 * 1024, None)
    analog = engine.run(x, 3 * 1024, None)  # small chunks: several per call
    assert torch.equal(analog, every_conversion)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(8, 60), signed=st.booleans())
def test_no_signed_slices_where_a_conversion_can_clip(seed, rows, signed) -> None:
    w = random_case(seed, 1, rows, 4, 6, 16, False)
    w[:, :8] = 63  # columns whose sums overflow a 3-bit ADC
    x = random_codes(seed, 4, 1, rows, 6, signed)
    arr = make_array(w, "differential", 6, 2, 16, 16, 6, signed, adc_bits=3, force=True)
    arr.set_table_limit(0)
    assert arr.gemm_engine().lanes is None
    arr(x)
    noisy = CrossbarArray(
        w,
        arr.encoded,
        Adc(8),
        arr.plan,
        16,
        DeviceSpec.model_validate({"read_noise": 0.01}),
        force_bit_level=True,
    )
    noisy.program(seed)
    assert noisy.gemm_engine().lanes is None


def test_results_do_not_depend_on_the_thread_count() -> None:
    w = random_case(5, 1, 300, 40, 8, 128, False)
    x = random_codes(5, 64, 1, 300, 8, False)
    outputs = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            for adc_bits in (None, 6):  # signed slices, and every conversion with clipping
                arr = make_array(w, "differential", 8, 2, 128, 128, 8, False, adc_bits=adc_bits, force=True)
                outputs.append(arr(x))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(outputs[0], integer_matmul(x, w))
    assert torch.equal(outputs[0], outputs[2]) and torch.equal(outputs[1], outputs[3])
