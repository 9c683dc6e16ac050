"""Separate filter and row-unit ratios in one layer: prune.layer_ratios {name: {filter: r, channel: s}}."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from forms.cli.compress import layer_ratios
from forms.compress.constraints import layer_constraints
from forms.compress.projections import group_sq_norms, project, prune_mask
from forms.compress.result import LayerRecord
from forms.compress.spec import CompressSpec
from forms.errors import ConfigError

RATIO = st.floats(0.0, 0.95, allow_nan=False)


def _kept(n: int, ratio: float) -> int:
    """Groups kept of n at ``ratio``: n - floor(ratio * n), at least one."""
    return n - min(math.floor(ratio * n + 1e-9), n - 1)


def _nonzero_groups(matrix: torch.Tensor, unit: str, block: int) -> int:
    return int((group_sq_norms(matrix, unit, block) > 0).sum())


@settings(max_examples=80, deadline=None)
@given(
    channels=st.integers(1, 12),
    block=st.sampled_from([1, 4, 9]),
    cols=st.integers(1, 20),
    row_unit=st.sampled_from(["channel", "fragment"]),
    filter_ratio=RATIO,
    row_ratio=RATIO,
    seed=st.integers(0, 2**31),
)
def test_masks_with_two_ratios_are_feasible_and_idempotent(
    channels: int, block: int, cols: int, row_unit: str, filter_ratio: float, row_ratio: float, seed: int
) -> None:
    matrix = torch.randn(1, channels * block, cols, generator=torch.Generator().manual_seed(seed))
    ratios = {"filter": filter_ratio, row_unit: row_ratio}
    granularity = f"filter+{row_unit}"
    keep = prune_mask(matrix, max(ratios.values()), granularity, block, unit_ratios=ratios)
    pruned = matrix * keep
    filters = _kept(cols, filter_ratio)
    if row_unit == "channel":  # each unit keeps exactly its own count
        assert _nonzero_groups(pruned, "filter", block) == filters
        assert _nonzero_groups(pruned, "channel", block) == _kept(channels, row_ratio)
    else:  # fragments of pruned filters are zero already and count among the pruned; a filter may lose all
        assert _nonzero_groups(pruned, "fragment", block) == min(
            filters * channels, _kept(channels * cols, row_ratio)
        )
        assert _nonzero_groups(pruned, "filter", block) <= filters
    again = prune_mask(pruned, max(ratios.values()), granularity, block, unit_ratios=ratios)
    assert torch.equal(pruned * again, pruned)  # projecting a feasible matrix changes nothing


def _mlp() -> nn.Module:
    """fc 800 -> 500 between two others (the first and last mapped layers are not pruned by default)."""
    return nn.Sequential(nn.Linear(10, 800), nn.ReLU(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))


def test_an_fc_800x500_keeps_the_hand_computed_rows_and_columns() -> None:
    """filter 0.9 prunes floor(0.9 * 500) = 450 of 500 columns, channel 0.3 floor(0.3 * 800) = 240 of 800
    rows: 560 x 50 = 28,000 weights kept, where one ratio of 0.9 for both would keep 80 x 50 = 4,000."""
    spec = CompressSpec.model_validate(
        {
            "quant": {"scale_method": "maxabs"},
            "prune": {
                "granularity": "filter+channel",
                "layer_ratios": {"2": {"filter": 0.9, "channel": 0.3}},
            },
        }
    )
    model = _mlp()
    constraint = {c.name: c for c in layer_constraints(model, spec)}["2"]
    assert constraint.prune_ratio == 0.9 and dict(constraint.prune_unit_ratios) == {
        "filter": 0.9,
        "channel": 0.3,
    }
    keep = project(model[2].weight.detach().T.unsqueeze(0), constraint).keep
    assert int(keep.sum()) == 560 * 50
    assert int(keep.any(dim=1).sum()) == 50 and int(keep.any(dim=2).sum()) == 560
    both = CompressSpec.model_validate(
        {
            "quant": {"scale_method": "maxabs"},
            "prune": {"granularity": "filter+channel", "layer_ratios": {"2": 0.9}},
        }
    )
    single = {c.name: c for c in layer_constraints(model, both)}["2"]
    assert (
        single.prune_unit_ratios == ()
        and int(project(model[2].weight.detach().T.unsqueeze(0), single).keep.sum()) == 4000
    )


def test_a_conv_layer_counts_channels_in_kernel_rows() -> None:
    """Conv 6 -> 16, 5x5: filter 0.5 keeps 8 of 16 columns; channel 1/3 prunes floor(2) of 6 channels,
    keeping 4 x 25 = 100 rows: 800 weights. A unit left out of the mapping is not pruned."""
    model = nn.Sequential(nn.Conv2d(1, 6, 3), nn.Conv2d(6, 16, 5), nn.Flatten(), nn.LazyLinear(3))
    model(torch.zeros(1, 1, 12, 12))
    for ratios, kept in (({"filter": 0.5, "channel": 1 / 3}, 800), ({"channel": 1 / 3}, 1600)):
        spec = CompressSpec.model_validate(
            {"prune": {"granularity": "filter+channel", "layer_ratios": {"1": ratios}}}
        )
        constraint = {c.name: c for c in layer_constraints(model, spec)}["1"]
        matrix = model[1].weight.detach().reshape(16, 150).T.unsqueeze(0)
        assert int(project(matrix, constraint).keep.sum()) == kept


def test_tile_rounding_leaves_a_unit_at_ratio_0_unpruned() -> None:
    """50 channels x 25 kernel rows = 1250 rows spill past 9 crossbar tiles of 128; rounding would keep
    46 channels (1150 rows), but a channel ratio of 0 means no channel is pruned, not even to round.
    The filter unit still rounds: 40 columns at 0.5 keep 20, within one 64-column tile."""
    from forms.compress.projections import TileSize

    matrix = torch.randn(1, 1250, 40, generator=torch.Generator().manual_seed(0))
    keep = prune_mask(matrix, 0.5, "filter+channel", 25, TileSize(128, 64), {"filter": 0.5, "channel": 0.0})
    assert int(keep[0].any(dim=1).sum()) == 1250
    assert int(keep[0].any(dim=0).sum()) == 20
    rounded = prune_mask(
        matrix, 0.5, "filter+channel", 25, TileSize(128, 64), {"filter": 0.5, "channel": 0.01}
    )
    assert int(rounded[0].any(dim=1).sum()) == 1150  # a positive ratio rounds down to the tile boundary


def test_the_cli_spelling_and_its_errors() -> None:
    parsed = layer_ratios(["classifier.1=filter:0.9,channel:0.3", "features.3=0.5"])
    assert parsed == {"classifier.1": {"filter": "0.9", "channel": "0.3"}, "features.3": "0.5"}
    spec = CompressSpec().with_overrides(
        {"prune.granularity": "filter+channel", "prune.layer_ratios": parsed}
    )
    assert spec.prune.unit_ratios("classifier.1") == {"filter": 0.9, "channel": 0.3}
    assert spec.prune.unit_ratios("features.3") == {"filter": 0.5, "channel": 0.5}
    with pytest.raises(ConfigError, match="UNIT:RATIO"):
        layer_ratios(["classifier.1=filter0.9,channel:0.3"])
    with pytest.raises(ConfigError, match="does not prune; set the granularity"):
        CompressSpec().with_overrides({"prune.layer_ratios": {"a": {"channel": 0.3}}})  # granularity filter
    with pytest.raises(ConfigError, match=r"filter ratio of layer 'a' must lie in \[0, 1\)"):
        CompressSpec().with_overrides(
            {"prune.granularity": "filter+channel", "prune.layer_ratios": {"a": {"filter": 1.0}}}
        )


def test_a_mapping_for_an_excluded_layer_names_the_option() -> None:
    spec = CompressSpec.model_validate(
        {"prune": {"granularity": "filter+channel", "layer_ratios": {"0": {"filter": 0.0, "channel": 0.5}}}}
    )
    with pytest.raises(ConfigError, match=r"prune\.first_layer"):
        layer_constraints(_mlp(), spec)


def test_the_layer_record_keeps_unit_ratios_and_reads_old_records() -> None:
    record = LayerRecord("2", [500, 800], 8, 0.9, 0.94, 127, {"filter": 0.9, "channel": 0.3})
    assert LayerRecord.from_dict(record.to_dict()) == record
    old = LayerRecord("2", [500, 800], 8, 0.5, 0.75, 127)
    assert "prune_unit_ratios" not in old.to_dict() and LayerRecord.from_dict(old.to_dict()) == old
