"""Both reduction counts (physical, whole crossbars per layer; per weight), on hand-computed layers and
as properties of random pruned integer matrices."""

from __future__ import annotations

import math
from dataclasses import astuple

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forms.compress.counting import (
    PerWeightReduction,
    PhysicalReduction,
    Reduction,
    crossbar_report,
    reduction,
)
from forms.config import CrossbarSpec

SMALL = CrossbarSpec(rows=8, cols=8, cell_bits=2, fragment_size=4)
"""8x8 crossbars of 2-bit cells: a 32-bit weight takes 16 cells, an 8-bit one 4, a 3-bit one 2."""


def dense_layer() -> torch.Tensor:
    """One (groups=1, rows=16, cols=4) matrix without a zero: 2 row tiles of 8 rows, 64 weights."""
    return torch.ones(1, 16, 4, dtype=torch.int64)


def pruned_layer() -> torch.Tensor:
    """The dense layer with rows 10..15 and column 3 pruned: 10 x 3 = 30 kept weights of 64."""
    w = dense_layer()
    w[:, 10:, :] = 0
    w[:, :, 3] = 0
    return w


def same(actual: PhysicalReduction | PerWeightReduction, expected: tuple[float, ...]) -> bool:
    """Whether the factors of ``actual`` are ``expected``, up to float rounding."""
    return astuple(actual) == pytest.approx(expected)


def counts(layers: dict[str, torch.Tensor], bits: int, crossbar: CrossbarSpec = SMALL) -> Reduction:
    """Both counts of ``layers`` at ``bits``-bit weights."""
    return reduction(crossbar_report(layers, bits, crossbar), bits, crossbar)


def test_dense_layer_both_counts_agree_when_tiles_are_full() -> None:
    # dense 32-bit differential: 2 row tiles x (4 x 16 cells / 8 = 8 column tiles) x 2 sets = 32;
    # final 8-bit polarized: 2 row tiles x (4 x 4 / 8 = 2 column tiles) = 4; differential 8.
    report = crossbar_report({"fc": dense_layer()}, 8, SMALL)
    assert (report["dense_32bit"], report["pruned_32bit"]) == (32, 32)
    assert report["final"] == {"polarized": 4, "offset": 6, "differential": 8}
    both = counts({"fc": dense_layer()}, 8)
    assert same(both.physical, (1.0, 4.0, 2.0, 8.0))
    # 64 weights x 4 cells = 256 cells = 4 crossbars of 64 cells: the tiles are full.
    assert same(both.per_weight, (1.0, 4.0, 2.0, 8.0, 4.0))


def test_pruned_rows_and_columns() -> None:
    # pruned 32-bit: 2 row tiles (10 rows) x (3 x 16 / 8 = 6 column tiles) x 2 sets = 24;
    # final polarized: 2 row tiles x (3 x 4 / 8 -> 2 column tiles) = 4; differential 8.
    both = counts({"fc": pruned_layer()}, 8)
    assert same(both.physical, (32 / 24, 24 / 8, 2.0, 8.0))
    # per weight: 64 / 30 weights, 32 / 8 bits, 2 / 1 sets; 30 weights x 4 cells = 120 cells of 64.
    assert same(both.per_weight, (64 / 30, 4.0, 2.0, 64 / 30 * 8, 120 / 64))


@pytest.mark.parametrize(
    "bits, physical, per_weight",
    [
        # 3 bits: 2 cells per weight, 4 x 2 = 8 columns -> 1 column tile; polarized 2, differential 4.
        (3, (1.0, 8.0, 2.0, 16.0), (1.0, 32 / 3, 2.0, 64 / 3, 2.0)),
        # 4 bits: also 2 cells per weight, so the same crossbars; per weight 32 / 4.
        (4, (1.0, 8.0, 2.0, 16.0), (1.0, 8.0, 2.0, 16.0, 2.0)),
        # 16 bits: 8 cells per weight, 32 columns -> 4 column tiles; polarized 8, differential 16.
        (16, (1.0, 2.0, 2.0, 4.0), (1.0, 2.0, 2.0, 4.0, 8.0)),
    ],
)
def test_weight_widths(bits: int, physical: tuple[float, ...], per_weight: tuple[float, ...]) -> None:
    both = counts({"fc": dense_layer()}, bits)
    assert same(both.physical, physical) and same(both.per_weight, per_weight)


