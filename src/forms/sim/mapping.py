"""Per-layer crossbar mapping tables under the three sign encodings.

Counting crossbars is delegated to :func:`forms.geometry.crossbar_count` (the one place both the
simulator and the cost model take it from). Per layer the table gives:

- ``row_tiles`` / ``col_tiles``: tiles per group and crossbar set (a weight's slices sit in adjacent
  columns), ``slices`` cells per weight, ``sets`` crossbar sets (2 for differential);
- ``crossbars``: groups x sets x row tiles x column tiles;
- ``fragments``: sign fragments of R rows (groups x ceil(rows / R) x cols), ``mixed_sign_fragments``;
- ``utilization``: cells holding a weight / cells of the crossbars used (the offset encoding's unit
  column sits beside the data columns and is not counted);
- ``adc_group_rows`` and ``lossless_adc_bits``: rows one conversion sums (R for polarized, the tile
  height otherwise) and the ADC width that converts them exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from forms.config import check_fragment_size
from forms.errors import ConfigError
from forms.geometry import crossbar_count, crossbar_sets, num_row_fragments, slices_per_weight, tile_counts
from forms.intweights import IntegerLayer
from forms.sim.adc import lossless_adc_bits
from forms.sim.encodings import check_bits


@dataclass(frozen=True)
class LayerMapping:
    """Where one layer sits on crossbars under one encoding."""

    name: str
    encoding: str
    groups: int
    rows: int
    cols: int
    weight_bits: int
    fragment_size: int
    slices: int
    sets: int
    row_tiles: int
    col_tiles: int
    crossbars: int
    fragments: int
    mixed_sign_fragments: int
    weights: int
    nonzero_weights: int
    cells_used: int
    utilization: float
    adc_group_rows: int
    lossless_adc_bits: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON."""
        return asdict(self)


def layer_fragment_size(layer: IntegerLayer, crossbar_rows: int, override: int | None) -> int:
    """R for ``layer``: ``override`` when given, else the layer's own; it must divide the crossbar rows."""
    r = override if override is not None else layer.fragment_size
    try:
        check_fragment_size(r, crossbar_rows)
    except ValueError as exc:
        raise ConfigError(f"{layer.name}: {exc} (set --fragment-size)") from None
    return r


def map_layer(
    layer: IntegerLayer,
    encoding: str,
    crossbar_rows: int = 128,
    crossbar_cols: int = 128,
    cell_bits: int = 2,
    dac_bits: int = 1,
    fragment_size: int | None = None,
    flipped: bool = False,
) -> LayerMapping:
    """The :class:`LayerMapping` of one integer layer (see the module docstring for each field)."""
    check_bits(layer.weight_bits, cell_bits, encoding)
    r = layer_fragment_size(layer, crossbar_rows, fragment_size)
    groups, rows, cols = (int(d) for d in layer.weight_int.shape)
    slices = slices_per_weight(encoding, layer.weight_bits, cell_bits)
    sets = crossbar_sets(encoding)
    row_tiles, col_tiles = tile_counts(
        rows, cols, encoding, layer.weight_bits, crossbar_rows, crossbar_cols, cell_bits
    )
    xbars = crossbar_count(
        rows, cols, groups, encoding, layer.weight_bits, crossbar_rows, crossbar_cols, cell_bits
    )
    cells_used = groups * rows * cols * slices * sets
    group_rows = r if encoding == "polarized" else crossbar_rows
    return LayerMapping(
        name=layer.name,
        encoding=encoding,
        groups=groups,
        rows=rows,
        cols=cols,
        weight_bits=layer.weight_bits,
        fragment_size=r,
        slices=slices,
        sets=sets,
        row_tiles=row_tiles,
        col_tiles=col_tiles,
        crossbars=xbars,
        fragments=groups * num_row_fragments(rows, r) * cols,
        mixed_sign_fragments=IntegerLayer(
            layer.name, layer.weight_int, layer.scale, layer.weight_shape, layer.weight_bits, r
        ).mixed_sign_fragments(),
        weights=groups * rows * cols,
        nonzero_weights=int((layer.weight_int != 0).sum()),
        cells_used=cells_used,
        utilization=cells_used / (xbars * crossbar_rows * crossbar_cols) if xbars else 0.0,
        adc_group_rows=group_rows,
        lossless_adc_bits=lossless_adc_bits(group_rows, cell_bits, dac_bits, flipped),
    )


def mapping_table(
    layers: list[IntegerLayer],
    encoding: str,
    crossbar_rows: int = 128,
    crossbar_cols: int = 128,
    cell_bits: int = 2,
    dac_bits: int = 1,
    fragment_size: int | None = None,
    flipped: bool = False,
) -> dict[str, Any]:
    """Mapping of every layer plus totals: ``{"encoding", "layers": [...], "totals": {...}}``."""
    rows = [
        map_layer(layer, encoding, crossbar_rows, crossbar_cols, cell_bits, dac_bits, fragment_size, flipped)
        for layer in layers
    ]
    xbars = sum(m.crossbars for m in rows)
    cells = sum(m.cells_used for m in rows)
    return {
        "encoding": encoding,
        "crossbar": {"rows": crossbar_rows, "cols": crossbar_cols, "cell_bits": cell_bits},
        "layers": [m.to_dict() for m in rows],
        "totals": {
            "crossbars": xbars,
            "cells_used": cells,
            "utilization": cells / (xbars * crossbar_rows * crossbar_cols) if xbars else 0.0,
            "fragments": sum(m.fragments for m in rows),
            "mixed_sign_fragments": sum(m.mixed_sign_fragments for m in rows),
            "weights": sum(m.weights for m in rows),
            "nonzero_weights": sum(m.nonzero_weights for m in rows),
        },
    }
