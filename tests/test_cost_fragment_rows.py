"""Each design is costed on the rows it can drop: whole fragments for FORMS, compacted rows otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forms.cost.arch import load_arch
from forms.cost.estimate import estimate
from forms.cost.fragment_use import COUNTED_FRAGMENT_SIZES, FragmentUse, StoredLayer
from forms.cost.layer_shapes import LayerShape, ModelShapes, Workload, apply_sparsity
from forms.encoding import Encoding
from forms.errors import ConfigError
from forms.geometry import LayerGeometry
from forms.intweights import IntegerLayer

IN_CHANNELS, OUT_CHANNELS, KERNEL = 16, 16, 3
ROWS = IN_CHANNELS * KERNEL * KERNEL
"""A 3x3 conv of 16 input channels: 144 crossbar rows, input channel c on rows 9c .. 9c + 8."""
WEIGHT_SHAPE = (OUT_CHANNELS, IN_CHANNELS, KERNEL, KERNEL)


def _shapes(rows: int = ROWS, cols: int = OUT_CHANNELS) -> ModelShapes:
    geom = LayerGeometry("conv", "conv", (cols, rows, 1, 1), 1, rows, cols)
    return ModelShapes((1, 1, 1), (LayerShape(geom, 4, rows * 4, cols * 4, rows, cols),), 0)


def _compressed(
    weight_int: torch.Tensor, fragment_sizes: tuple[int, ...] = COUNTED_FRAGMENT_SIZES
) -> LayerShape:
    """The layer shape apply_sparsity gives for integer matrices (1, rows, cols) of a (cols, rows) weight."""
    _, rows, cols = weight_int.shape
    layer = IntegerLayer("conv", weight_int, torch.tensor(1.0), (cols, rows, 1, 1), 8, 8)
    shapes, notes = apply_sparsity(_shapes(rows, cols), [layer], fragment_sizes)
    assert not notes
    return shapes.layers[0]


def _pruned_channel(channel: int) -> torch.Tensor:
    """Positive integers of the 144 x 16 conv with input ``channel``'s 9 rows pruned."""
    w = torch.ones(1, ROWS, OUT_CHANNELS, dtype=torch.int64)
    w[:, 9 * channel : 9 * channel + 9, :] = 0
    return w


def _estimated_rows(layer: LayerShape, arch: str) -> tuple[int, int]:
    """(rows used, crossbars) of ``layer`` on preset ``arch``."""
    est = estimate(load_arch(arch), Workload(ModelShapes((1, 1, 1), (layer,), 0)))
    return est.layers[0].rows_used, est.crossbars_needed


def test_rows_of_a_pruned_channel_inside_fragments_are_kept_by_forms_only() -> None:
    layer = _compressed(_pruned_channel(1))  # rows 9..17: fragments 8..15 and 16..23 keep non-zero rows
    assert layer.rows_used == ROWS - 9
    assert _estimated_rows(layer, "forms-8")[0] == ROWS
    assert _estimated_rows(layer, "isaac-opt")[0] == ROWS - 9
    assert _estimated_rows(layer, "prime")[0] == ROWS - 9
    assert layer.stored(Encoding.POLARIZED, 8).rows == ROWS
    assert layer.stored(Encoding.POLARIZED, 1).rows == ROWS - 9  # R = 1: every row its own sign


def test_a_whole_zero_fragment_is_dropped_by_every_design() -> None:
    w = torch.ones(1, ROWS, OUT_CHANNELS, dtype=torch.int64)
    w[:, 16:24, :] = 0  # exactly the third fragment of 8 rows
    layer = _compressed(w)
    for arch in ("forms-8", "isaac-opt", "prime"):
        assert _estimated_rows(layer, arch)[0] == ROWS - 8, arch


def test_the_crossbars_follow_the_kept_rows() -> None:
    w = torch.ones(1, 256, 32, dtype=torch.int64)
    w[:, 1::2, :] = 0  # every other row: 128 compacted rows, but every fragment of 8 holds a weight
    layer = _compressed(w)
    forms = load_arch("forms-8")
    expected = forms.encoding.crossbar_count(256, 32, 1, forms.weight_bits, forms.crossbar)
    assert _estimated_rows(layer, "forms-8") == (256, expected)
    assert expected == 2  # two row tiles of 128 rows: the compacted 128 rows would need one


