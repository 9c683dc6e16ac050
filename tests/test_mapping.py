"""Per-layer mapping tables: hand-counted tiles and crossbars, utilization, fragments, ADC widths."""

from __future__ import annotations

import pytest
import torch

from forms.config import CrossbarSpec
from forms.encoding import Encoding
from forms.errors import ConfigError
from forms.intweights import IntegerLayer
from forms.sim.mapping import map_layer, mapping_table
from forms.sim.spec import SimSpec


def spec(encoding: str, rows: int = 128, cols: int = 128, cell_bits: int = 2, **kw: object) -> SimSpec:
    return SimSpec.from_dict({"encoding": encoding, "rows": rows, "cols": cols, "cell_bits": cell_bits, **kw})


def layer(groups: int, rows: int, cols: int, bits: int = 8, r: int = 8, seed: int = 0) -> IntegerLayer:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randint(-((1 << bits) - 1), 1 << bits, (groups, rows, cols), generator=gen)
    return IntegerLayer(
        "fc", w, torch.tensor(0.01), (cols, rows) if groups == 1 else (groups * cols, rows, 1, 1), bits, r
    )


def test_lenet_fc1_hand_counts() -> None:
    fc1 = layer(1, 400, 120)
    pol = map_layer(fc1, spec("polarized", r := 128, 128, 2, fragment_size=8))
    assert (pol.row_tiles, pol.col_tiles, pol.slices, pol.sets, pol.crossbars) == (4, 4, 4, 1, 16)
    assert pol.fragments == 50 * 120
    assert pol.utilization == pytest.approx(400 * 120 * 4 / (16 * r * 128))
    off = map_layer(fc1, spec("offset", 128, 128, 2, fragment_size=8))
    assert (off.slices, off.col_tiles, off.crossbars) == (5, 5, 20)  # 9 bits in 2-bit cells
    dif = map_layer(fc1, spec("differential", 128, 128, 2, fragment_size=8))
    assert (dif.sets, dif.crossbars) == (2, 32)
    assert (pol.adc_group_rows, pol.lossless_adc_bits) == (8, 5)
    assert (off.adc_group_rows, off.lossless_adc_bits) == (128, 9)
    assert map_layer(fc1, spec("offset", 128, 128, 2, fragment_size=8, flipped=True)).lossless_adc_bits == 8


@pytest.mark.parametrize("encoding", ["polarized", "offset", "differential"])
@pytest.mark.parametrize(
    ("groups", "rows", "cols", "cell_bits"), [(1, 27, 16, 2), (4, 9, 8, 1), (1, 300, 200, 4)]
)
def test_crossbars_come_from_the_shared_count(
    encoding: str, groups: int, rows: int, cols: int, cell_bits: int
) -> None:
    m = map_layer(layer(groups, rows, cols), spec(encoding, 128, 64, cell_bits, fragment_size=4))
    xbar = CrossbarSpec(rows=128, cols=64, cell_bits=cell_bits, fragment_size=4)
    assert m.crossbars == Encoding(encoding).crossbar_count(rows, cols, groups, 8, xbar)
    assert 0 < m.utilization <= 1


def test_mixed_sign_fragments_are_counted() -> None:
    w = torch.tensor([[[1], [-1], [2], [3]]])
    lay = IntegerLayer("a", w, torch.tensor(1.0), (1, 4), 4, 4)
    assert map_layer(lay, spec("offset", 4, 4, 2)).mixed_sign_fragments == 1
    assert map_layer(lay, spec("offset", 4, 4, 2, fragment_size=1)).mixed_sign_fragments == 0


def test_table_totals() -> None:
    t = mapping_table([layer(1, 100, 10), layer(1, 50, 5, seed=1)], spec("differential", fragment_size=4))
    assert t.totals()["crossbars"] == sum(row.crossbars for row in t.layers) == t.crossbars
    assert t.totals()["weights"] == 100 * 10 + 50 * 5
    assert t.to_dict()["totals"] == t.totals()


def test_fragment_size_must_divide_rows() -> None:
    with pytest.raises(ConfigError, match="must divide"):
        map_layer(layer(1, 20, 4, r=6), spec("polarized", 128, 128, 2))


def test_cells_wider_than_weights_are_refused() -> None:
    with pytest.raises(ConfigError, match="cell_bits"):
        map_layer(layer(1, 20, 4, bits=2), spec("polarized", 128, 128, 4, fragment_size=4))
