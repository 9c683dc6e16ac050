"""The compiled zero-skip pass (forms.sim.zeroskip_native) against the torch passes it replaces."""

from __future__ import annotations

import shutil
import sysconfig

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forms.encoding import Encoding
from forms.sim import zeroskip, zeroskip_native
from forms.sim.digit_lanes import lane_dtype, lane_masks
from forms.sim.encodings import encode
from forms.sim.quant_inputs import DigitPlan, digit_plan

needs_native = pytest.mark.skipif(not zeroskip_native.native_built(), reason="extension not built")


def test_the_extension_is_built_where_a_c_compiler_is() -> None:
    """`pip install` builds it (setup.py) wherever a C compiler is on the path, as on every machine this
    project runs on; a missing build would silently fall back to the slower torch passes."""
    compiler = str(sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}) here")
    assert zeroskip_native.native_built()


def fitting_dtypes(plan: DigitPlan) -> list[torch.dtype]:
    """The code dtypes that hold every code of ``plan`` (the compiled pass reads all of them)."""
    low, high = (
        (-(1 << (plan.bits - 1)), (1 << (plan.bits - 1)) - 1) if plan.signed else (0, (1 << plan.bits) - 1)
    )
    ranges = {
        torch.int8: (-128, 127),
        torch.uint8: (0, 255),
        torch.int16: (-(1 << 15), (1 << 15) - 1),
        torch.int32: (-(1 << 31), (1 << 31) - 1),
        torch.int64: (-(1 << 63), (1 << 63) - 1),
        torch.float32: (-(1 << 24), 1 << 24),
        torch.float64: (-(1 << 53), 1 << 53),
    }
    return [dtype for dtype, (lo, hi) in ranges.items() if lo <= low and high <= hi]


@st.composite
def workloads(draw: st.DrawFn) -> tuple[torch.Tensor, DigitPlan, int, int]:
    """Codes (vectors, groups, rows) of a random plan of at most 16 bits in a dtype that holds them, at
    the range's ends and sparse, with a sub-array size and a row tile (a multiple of it)."""
    signed = draw(st.booleans())
    bits = draw(st.integers(2 if signed else 1, 16))
    plan = digit_plan(bits, draw(st.integers(1, 4)), signed)
    dtype = draw(st.sampled_from(fitting_dtypes(plan)))
    shape = (draw(st.integers(0, 9)), draw(st.integers(1, 3)), draw(st.integers(1, 80)))
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.integers(low, high + 1, shape)
    values[rng.random(shape) < draw(st.floats(0.0, 1.0))] = 0
    if values.size:
        values.flat[0], values.flat[-1] = low, high
    r = draw(st.integers(1, 40))
    return torch.from_numpy(values).to(dtype), plan, r, r * draw(st.integers(1, 5))


@needs_native
@settings(max_examples=300, deadline=None)
@given(workload=workloads(), threads=st.integers(1, 3))
def test_compiled_counts_equal_the_torch_passes(
    workload: tuple[torch.Tensor, DigitPlan, int, int], threads: int
) -> None:
    """Every count, for every code dtype, 1-16-bit plans (signed or not, 1-4-bit DACs), any sub-array and
    tile size, with the rows split over threads however small the input."""
    codes, plan, r, tile = workload
    previous = torch.get_num_threads(), zeroskip_native.MIN_CODES_PER_THREAD
    torch.set_num_threads(threads)
    zeroskip_native.MIN_CODES_PER_THREAD = 1
    try:
        compiled = zeroskip.count_subarray_steps(codes, plan, r, tile_rows=tile, crossbars_per_tile=3)
    finally:
        torch.set_num_threads(previous[0])
        zeroskip_native.MIN_CODES_PER_THREAD = previous[1]
    assert compiled == zeroskip.count_subarray_steps(
        codes, plan, r, tile_rows=tile, crossbars_per_tile=3, compiled=False
    )


def offset_layer(groups: int, rows: int, tile: int, r: int) -> object:
    """An offset-encoded layer of ``groups`` x ``rows`` rows on ``tile``-row crossbars, sub-arrays of r."""
    return encode(torch.zeros(groups, rows, 2, dtype=torch.int64), Encoding.OFFSET, 6, 2, tile, r)


@needs_native
@settings(max_examples=100, deadline=None)
@given(workload=workloads(), double=st.booleans())
def test_conversion_while_counting_writes_the_values_group_major(
    workload: tuple[torch.Tensor, DigitPlan, int, int], double: bool
) -> None:
    """The exact path's fused conversion writes each code's value (not its lane) into the GEMM operand,
    groups first, and counts as the torch passes do."""
    codes, plan, r, tile = workload
    vectors, groups, rows = codes.shape
    enc = offset_layer(groups, rows, tile, r)
    values = torch.full((groups, vectors, rows), -7.0, dtype=torch.float64 if double else torch.float32)
    counts = zeroskip.convert_and_count(codes, values, plan, enc)  # type: ignore[arg-type]
    assert torch.equal(values.to(torch.int64), codes.transpose(0, 1).to(torch.int64))
    assert counts == zeroskip.count_subarray_steps(
        codes, plan, r, tile_rows=tile, crossbars_per_tile=enc.crossbars_per_row_tile, compiled=False
    )


