"""Properties of the FORMS projections: idempotent, feasible, nearest (brute force), combined feasible."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forms.compress.counting import crossbar_report
from forms.compress.projections import (
    LayerConstraint,
    TileSize,
    choose_scale,
    column_scale,
    expand_group_mask,
    global_prune_masks,
    group_block,
    group_sq_norms,
    polarize,
    project,
    prune_mask,
    pruned_count,
    quantize,
    tile_rounded_count,
)
from forms.config import CrossbarSpec
from forms.geometry import fragment_signs, fragment_view
from forms.intweights import max_magnitude

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def matrices(draw: st.DrawFn, max_rows: int = 9, max_cols: int = 4, max_groups: int = 2) -> torch.Tensor:
    """Small (groups, rows, cols) matrices with values on a half-integer grid (ties included)."""
    g = draw(st.integers(1, max_groups))
    r = draw(st.integers(1, max_rows))
    c = draw(st.integers(1, max_cols))
    vals = draw(st.lists(st.integers(-6, 6), min_size=g * r * c, max_size=g * r * c))
    return torch.tensor(vals, dtype=torch.float32).reshape(g, r, c) / 2


# ---------------------------------------------------------------------------- polarization


@SETTINGS
@given(m=matrices(), r=st.sampled_from([1, 2, 4, 8]))
def test_polarize_feasible_and_idempotent(m: torch.Tensor, r: int) -> None:
    p = polarize(m, r)
    assert int(fragment_signs(p, r).mixed.sum()) == 0
    assert torch.equal(polarize(p, r), p)


@SETTINGS
@given(m=matrices(max_rows=4, max_cols=1, max_groups=1), r=st.sampled_from([1, 2, 4]))
def test_polarize_is_nearest_by_brute_force(m: torch.Tensor, r: int) -> None:
    # Inputs are on the half-integer grid in [-3, 3]; so are their orthant projections. Enumerate every
    # point of that grid, keep the feasible ones and compare the best distance with ours.
    p = polarize(m, r)
    ours = float((m - p).square().sum())
    rows, cols = m.shape[1:]
    grid = torch.arange(-6, 7, dtype=torch.float32) / 2
    cand = torch.cartesian_prod(*([grid] * (rows * cols))).reshape(-1, rows, cols)
    feasible = ~fragment_signs(cand, r).mixed.any(dim=(-2, -1))
    best = float((m - cand[feasible]).square().sum(dim=(-2, -1)).min())
    assert ours == pytest.approx(best, abs=1e-9)


def test_polarize_tie_keeps_positive_side() -> None:
    m = torch.tensor([[[1.0], [-1.0]]])
    assert torch.equal(polarize(m, 2), torch.tensor([[[1.0], [0.0]]]))


def test_polarize_keeps_larger_sum_of_squares_not_larger_sum() -> None:
    # sum is positive (0.9+0.9-1.5 = 0.3) but the negative side has more energy (2.25 > 1.62)
    m = torch.tensor([[[0.9], [0.9], [-1.5], [0.0]]])
    assert torch.equal(polarize(m, 4), torch.tensor([[[0.0], [0.0], [-1.5], [0.0]]]))


# ---------------------------------------------------------------------------- quantization


@SETTINGS
@given(m=matrices(), bits=st.integers(1, 8), mode=st.sampled_from(["channel", "layer"]))
def test_quantize_feasible_idempotent_and_nearest(m: torch.Tensor, bits: int, mode: str) -> None:
    scale = column_scale(choose_scale(m, bits, mode), m)
    q = quantize(m, scale, bits)
    k = q / scale
    assert torch.allclose(k, k.round(), atol=1e-5)
    assert float(k.abs().max()) <= max_magnitude(bits) + 1e-5
    assert torch.allclose(quantize(q, scale, bits), q)
    # nearest: every entry is at least as close as the two grid points around it (and the clamp ends)
    limit = max_magnitude(bits)
    grid = torch.arange(-limit, limit + 1, dtype=torch.float32)
    cand = grid.view(-1, 1, 1, 1) * scale.unsqueeze(0) if scale.dim() else grid.view(-1, 1, 1, 1) * scale
    best = (m.unsqueeze(0) - cand).abs().amin(dim=0)
    assert torch.all((m - q).abs() <= best + 1e-5)


@SETTINGS
@given(m=matrices(max_rows=6, max_cols=3), bits=st.integers(1, 6))
def test_lsq_scale_never_worse_than_maxabs(m: torch.Tensor, bits: int) -> None:
    def err(method: str) -> float:
        s = column_scale(choose_scale(m, bits, "channel", method), m)
        return float((m - quantize(m, s, bits)).square().sum())

    assert err("lsq") <= err("maxabs") + 1e-6


def test_all_zero_channel_has_positive_scale_and_zero_integers() -> None:
    m = torch.zeros(1, 4, 2)
    s = choose_scale(m, 4, "channel")
    assert torch.all(s > 0)
    assert torch.equal(quantize(m, column_scale(s, m), 4), m)


# ---------------------------------------------------------------------------- pruning


@SETTINGS
@given(
    m=matrices(max_rows=6, max_cols=4, max_groups=1),
    gran=st.sampled_from(["filter", "channel", "fragment", "rows"]),
    ratio=st.sampled_from([0.0, 0.25, 0.5, 0.75, 0.9]),
)
def test_prune_feasible_idempotent_nearest(m: torch.Tensor, gran: str, ratio: float) -> None:
    rows = m.shape[1]
    block = {"filter": 1, "channel": 3 if rows % 3 == 0 else 1, "fragment": 2, "rows": 2}[gran]
    mask = prune_mask(m, ratio, gran, block)
    p = torch.where(mask, m, 0.0)
    # group structure of the mask: enumerate groups as sets of entries
    entries = torch.arange(m.numel()).reshape(m.shape)
    if gran == "filter":
        groups = [entries[0, :, c] for c in range(m.shape[2])]
    elif gran == "channel":
        groups = [entries[0, i * block : (i + 1) * block, :] for i in range(rows // block)]
    elif gran == "rows":  # fragment-aligned row blocks of every column, the last one short
        groups = [entries[0, i * block : (i + 1) * block, :] for i in range(math.ceil(rows / block))]
    else:
        groups = [
            entries[0, i * block : (i + 1) * block, c]
            for i in range(math.ceil(rows / block))
            for c in range(m.shape[2])
        ]
    n_prune = min(math.floor(ratio * len(groups) + 1e-9), len(groups) - 1)
    flat_mask = mask.reshape(-1)
    kept = [bool(flat_mask[g.reshape(-1)].all()) for g in groups]
    whole = [bool(flat_mask[g.reshape(-1)].all()) or not bool(flat_mask[g.reshape(-1)].any()) for g in groups]
    assert all(whole)  # every group is kept or zeroed as a whole
    assert kept.count(False) == n_prune  # feasible: exactly the allowed number of groups zeroed
    assert torch.equal(torch.where(prune_mask(p, ratio, gran, block), p, 0.0), p)  # idempotent
    flat = m.reshape(-1)
    best = min(
        sum(float(flat[groups[i].reshape(-1)].square().sum()) for i in drop)
        for drop in itertools.combinations(range(len(groups)), n_prune)
    )
    assert float((m - p).square().sum()) == pytest.approx(best, abs=1e-9)


@SETTINGS
@given(
    m=matrices(max_rows=9, max_cols=5, max_groups=2),
    unit=st.sampled_from(["channel", "fragment"]),
    ratio=st.sampled_from([0.0, 0.25, 0.5, 0.75, 0.9]),
)
def test_filter_and_row_pruning_together_feasible_and_idempotent(
    m: torch.Tensor, unit: str, ratio: float
) -> None:
    rows = m.shape[1]
    block = (3 if rows % 3 == 0 else 1) if unit == "channel" else 2
    mask = prune_mask(m, ratio, f"filter+{unit}", block)
    p = torch.where(mask, m, 0.0)
    # feasible for both units: as many zero filters and zero row groups as one unit alone would allow
    for gran in ("filter", unit):
        zero_groups = group_sq_norms(torch.where(mask, 1.0, 0.0), gran, block) == 0
        assert int(zero_groups.sum()) >= pruned_count(zero_groups.numel(), ratio), gran
        assert torch.equal(mask & expand_group_mask(~zero_groups, gran, block, m.shape), mask)
    # idempotent: projecting the pruned matrix again changes nothing
    assert torch.equal(torch.where(prune_mask(p, ratio, f"filter+{unit}", block), p, 0.0), p)


def test_tile_rounding_keeps_whole_tiles_when_the_kept_units_spill_over() -> None:
    assert tile_rounded_count(40, 4, 1, 32) == 8  # 36 kept columns -> 32: one column tile
    assert tile_rounded_count(40, 20, 1, 32) == 20  # 20 columns fit one tile: unchanged
    assert tile_rounded_count(64, 0, 1, 32) == 0  # already on a boundary
    assert tile_rounded_count(16, 4, 25, 128) == 6  # 12 channels x 25 rows = 300 -> 10 (250 rows, 2 tiles)
    assert tile_rounded_count(3, 0, 100, 64) == 1  # 300 rows -> 2 groups (200 rows)
    assert tile_rounded_count(1, 0, 100, 90) == 0  # never fewer than one kept group
    assert tile_rounded_count(10, 2, 1, 0) == 2  # no tile: unchanged
    torch.manual_seed(0)
    m = torch.randn(1, 300, 40)
    tile = TileSize(rows=128, cols=32)
    mask = prune_mask(m, 0.1, "filter+channel", 1, tile)
    assert int(mask.any(dim=-2).sum()) == 32 and int(mask.any(dim=-1).sum()) == 256
    unrounded = prune_mask(m, 0.1, "filter+channel", 1)
    assert int(unrounded.any(dim=-2).sum()) == 36 and int(unrounded.any(dim=-1).sum()) == 270
    filters, filters_unrounded = prune_mask(m, 0.1, "filter", 1, tile), prune_mask(m, 0.1, "filter", 1)
    assert torch.equal(filters & filters_unrounded, filters)  # rounding prunes more of the same ranking
    grouped = torch.randn(2, 300, 40)  # groups share one ranking: no rounding
    assert torch.equal(prune_mask(grouped, 0.1, "filter", 1, tile), prune_mask(grouped, 0.1, "filter", 1))


def test_combined_global_pruning_prunes_filters_then_rows() -> None:
    torch.manual_seed(0)
    mats = {"a": torch.randn(1, 8, 10), "b": torch.randn(1, 6, 4)}
    blocks = {"a": 2, "b": 1}
    masks = global_prune_masks(mats, 0.5, "filter+channel", blocks)
    zero_filters = sum(int((~masks[n].any(dim=-2)).sum()) for n in mats)
    zero_channels = sum(
        int((group_sq_norms(masks[n].float(), "channel", blocks[n]) == 0).sum()) for n in mats
    )
    assert (zero_filters, zero_channels) == (7, 5)  # floor(0.5 * 14 filters), floor(0.5 * (4 + 6) channels)
    assert all(masks[n].any() for n in mats)


def test_global_pruning_keeps_one_group_per_layer_and_hits_total() -> None:
    torch.manual_seed(0)
    mats = {"a": torch.randn(1, 8, 10), "b": 100 * torch.randn(1, 8, 10)}
    masks = global_prune_masks(mats, 0.5, "filter", {"a": 1, "b": 1})
    zeroed = sum(int((~masks[n][0, 0]).sum()) for n in mats)
    assert zeroed == 10
    assert all(bool(masks[n].any()) for n in mats)
    # scale invariance: multiplying a whole layer does not change what is pruned
    masks2 = global_prune_masks({"a": mats["a"], "b": mats["b"] / 100}, 0.5, "filter", {"a": 1, "b": 1})
    assert all(torch.equal(masks[n], masks2[n]) for n in mats)


# ---------------------------------------------------------------------------- combination


@SETTINGS
@given(
    m=matrices(max_rows=12, max_cols=4),
    r=st.sampled_from([1, 2, 4]),
    bits=st.integers(1, 8),
    gran=st.sampled_from(
        ["filter", "channel", "fragment", "rows", "filter+channel", "filter+fragment", "filter+rows"]
    ),
    ratio=st.sampled_from([0.0, 0.3, 0.6]),
    mode=st.sampled_from(["channel", "layer"]),
)
def test_combined_projection_satisfies_every_constraint(
    m: torch.Tensor, r: int, bits: int, gran: str, ratio: float, mode: str
) -> None:
    g, rows, cols = m.shape
    shape = (g * cols, rows, 1, 1)  # a 1x1 conv with `groups` groups
    c = LayerConstraint(
        name="l",
        weight_shape=shape,
        groups=g,
        weight_bits=bits,
        fragment_size=r,
        scale_mode=mode,
        prune_ratio=ratio,
        prune_granularity=gran,
        prune_block=group_block(gran, shape, g, r),
    )
    p = project(m, c)
    assert int(fragment_signs(p.weight_int, r).mixed.sum()) == 0  # polarized
    assert int(p.weight_int.abs().max()) <= max_magnitude(bits)  # quantized
    assert torch.all(p.weight_int[~p.keep] == 0)  # pruned zeros stay zero
    assert torch.allclose(p.matrix, p.weight_int.float() * column_scale(p.scale, m))
    # idempotent (same keep mask): projecting again gives the same matrix. The integers may differ by
    # a common factor when the matrix is exactly representable on several grids (all even k: 2s * k/2).
    again = project(p.matrix, c, keep=p.keep)
    assert torch.allclose(again.matrix, p.matrix, rtol=1e-5, atol=1e-6)
    assert int(fragment_signs(again.weight_int, r).mixed.sum()) == 0


def test_fragments_are_the_geometry_fragments() -> None:
    # a fragment spans rows [k*R, (k+1)*R) of one column; the short last fragment is padded
    m = torch.tensor([[[1.0], [-1.0], [-3.0], [2.0], [-5.0]]])
    p = polarize(m, 2)
    assert torch.equal(p, torch.tensor([[[1.0], [0.0], [-3.0], [0.0], [-5.0]]]))
    assert fragment_view(p, 2).shape == (1, 3, 2, 1)


def test_crossbar_factors_multiply_to_total() -> None:
    w = torch.zeros(1, 300, 200, dtype=torch.int64)
    w[:, :150, :40] = 3
    rep = crossbar_report({"x": w}, 8, CrossbarSpec())
    f = rep["factors"]
    assert f["pruning"] * f["quantization"] * f["polarization"] == pytest.approx(f["total"])
    assert rep["final"]["differential"] == 2 * rep["final"]["polarized"]
    assert rep["layers"][0]["kept_rows"] == [150] and rep["layers"][0]["kept_cols"] == [40]


def test_row_blocks_rounded_to_a_tile_free_polarized_rows() -> None:
    """conv2 of LeNet-5 (150 rows = 18 fragments of 8 and a short one of 6): pruning row blocks, rounded
    to the 128-row tile, empties whole fragments, so the polarized design keeps 128 rows or fewer (one row
    tile) where pruning channels (25 rows each) leaves partly-empty fragments it must keep whole."""
    from forms.compress.counting import fragment_rows

    g = torch.Generator().manual_seed(0)
    m = torch.randn(1, 150, 16, generator=g).abs()  # one sign: every fragment polarized
    m[:, 50:75] *= 0.01  # input channel 2 (rows 50..74) is the weakest
    tile = TileSize(rows=128, cols=32)
    by_rows = torch.where(prune_mask(m, 0.05, "rows", 8, tile), m, 0.0)
    assert fragment_rows(by_rows, 8)[0] <= 128 < 150
    by_channel = torch.where(prune_mask(m, 0.05, "channel", 25, tile), m, 0.0)
    assert int(by_channel.ne(0).any(dim=2).sum()) == 125  # channel 2 of 6 gone
    assert fragment_rows(by_channel, 8)[0] == 134  # rows 48..55 and 72..79 stay whole: two row tiles