def test_mixed_sign_fragments_are_costed_on_two_sets_and_named() -> None:
    w = _pruned_channel(1)
    w[:, 0, 0] = -1  # fragment 0..7 of column 0 (and every fragment holding it) mixes signs
    layer = _compressed(w)
    arch = load_arch("forms-8")
    est = estimate(arch, Workload(ModelShapes((1, 1, 1), (layer,), 0)))
    differential = Encoding.DIFFERENTIAL.crossbar_count(
        ROWS - 9, OUT_CHANNELS, 1, arch.weight_bits, arch.crossbar
    )
    assert (est.layers[0].rows_used, est.crossbars_needed) == (ROWS - 9, differential)
    assert est.layers[0].mvms == 4 * 2 * 2  # 4 positions x 2 row tiles (135 rows) x 2 sets
    assert any("both signs" in a and "(conv)" in a for a in est.assumptions)
    stored = layer.stored(Encoding.POLARIZED, 8)
    assert stored.mixed and stored.encoding is Encoding.DIFFERENTIAL
    one_row = StoredLayer(ROWS - 9, Encoding.POLARIZED, mixed=False)
    assert layer.stored(Encoding.POLARIZED, 1) == one_row  # one row per fragment never mixes signs
    clean = estimate(arch, Workload(ModelShapes((1, 1, 1), (_compressed(_pruned_channel(1)),), 0)))
    assert not any("both signs" in a for a in clean.assumptions)


def test_a_polarized_design_at_an_uncounted_fragment_size_is_refused() -> None:
    layer = _compressed(_pruned_channel(1), fragment_sizes=(8,))
    assert _estimated_rows(layer, "forms-8")[0] == ROWS
    with pytest.raises(ConfigError, match="R=16"):
        estimate(load_arch("forms-16"), Workload(ModelShapes((1, 1, 1), (layer,), 0)))
    assert _estimated_rows(layer, "isaac-opt")[0] == ROWS - 9  # offset designs need no fragment count


def test_dense_shapes_keep_every_row_for_every_design() -> None:
    layer = _shapes().layers[0]
    assert layer.fragment_use == ()
    for encoding in Encoding:
        assert layer.stored(encoding, 8).rows == ROWS


def test_fragment_use_survives_the_plain_dict_form() -> None:
    layer = _compressed(_pruned_channel(3))
    assert LayerShape.from_dict(layer.to_dict()) == layer
    dense = _shapes().layers[0].to_dict()
    del dense["fragment_use"]  # a record written before fragment_use was kept (the zoo shape table)
    assert LayerShape.from_dict(dense) == _shapes().layers[0]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 70),
    fragment_size=st.sampled_from([1, 2, 4, 8, 16]),
    seed=st.integers(0, 2**16),
)
def test_polarized_rows_cover_the_compacted_rows(rows: int, fragment_size: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    w = torch.randint(0, 3, (1, rows, 3), generator=generator)
    w[:, torch.rand(rows, generator=generator) < 0.5, :] = 0  # whole rows pruned
    layer = _compressed(w, fragment_sizes=(fragment_size,))
    polarized = layer.stored(Encoding.POLARIZED, fragment_size).rows
    assert layer.rows_used <= polarized <= rows
    assert layer.stored(Encoding.OFFSET, rows).rows == layer.rows_used
    assert layer.stored(Encoding.DIFFERENTIAL, rows).rows == layer.rows_used


@settings(max_examples=60, deadline=None)
@given(
    fragments=st.integers(1, 12),
    fragment_size=st.sampled_from([1, 2, 4, 8]),
    seed=st.integers(0, 2**16),
)
def test_polarized_rows_equal_the_compacted_ones_when_zeros_fill_aligned_fragments(
    fragments: int, fragment_size: int, seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    rows = fragments * fragment_size
    w = torch.randint(1, 4, (1, rows, 3), generator=generator)  # every row non-zero ...
    zero_fragments = torch.rand(fragments, generator=generator) < 0.5
    w[:, zero_fragments.repeat_interleave(fragment_size), :] = 0  # ... but whole aligned fragments
    layer = _compressed(w, fragment_sizes=(fragment_size,))
    assert layer.fragment_use == (FragmentUse(fragment_size, layer.rows_used, mixed=False),)
    assert layer.stored(Encoding.POLARIZED, fragment_size).rows == layer.rows_used


def test_a_checkpoint_workload_counts_the_fragment_size_it_is_costed_at(tmp_path: Path) -> None:
    """A polarized design of a fragment size outside the default counts (R = 12 on 96-row crossbars) is
    costed once the workload is built for it, as the CLI builds it for every --arch."""
    from _simhelpers import compressed_lenet5_checkpoint
    from forms.cost.layer_shapes import zoo_workload

    assert 12 not in COUNTED_FRAGMENT_SIZES
    checkpoint = str(compressed_lenet5_checkpoint(tmp_path / "c.pt", fragment_size=4))
    from forms.cost.arch import ArchSpec
    from forms.experiments.sweep_plan import with_arch_fields

    settings = [("crossbar.rows", 96), ("crossbar.fragment_size", 12)]
    arch = with_arch_fields(ArchSpec, load_arch("forms-8").model_dump(), settings, "R = 12")
    workload = zoo_workload(None, checkpoint=checkpoint, fragment_sizes=[12])
    est = estimate(arch, workload)
    assert est.layers and all(layer.crossbars >= 1 for layer in est.layers)
