"""Both reduction counts (physical, whole crossbars per layer; per weight), on hand-computed layers and
as properties of random pruned integer matrices; each layer is counted polarized only when none of its
fragments holds both signs, else differential."""

from __future__ import annotations

import math
from dataclasses import astuple

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forms.compress.counting import (
    MIXED_DESIGN,
    PerWeightReduction,
    PhysicalReduction,
    Reduction,
    crossbar_report,
    fragment_rows,
    layer_encoding,
    reduction,
)
from forms.config import CrossbarSpec
from forms.encoding import Encoding

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


def mixed_layer() -> torch.Tensor:
    """The dense layer with row 1 of column 0 negative: fragment 0 of column 0 (R = 4) holds both signs."""
    w = dense_layer()
    w[0, 1, 0] = -1
    return w


def has_mixed_fragment(layers: list[torch.Tensor], r: int) -> bool:
    """Whether some r consecutive rows [k*r, (k+1)*r) of one column of one group hold both signs,
    checked entry by entry (an oracle independent of :mod:`forms.geometry`)."""
    for w in layers:
        groups, rows, cols = w.shape
        for g in range(groups):
            for c in range(cols):
                for start in range(0, rows, r):
                    values = w[g, start : start + r, c].tolist()
                    if any(v > 0 for v in values) and any(v < 0 for v in values):
                        return True
    return False


def stored_weights(w: torch.Tensor, r: int) -> int:
    """Weights a design stores of ``w`` (groups, rows, cols): per group, every block of ``r`` rows
    [k*r, (k+1)*r) holding a non-zero weight, whole, times the non-zero columns (r = 1: the non-zero
    rows), checked entry by entry."""
    total = 0
    for g in w:
        rows = sum(len(g[s : s + r]) for s in range(0, g.shape[0], r) if g[s : s + r].any())
        cols = sum(1 for j in range(g.shape[1]) if g[:, j].any())
        total += rows * cols
    return total


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
    assert (report["final_encoding"], report["final_usable"]) == ("polarized", 4)
    both = counts({"fc": dense_layer()}, 8)
    assert both.final_encoding == "polarized"
    assert same(both.physical, (1.0, 4.0, 2.0, 8.0))
    # 64 weights x 4 cells = 256 cells = 4 crossbars of 64 cells: the tiles are full.
    assert same(both.per_weight, (1.0, 4.0, 2.0, 8.0, 4.0))


def test_a_mixed_sign_fragment_leaves_the_differential_design() -> None:
    # the same counts per encoding, but one mixed fragment: the final model is the 8 differential
    # crossbars, so the 2x of polarization is not claimed (dense 32 / 8 = 4x in all).
    report = crossbar_report({"fc": mixed_layer()}, 8, SMALL)
    assert report["final"] == {"polarized": 4, "offset": 6, "differential": 8}
    assert (report["final_encoding"], report["final_usable"]) == ("differential", 8)
    both = counts({"fc": mixed_layer()}, 8)
    assert both.final_encoding == "differential"
    assert same(both.physical, (1.0, 4.0, 1.0, 4.0))
    # per weight: 2 / 2 sets; 64 weights x 4 cells x 2 sets = 512 cells = 8 crossbars of 64 cells.
    assert same(both.per_weight, (1.0, 4.0, 1.0, 4.0, 8.0))


def test_only_the_mixed_layer_is_counted_differential() -> None:
    # 4 polarized + 8 differential crossbars; per weight 64 + 64 weights on 1 + 2 sets: 2 x 128 / 192.
    report = crossbar_report({"fc": dense_layer(), "mixed": mixed_layer()}, 8, SMALL)
    assert [layer["encoding"] for layer in report["layers"]] == ["polarized", "differential"]
    assert (report["final_encoding"], report["final_usable"]) == (MIXED_DESIGN, 12)
    both = counts({"fc": dense_layer(), "mixed": mixed_layer()}, 8)
    assert both.physical.polarization == pytest.approx(16 / 12)
    assert both.per_weight.polarization == pytest.approx(256 / 192)