def test_layers_and_groups_add_up() -> None:
    # a grouped layer (2 groups of 8 x 2), its second group pruned away: 16 of 32 weights kept, each
    # group 1 row tile x (2 x 16 / 8 = 4 column tiles) x 2 sets = 8 dense crossbars, 1 final polarized.
    grouped = torch.ones(2, 8, 2, dtype=torch.int64)
    grouped[1] = 0
    both = counts({"fc": pruned_layer(), "grouped": grouped}, 8)
    assert both.physical.total == pytest.approx((32 + 16) / (4 + 1))
    assert both.per_weight.pruning == pytest.approx((64 + 32) / (30 + 16))
    assert both.per_weight.area_equivalent == pytest.approx((30 + 16) * 4 / 64)


def test_a_fully_pruned_model_has_infinite_reductions() -> None:
    both = counts({"fc": torch.zeros(1, 16, 4, dtype=torch.int64)}, 8)
    assert both.physical.total == math.inf and both.per_weight.total == math.inf
    assert both.per_weight.area_equivalent == 0.0


def test_reduction_round_trips_through_its_dict() -> None:
    both = counts({"fc": pruned_layer()}, 8)
    d = both.to_dict()
    assert list(d) == ["physical", "per_weight"]
    assert list(d["physical"]) == ["pruning", "quantization", "polarization", "total"]
    assert list(d["per_weight"]) == ["pruning", "quantization", "polarization", "total", "area_equivalent"]
    assert Reduction.from_dict(d) == both


@st.composite
def pruned_matrices(draw: st.DrawFn) -> torch.Tensor:
    """A (groups, rows, cols) integer matrix with random rows and columns of each group zeroed."""
    groups = draw(st.integers(1, 3))
    rows, cols = draw(st.integers(1, 40)), draw(st.integers(1, 20))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    w = torch.randint(1, 100, (groups, rows, cols), generator=gen) * (
        1 - 2 * torch.randint(0, 2, (1,), generator=gen)
    )
    keep_rows = torch.rand(groups, rows, 1, generator=gen) < draw(st.floats(0.0, 1.0))
    keep_cols = torch.rand(groups, 1, cols, generator=gen) < draw(st.floats(0.0, 1.0))
    return w * keep_rows * keep_cols


@settings(max_examples=60, deadline=None)
@given(
    st.lists(pruned_matrices(), min_size=1, max_size=3),
    st.integers(1, 16),
    st.sampled_from([(8, 8, 1), (8, 16, 2), (16, 8, 4), (128, 128, 2)]),
)
def test_count_properties(layers: list[torch.Tensor], bits: int, geometry: tuple[int, int, int]) -> None:
    rows, cols, cell_bits = geometry
    crossbar = CrossbarSpec(rows=rows, cols=cols, cell_bits=min(cell_bits, bits), fragment_size=rows)
    named = {f"layer{i}": w for i, w in enumerate(layers)}
    report = crossbar_report(named, bits, crossbar)
    both = reduction(report, bits, crossbar)
    physical, per_weight = both.physical, both.per_weight
    final = report["final"]["polarized"]
    # physical total = dense / final, and the product of its factors
    if final:
        assert physical.total == report["dense_32bit"] / final
        product = physical.pruning * physical.quantization * physical.polarization
        assert product == pytest.approx(physical.total)
    # per-weight total = the product of its factors; quantization and polarization are fixed ratios
    assert per_weight.total == per_weight.pruning * per_weight.quantization * per_weight.polarization
    assert (per_weight.quantization, per_weight.polarization) == (32 / bits, 2.0)
    assert per_weight.pruning >= 1.0
    # whole crossbars hold at least the cells the weights use
    assert per_weight.area_equivalent <= final
    kept = sum(int((w != 0).any(dim=2).sum(dim=1).mul((w != 0).any(dim=1).sum(dim=1)).sum()) for w in layers)
    cells_per_weight = math.ceil(bits / crossbar.cell_bits)
    assert per_weight.area_equivalent == pytest.approx(kept * cells_per_weight / (rows * cols))
