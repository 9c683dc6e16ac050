"""Per-layer crossbar mapping tables under the three sign encodings.

Counting crossbars is delegated to :meth:`forms.encoding.Encoding.crossbar_count` (the one place both
the simulator and the cost model take it from). Per layer the table gives:

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

from forms.config import CrossbarSpec, check_fragment_size
from forms.encoding import Encoding, lossless_adc_bits
from forms.errors import ConfigError
from forms.geometry import num_row_fragments
from forms.intweights import IntegerLayer
from forms.sim.spec import SimSpec


@dataclass(frozen=True)
class LayerMapping:
    """Where one layer sits on crossbars under one encoding."""

    name: str
    encoding: Encoding
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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerMapping:
        """Read back :meth:`to_dict`."""
        return cls(**{**data, "encoding": Encoding(data["encoding"])})


def layer_fragment_size(layer: IntegerLayer, crossbar_rows: int, override: int | None) -> int:
    """R for ``layer``: ``override`` when given, else the layer's own; it must divide the crossbar rows."""
    r = override if override is not None else layer.fragment_size
    try:
        check_fragment_size(r, crossbar_rows)
    except ValueError as exc:
        raise ConfigError(f"{layer.name}: {exc} (set --fragment-size)") from None
    return r


def layer_crossbar(layer: IntegerLayer, spec: SimSpec) -> CrossbarSpec:
    """The crossbar ``layer`` runs on: ``spec``'s geometry with the layer's R (or ``spec``'s override)."""
    return spec.crossbar(layer_fragment_size(layer, spec.rows, spec.fragment_size))


def map_layer(layer: IntegerLayer, spec: SimSpec) -> LayerMapping:
    """The :class:`LayerMapping` of one integer layer under ``spec`` (fields: see the module docstring)."""
    encoding = spec.encoding
    encoding.check_widths(layer.weight_bits, spec.cell_bits)
    xbar = layer_crossbar(layer, spec)
    r = xbar.fragment_size
    groups, rows, cols = (int(d) for d in layer.weight_int.shape)
    slices = encoding.slices(layer.weight_bits, xbar.cell_bits)
    row_tiles, col_tiles = encoding.tile_counts(rows, cols, layer.weight_bits, xbar)
    xbars = encoding.crossbar_count(rows, cols, groups, layer.weight_bits, xbar)
    cells_used = groups * rows * cols * slices * encoding.crossbar_sets
    group_rows = encoding.rows_per_conversion(xbar.rows, r)
    return LayerMapping(
        name=layer.name,
        encoding=encoding,
        groups=groups,
        rows=rows,
        cols=cols,
        weight_bits=layer.weight_bits,
        fragment_size=r,
        slices=slices,
        sets=encoding.crossbar_sets,
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
        utilization=cells_used / (xbars * xbar.rows * xbar.cols) if xbars else 0.0,
        adc_group_rows=group_rows,
        lossless_adc_bits=lossless_adc_bits(group_rows, xbar.cell_bits, spec.dac_bits, spec.flipped),
    )


@dataclass(frozen=True)
class MappingTable:
    """Every layer's :class:`LayerMapping` under one encoding, with totals (``mapping`` in metrics.json)."""

    encoding: Encoding
    crossbar_rows: int
    crossbar_cols: int
    cell_bits: int
    layers: tuple[LayerMapping, ...]

    @property
    def crossbars(self) -> int:
        """Crossbars of all layers."""
        return sum(m.crossbars for m in self.layers)

    def totals(self) -> dict[str, Any]:
        """Sums over the layers, and the utilization of the crossbars they take."""
        xbars, cells = self.crossbars, sum(m.cells_used for m in self.layers)
        return {
            "crossbars": xbars,
            "cells_used": cells,
            "utilization": cells / (xbars * self.crossbar_rows * self.crossbar_cols) if xbars else 0.0,
            "fragments": sum(m.fragments for m in self.layers),
            "mixed_sign_fragments": sum(m.mixed_sign_fragments for m in self.layers),
            "weights": sum(m.weights for m in self.layers),
            "nonzero_weights": sum(m.nonzero_weights for m in self.layers),
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form: ``{"encoding", "crossbar", "layers": [...], "totals": {...}}``."""
        return {
            "encoding": self.encoding,
            "crossbar": {"rows": self.crossbar_rows, "cols": self.crossbar_cols, "cell_bits": self.cell_bits},
            "layers": [m.to_dict() for m in self.layers],
            "totals": self.totals(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MappingTable:
        """Read back :meth:`to_dict` (the totals are recomputed from the layers)."""
        crossbar = data["crossbar"]
        return cls(
            Encoding(data["encoding"]),
            crossbar["rows"],
            crossbar["cols"],
            crossbar["cell_bits"],
            tuple(LayerMapping.from_dict(m) for m in data["layers"]),
        )


def mapping_table(layers: list[IntegerLayer], spec: SimSpec) -> MappingTable:
    """The :class:`MappingTable` of ``layers`` under ``spec``."""
    return MappingTable(
        spec.encoding, spec.rows, spec.cols, spec.cell_bits, tuple(map_layer(layer, spec) for layer in layers)
    )