def test_fragments_follow_the_crossbars_fragment_size() -> None:
    # rows 0..3 positive, rows 4..7 negative, zeros anywhere: one sign per fragment of 4 rows (a zero
    # takes either sign), both signs in the one fragment of 8 rows.
    w = torch.tensor([1, 2, 3, 1, -1, -3, -2, -1]).reshape(1, 8, 1)
    assert layer_encoding(w, 4) is Encoding.POLARIZED
    assert layer_encoding(w, 8) is Encoding.DIFFERENTIAL
    wide = CrossbarSpec(rows=8, cols=8, cell_bits=2, fragment_size=8)
    assert counts({"fc": w}, 8).per_weight.polarization == 2.0
    assert counts({"fc": w}, 8, wide).per_weight.polarization == 1.0


def test_a_polarized_layer_keeps_its_fragments_whole() -> None:
    # R = 4: rows [1, 0, 0, 0] and [-1, 0, 0, 0] are two single-signed fragments. The differential
    # design drops the six zero rows (2 rows, one row tile); the polarized one keeps both fragments whole
    # (8 rows): closing the gap would put +1 and -1 in one fragment. A fragment of zeros only is dropped.
    w = torch.tensor([1, 0, 0, 0, -1, 0, 0, 0, 0, 0, 0, 0]).reshape(1, 12, 1)
    assert layer_encoding(w, 4) is Encoding.POLARIZED
    assert fragment_rows(w, 4) == [8]
    report = crossbar_report({"fc": w}, 8, SMALL)
    assert report["layers"][0]["kept_rows"] == [2] and report["layers"][0]["polarized_rows"] == [8]
    assert report["final"] == {"polarized": 1, "offset": 1, "differential": 2}
    both = counts({"fc": w}, 8)
    # per weight: 12 dense weights, 8 stored (the whole fragments): pruning 1.5, polarization 2
    assert same(both.per_weight, (1.5, 4.0, 2.0, 12.0, 8 * 4 / 64))


def test_pruned_rows_and_columns() -> None:
    # pruned 32-bit: 2 row tiles (10 rows) x (3 x 16 / 8 = 6 column tiles) x 2 sets = 24;
    # final polarized: 2 row tiles x (3 x 4 / 8 -> 2 column tiles) = 4; differential 8.
    both = counts({"fc": pruned_layer()}, 8)
    assert same(both.physical, (32 / 24, 24 / 8, 2.0, 8.0))
    # per weight: the polarized design stores rows 0..11 (rows 8, 9 keep their fragment of R = 4 whole)
    # x 3 columns = 36 of 64 weights, 32 / 8 bits, 2 / 1 sets; 36 weights x 4 cells = 144 cells of 64.
    assert same(both.per_weight, (64 / 36, 4.0, 2.0, 64 / 36 * 8, 144 / 64))


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
    # the polarized design stores 36 weights of pruned_layer (its fragments whole) and 16 of grouped
    assert both.per_weight.pruning == pytest.approx((64 + 32) / (36 + 16))
    assert both.per_weight.area_equivalent == pytest.approx((36 + 16) * 4 / 64)


def test_a_fully_pruned_model_has_infinite_reductions() -> None:
    both = counts({"fc": torch.zeros(1, 16, 4, dtype=torch.int64)}, 8)
    assert both.physical.total == math.inf and both.per_weight.total == math.inf
    assert both.per_weight.area_equivalent == 0.0


@pytest.mark.parametrize("layer", [pruned_layer(), mixed_layer()])
def test_reduction_round_trips_through_its_dict(layer: torch.Tensor) -> None:
    both = counts({"fc": layer}, 8)
    d = both.to_dict()
    assert list(d) == ["final_encoding", "physical", "per_weight"]
    assert list(d["physical"]) == ["pruning", "quantization", "polarization", "total"]
    assert list(d["per_weight"]) == ["pruning", "quantization", "polarization", "total", "area_equivalent"]
    assert Reduction.from_dict(d) == both


def test_a_record_without_final_encoding_counted_the_polarized_design() -> None:
    # metrics.json written before final_encoding was kept: its factors are the polarized design's.
    both = counts({"fc": pruned_layer()}, 8)
    old = both.to_dict()
    del old["final_encoding"]
    assert Reduction.from_dict(old) == both
    report = crossbar_report({"fc": pruned_layer()}, 8, SMALL)
    del report["final_encoding"]
    assert reduction(report, 8, SMALL) == both


