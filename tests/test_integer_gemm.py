"""The exact GEMM: float32 (whole or in row chunks) only where every partial sum is exact, and always
equal to integer arithmetic."""

from __future__ import annotations

import threading

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from forms.sim import integer_gemm
from forms.sim.integer_gemm import FLOAT32_EXACT, MIN_SPLIT_ROWS, exact_matmul, exact_plan


@given(
    rows=st.integers(1, 5000),
    max_code=st.integers(0, 1 << 20),
    max_weight=st.integers(0, 1 << 20),
)
def test_float32_only_where_every_partial_sum_is_exact(rows: int, max_code: int, max_weight: int) -> None:
    plan = exact_plan(rows, max_code, max_weight)
    product = max_code * max_weight
    if plan.dtype == torch.float32:
        assert plan.chunk_rows * product < FLOAT32_EXACT or product == 0
        assert plan.chunk_rows >= min(rows, MIN_SPLIT_ROWS)
    else:  # float64 only when no float32 chunk of MIN_SPLIT_ROWS rows would be exact
        assert MIN_SPLIT_ROWS * product >= FLOAT32_EXACT
        assert plan.chunk_rows == rows


def test_float64_when_float32_matmuls_may_round() -> None:
    precision = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")
        assert exact_plan(1152, 256, 127).dtype == exact_plan(4, 1, 1).dtype == torch.float64
    finally:
        torch.set_float32_matmul_precision(precision)


def test_a_buffer_made_under_inference_mode_serves_later_calls() -> None:
    """The kept conversion buffer, first made inside ``torch.inference_mode()`` (in a fresh thread, so
    a fresh per-thread workspace), takes writes outside it."""
    codes = torch.randint(0, 256, (3, 1, 600), dtype=torch.int32)
    weight = torch.randint(-127, 128, (1, 600, 2)).double()
    results: list[torch.Tensor] = []

    def calls() -> None:
        with torch.inference_mode():
            results.append(exact_matmul(codes, weight, 256, 127))
        results.append(exact_matmul(codes, weight, 256, 127))

    worker = threading.Thread(target=calls)
    worker.start()
    worker.join()
    assert len(results) == 2 and torch.equal(results[0], results[1])


def test_the_issue_workload_splits_into_three_float32_chunks() -> None:
    plan = exact_plan(1152, 256, 127)  # 8-bit codes (bounded by 2^8), 8-bit weights
    assert plan.dtype == torch.float32 and plan.chunk_rows == (FLOAT32_EXACT - 1) // (256 * 127) == 516


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    vectors=st.integers(1, 40),
    groups=st.integers(1, 3),
    rows=st.integers(1, 300),
    cols=st.integers(1, 9),
    code_bits=st.integers(1, 24),
    weight_bits=st.integers(1, 24),
    signed=st.booleans(),
    chunk_codes=st.sampled_from([1, 7, 1 << 22]),
)
def test_equals_integer_arithmetic(
    seed: int,
    vectors: int,
    groups: int,
    rows: int,
    cols: int,
    code_bits: int,
    weight_bits: int,
    signed: bool,
    chunk_codes: int,
) -> None:
    """Random codes and weights at every magnitude (whole float32, float32 row chunks, float64), at
    their extremes, in vector chunks of any size: the sums equal int64 arithmetic bit for bit."""
    g = torch.Generator().manual_seed(seed)
    max_code, max_weight = (1 << code_bits) - 1, (1 << weight_bits) - 1
    assume(rows * max_code * max_weight < 1 << 53)  # sums exact in float64 at all
    low = -max_code if signed else 0
    codes = torch.randint(low, max_code + 1, (vectors, groups, rows), generator=g)
    weight = torch.randint(-max_weight, max_weight + 1, (groups, rows, cols), generator=g)
    codes[0, 0, :] = max_code  # the largest sums the bound allows
    weight[0, :, 0] = max_weight
    want = torch.einsum("vgr,grc->vgc", codes, weight)
    with_chunks = integer_gemm.EXACT_CHUNK_CODES
    integer_gemm.EXACT_CHUNK_CODES = chunk_codes
    try:
        got = exact_matmul(codes.to(torch.int32), weight.double(), max_code, max_weight)
    finally:
        integer_gemm.EXACT_CHUNK_CODES = with_chunks
    assert got.dtype == torch.float64
    assert torch.equal(got, want.double())
