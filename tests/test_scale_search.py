"""The 'lsq' grid search of choose_scale: exhaustive up to 8 bits, bounded above, exact on quantized input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import forms.compress.projections as projections
from forms.compress.projections import LayerConstraint, choose_scale, column_scale, project, quantize
from forms.compress.scale_grids import COARSE_LEVELS, grid_divisors, own_grid_divisor, search_grid
from forms.intweights import max_magnitude

SETTINGS = settings(max_examples=40, deadline=None)


def exhaustive_grid(x: torch.Tensor, bits: int, mode: str) -> torch.Tensor:
    """Reference: the step maxabs / j of least error over every j = 2^b - 1 .. 1 (ties: larger j)."""
    dims = (-2,) if mode == "channel" else (-3, -2, -1)
    limit = max_magnitude(bits)
    maxabs = x.abs().amax(dim=dims, keepdim=True)
    steps = torch.stack([torch.where(maxabs > 0, maxabs / j, 1.0) for j in range(limit, 0, -1)])
    errs = torch.stack([(x - quantize(x, s, bits)).square().sum(dim=dims, keepdim=True) for s in steps])
    return steps.gather(0, errs.argmin(dim=0, keepdim=True)).squeeze(0)


@st.composite
def float_matrices(draw: st.DrawFn) -> torch.Tensor:
    """(groups, rows, cols) float64 matrices of random values, a random share of them exact zeros."""
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 12)), draw(st.integers(1, 4)))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    values = torch.randn(shape, generator=gen, dtype=torch.float64)
    return torch.where(torch.rand(shape, generator=gen) < draw(st.floats(0, 0.5)), 0.0, values)


@st.composite
def quantized_matrices(draw: st.DrawFn, bits: int) -> torch.Tensor:
    """s * k in float32 with integers |k| <= k_max, a random k_max <= 2^b - 1 reached at least once."""
    k_max = draw(st.integers(1, max_magnitude(bits)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 40)), draw(st.integers(1, 4)))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    k = torch.randint(-k_max, k_max + 1, shape, generator=gen)
    k.view(-1)[draw(st.integers(0, k.numel() - 1))] = draw(st.sampled_from([-k_max, k_max]))
    step = draw(st.floats(1e-4, 10.0, allow_subnormal=False))
    return k.to(torch.float32) * step


@SETTINGS
@given(m=float_matrices(), bits=st.integers(1, 8), mode=st.sampled_from(["channel", "layer"]))
def test_grid_search_up_to_8_bits_is_the_exhaustive_search(m: torch.Tensor, bits: int, mode: str) -> None:
    # every j = 2^b - 1 .. 1 is tried and nothing else, so the start of 'lsq' is what it always was
    assert grid_divisors(max_magnitude(bits)) == list(range(max_magnitude(bits), 0, -1))
    dims = (-2,) if mode == "channel" else (-3, -2, -1)
    maxabs = m.abs().amax(dim=dims, keepdim=True)
    step, _ = search_grid(
        m, maxabs, mode, max_magnitude(bits), m.dtype,
        lambda s: (m - quantize(m, s, bits)).square().sum(dim=dims, keepdim=True),
    )  # fmt: skip
    assert torch.equal(step, exhaustive_grid(m, bits, mode))


@SETTINGS
@given(m=float_matrices(), bits=st.integers(9, 16), mode=st.sampled_from(["channel", "layer"]))
def test_grid_search_above_8_bits_never_worse_than_maxabs(m: torch.Tensor, bits: int, mode: str) -> None:
    def err(method: str) -> torch.Tensor:
        s = column_scale(choose_scale(m, bits, mode, method), m).to(torch.float64)
        return (m - quantize(m, s, bits)).square().sum()

    assert float(err("lsq")) <= float(err("maxabs")) * (1 + 1e-9) + 1e-30


@SETTINGS
@given(data=st.data(), bits=st.integers(12, 16), mode=st.sampled_from(["channel", "layer"]))
def test_quantized_matrix_is_reproduced_and_projection_idempotent(
    data: st.DataObject, bits: int, mode: str
) -> None:
    x = data.draw(quantized_matrices(bits))
    g, rows, cols = x.shape
    c = LayerConstraint(
        name="l", weight_shape=(g * cols, rows, 1, 1), groups=g, weight_bits=bits, fragment_size=None,
        scale_mode=mode,
    )  # fmt: skip
    once = project(x, c)
    assert int(once.weight_int.abs().max()) <= max_magnitude(bits)
    # reproduced to float32 rounding (a wrong grid misses some entry by >= 1/(2 * 65535) of the max)
    assert torch.allclose(once.matrix, x, rtol=1e-6, atol=0.0)
    # idempotent: the same matrix again. The integers may differ by a common factor: several grids
    # maxabs / j hold an already-quantized matrix exactly, and rounding noise picks among them.
    twice = project(once.matrix, c, keep=once.keep)
    assert torch.allclose(twice.matrix, once.matrix, rtol=1e-6, atol=0.0)


def test_own_grid_is_the_coarsest_grid_holding_every_entry() -> None:
    step = 0.1
    assert own_grid_divisor(np.array([3, 5, 7, 0]) * step, 4095, 1e-15) == 7
    assert own_grid_divisor(np.array([2, 4, 6]) * step, 4095, 1e-15) == 3  # gcd 2: max/3 = 2 * step
    assert own_grid_divisor(np.array([1, 65535]) * step, 65535, 1e-15) == 65535
    assert own_grid_divisor(np.zeros(3), 4095, 1e-15) == 0
    assert own_grid_divisor(np.array([1.0, np.sqrt(2), np.pi]), 65535, 1e-15) == 0  # on no grid


def test_16_bit_search_costs_what_8_bit_does(monkeypatch: pytest.MonkeyPatch) -> None:
    # b = 16 used to try all 65,535 grids maxabs / j, one quantize pass of the matrix each
    passes = {"n": 0}
    real = projections.quantize

    def counting(matrix: torch.Tensor, scale: torch.Tensor, weight_bits: int) -> torch.Tensor:
        passes["n"] += 1
        return real(matrix, scale, weight_bits)

    monkeypatch.setattr(projections, "quantize", counting)
    x = torch.randn(1, 576, 64, generator=torch.Generator().manual_seed(0))
    counts = {}
    for bits in (8, 16):
        passes["n"] = 0
        choose_scale(x, bits, "channel", iterations=8)
        counts[bits] = passes["n"]
    assert len(grid_divisors(max_magnitude(16))) == COARSE_LEVELS
    # 8 bits: every grid; 16 bits: coarse + fine stage + the own grid; both + 8 LSQ iterations
    assert counts == {8: 255 + 8, 16: 2 * COARSE_LEVELS + 1 + 8}


@pytest.mark.parametrize("mode", ["channel", "layer"])
def test_16_bit_quantized_576x64_matrix_is_reproduced(mode: str) -> None:
    k = torch.randint(-65535, 65536, (1, 576, 64), generator=torch.Generator().manual_seed(1))
    x = k.to(torch.float32) * 0.0123
    s = column_scale(choose_scale(x, 16, mode), x)
    assert torch.allclose(quantize(x, s, 16), x, rtol=1e-6, atol=0.0)