@st.composite
def pruned_matrices(draw: st.DrawFn) -> torch.Tensor:
    """A (groups, rows, cols) integer matrix with random rows and columns of each group zeroed, of one
    sign throughout or (one draw in two) of a random sign per row block of random height."""
    groups = draw(st.integers(1, 3))
    rows, cols = draw(st.integers(1, 40)), draw(st.integers(1, 20))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    block = draw(st.integers(1, 16)) if draw(st.booleans()) else rows
    block_signs = 1 - 2 * torch.randint(0, 2, (groups, -(-rows // block), cols), generator=gen)
    w = (
        torch.randint(1, 100, (groups, rows, cols), generator=gen)
        * block_signs.repeat_interleave(block, dim=1)[:, :rows]
    )
    keep_rows = torch.rand(groups, rows, 1, generator=gen) < draw(st.floats(0.0, 1.0))
    keep_cols = torch.rand(groups, 1, cols, generator=gen) < draw(st.floats(0.0, 1.0))
    return w * keep_rows * keep_cols


@settings(max_examples=60, deadline=None)
@given(
    st.lists(pruned_matrices(), min_size=1, max_size=3),
    st.integers(1, 16),
    st.sampled_from([(8, 8, 1), (8, 16, 2), (16, 8, 4), (128, 128, 2)]),
    st.sampled_from([1, 2, 4, 8]),
)
def test_count_properties(
    layers: list[torch.Tensor], bits: int, geometry: tuple[int, int, int], fragment_size: int
) -> None:
    rows, cols, cell_bits = geometry
    crossbar = CrossbarSpec(rows=rows, cols=cols, cell_bits=min(cell_bits, bits), fragment_size=fragment_size)
    named = {f"layer{i}": w for i, w in enumerate(layers)}
    report = crossbar_report(named, bits, crossbar)
    both = reduction(report, bits, crossbar)
    physical, per_weight = both.physical, both.per_weight
    # a layer is polarized exactly when no fragment of R rows holds both signs; polarization 2 when
    # every layer is, 1 when none is
    polarized = [not has_mixed_fragment([w], crossbar.fragment_size) for w in layers]
    assert [layer["encoding"] == "polarized" for layer in report["layers"]] == polarized
    assert (both.final_encoding == "polarized") == all(polarized)
    if any(w.any() for w in layers):
        assert (per_weight.polarization == 2.0) == all(polarized)
        nonzero_polarized = [p for p, w in zip(polarized, layers, strict=True) if w.any()]
        assert (per_weight.polarization == 1.0) == (not any(nonzero_polarized))
    final = report["final_usable"]
    # physical total = dense / final, and the product of its factors; polarization at most 2 (the
    # polarized design keeps whole fragments where the differential one drops rows), exactly 2 when
    # every layer is polarized and keeps no fragment only in part
    whole = all(layer["polarized_rows"] == layer["kept_rows"] for layer in report["layers"])
    if final:
        assert physical.polarization <= 2.0
        assert (physical.polarization == 2.0) == all(polarized) or not whole
        assert physical.total == report["dense_32bit"] / final
        product = physical.pruning * physical.quantization * physical.polarization
        assert product == pytest.approx(physical.total)
    # per-weight total = the product of its factors; quantization is a fixed ratio
    assert per_weight.total == per_weight.pruning * per_weight.quantization * per_weight.polarization
    assert per_weight.quantization == 32 / bits
    assert per_weight.pruning >= 1.0
    # whole crossbars hold at least the cells the weights use
    assert per_weight.area_equivalent <= final
    r = crossbar.fragment_size
    stored = [stored_weights(w, r if p else 1) for w, p in zip(layers, polarized, strict=True)]
    sets = [1 if p else 2 for p in polarized]
    cells = sum(n * s for n, s in zip(stored, sets, strict=True)) * math.ceil(bits / crossbar.cell_bits)
    assert per_weight.area_equivalent == pytest.approx(cells / (rows * cols))
    if sum(stored):
        assert per_weight.pruning == pytest.approx(sum(w.numel() for w in layers) / sum(stored))