@needs_native
@settings(max_examples=60, deadline=None)
@given(workload=workloads())
def test_narrowing_while_counting_writes_the_lanes(
    workload: tuple[torch.Tensor, DigitPlan, int, int],
) -> None:
    """Narrowed while counted, the lanes equal the torch narrowing (every code's low bits)."""
    codes, plan, r, tile = workload
    enc = offset_layer(codes.shape[1], codes.shape[2], tile, r)
    lanes, counts = zeroskip.narrow_and_count(codes, plan, enc)  # type: ignore[arg-type]
    assert lanes.dtype == lane_dtype(plan)
    low_bits = (1 << plan.bits) - 1
    assert torch.equal(lanes.to(torch.int64) & low_bits, codes.to(torch.int64) & low_bits)
    assert counts == zeroskip.count_layer_activity(codes, plan, enc, compiled=False)  # type: ignore[arg-type]


@needs_native
@settings(max_examples=100, deadline=None)
@given(workload=workloads())
def test_the_kernel_for_any_processor_counts_as_the_fast_one(
    workload: tuple[torch.Tensor, DigitPlan, int, int],
) -> None:
    """The kernel compiled for any processor (no AVX2, popcount by word operations) counts as the one
    this machine runs."""
    codes, plan, r, tile = workload
    if not codes.shape[-1]:
        return
    assert zeroskip_native.count_native(codes, plan, r, tile, portable=True) == zeroskip_native.count_native(
        codes, plan, r, tile
    )


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("tile_rows", [0, -4, 2])
def test_a_row_tile_shorter_than_a_sub_array_is_refused(compiled: bool, tile_rows: int) -> None:
    """Both paths refuse a row tile that is not a positive multiple of the sub-array (no crash)."""
    codes = torch.ones(2, 1, 16, dtype=torch.int32)
    with pytest.raises(ValueError, match="positive multiple"):
        zeroskip.count_subarray_steps(
            codes, digit_plan(8, 1, False), 4, tile_rows=tile_rows, compiled=compiled
        )


def test_codes_without_groups_count_nothing() -> None:
    """Zero groups (or vectors) count nothing on either path."""
    plan = digit_plan(8, 1, False)
    codes = torch.ones(3, 0, 16, dtype=torch.int32)
    assert zeroskip.count_subarray_steps(codes, plan, 4) == zeroskip.count_subarray_steps(
        codes, plan, 4, compiled=False
    )


@needs_native
def test_strided_codes_are_counted_as_their_values() -> None:
    """A view that is not contiguous (a transposed batch) counts as its contiguous copy."""
    plan = digit_plan(8, 1, False)
    codes = torch.randint(0, 256, (40, 2, 30), generator=torch.Generator().manual_seed(0))
    view = codes.transpose(0, 2)
    assert zeroskip.count_subarray_steps(view, plan, 4, tile_rows=8) == zeroskip.count_subarray_steps(
        view.contiguous(), plan, 4, tile_rows=8, compiled=False
    )


@needs_native
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tile_rows": 6}, "positive multiple of fragment"),
        ({"tile_rows": 0}, "positive multiple of fragment"),
        ({"tile_rows": -4}, "positive multiple of fragment"),
        ({"wider": [[64, 1]]}, "1 to 63 bits"),
        ({"fragment": 0}, "fragment >= 1"),
        ({"lane_bits": 12}, "8 or 16 bits"),
        ({"out": np.zeros(5, np.float32)}, "one item per code"),
        ({"out": np.zeros(60, np.int32)}, "out must be lanes"),
        ({"codes": np.zeros(60, bool)}, "codes must be"),
        ({"rows": 7}, "whole vectors"),
    ],
)
def test_the_extension_refuses_bad_arguments(change: dict[str, object], message: str) -> None:
    """Bad arguments raise ValueError naming the problem, never read or write out of bounds."""
    plan = digit_plan(8, 1, False)
    masks = lane_masks(plan, 8)
    args: dict[str, object] = {
        "codes": np.zeros(60, np.int32),
        "out": None,
        "rows": 10,
        "groups": 2,
        "fragment": 4,
        "tile_rows": 8,
        "lane_bits": 8,
        "flag_mask": masks.flags & ((1 << 64) - 1),
        "wider": [],
        "threads": 1,
    }
    args.update(change)
    native = zeroskip_native._native
    assert native is not None
    with pytest.raises(ValueError, match=message):
        native.count(*args.values())
