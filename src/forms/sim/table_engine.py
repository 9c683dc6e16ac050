"""The table engine: bit-level runs of deterministic chips through per-pattern tables.

Without read noise every conversion of a step is a function of the row group's digit pattern, so the
ADC outputs and their shift-and-add are tabulated per pattern once per programmed chip
(:class:`forms.sim.lookup.PatternTable`) and a vector costs one table row per (step, row group)
(patterns from :mod:`forms.sim.bitplanes`). It applies when patterns have at most 16 bits (FORMS
fragments; not ISAAC/PRIME's 128-row columns) and the tables fit the layer's entry limit. Where only
some columns can clip, the table covers the layer columns they add to (:func:`build_pattern_table`)
and the exact columns keep the exact GEMM.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from forms.sim.adc import Adc
from forms.sim.bitplanes import (
    MAX_PATTERN_BITS,
    fragment_int_view,
    fragment_patterns,
    int_codes,
    pattern_bits,
)
from forms.sim.boundary import layer_codes
from forms.sim.column_split import BitLevelColumns
from forms.sim.encodings import EncodedLayer
from forms.sim.layer_stats import LayerStats
from forms.sim.lookup import PatternTable, table_size
from forms.sim.quant_inputs import DigitPlan
from forms.sim.workspace import Workspace, vectors_per_chunk
from forms.sim.zeroskip import count_layer_activity


def pattern_table_applies(encoded: EncodedLayer, plan: DigitPlan, read_noise: float, limit: int) -> bool:
    """True without read noise, for patterns of at most 16 bits and tables of at most ``limit`` entries."""
    return (
        read_noise == 0
        and pattern_bits(plan, encoded.group_rows) <= MAX_PATTERN_BITS
        and table_size(encoded.groups, encoded.row_groups, encoded.group_rows, encoded.columns, plan) <= limit
    )


@dataclass(frozen=True)
class LayerTable:
    """A chip's :class:`PatternTable` over the output columns its bit-level columns add to."""

    table: PatternTable
    output_columns: Tensor | None
    """(C_t,) int64 layer column of each table column; None when the table covers every column."""
    folds_input_sum: bool
    """True when the table includes the offset encoding's input-sum term (dense layout), so the
    exact columns' GEMM is not needed."""


def build_pattern_table(
    encoded: EncodedLayer,
    columns: BitLevelColumns,
    every_column: BitLevelColumns,
    adc: Adc,
    plan: DigitPlan,
    integral: bool,
) -> LayerTable | None:
    """The per-pattern tables of the bit-level ``columns`` (None where they would not hold integers).

    A table row is as wide as the layer columns it covers, so compacted risky columns
    (:mod:`forms.sim.column_split`) get a table over just the layer columns they add to, the exact
    columns left to the exact GEMM, when those are at most half the layer's; otherwise (and for
    dense columns) the table covers ``every_column`` (the dense layout), the input-sum term folded
    in, and no exact GEMM is needed.
    """
    g, f, c = encoded.groups, encoded.row_groups, encoded.columns
    if not columns.dense:
        place = columns.signed_place_value.reshape(g * f, -1)
        flip = columns.flip_correction  # (G, F, C)
        used = torch.zeros(c, dtype=torch.bool, device=flip.device)
        used[columns.output_columns.reshape(g * f, -1)[place != 0]] = True
        used |= (flip != 0).reshape(-1, c).any(0)
        layer_columns = used.nonzero().view(-1)
        if 2 * layer_columns.numel() <= c:
            position = torch.zeros(c, dtype=torch.int64, device=flip.device)
            position[layer_columns] = torch.arange(layer_columns.numel(), device=flip.device)
            outputs = position[columns.output_columns.reshape(g * f, -1)]  # padding columns: weight 0
            u_coef = flip[..., layer_columns]
            table = PatternTable.build(columns.cells, place, outputs, u_coef, adc, integral, plan)
            return LayerTable(table, layer_columns, False) if table is not None else None
    k = every_column.cells.shape[-1]
    outputs = (torch.arange(k, device=every_column.cells.device) % c).expand(g * f, k)
    place = every_column.signed_place_value.reshape(g * f, k)
    u_coef = every_column.flip_correction + encoded.input_sum_coefficient
    table = PatternTable.build(every_column.cells, place, outputs, u_coef, adc, integral, plan)
    return LayerTable(table, None, True) if table is not None else None


@dataclass(frozen=True)
class TableEngine:
    """A layer's bit-level run through its chip's :class:`LayerTable`."""

    layer_table: LayerTable
    encoded: EncodedLayer
    plan: DigitPlan

    def run(
        self, codes: Tensor, chunk_elements: int, stats: LayerStats | None, checked: bool = False
    ) -> Tensor:
        """Sums (V, G, C) float64 of ``codes`` (V, G, rows); clips and zero-skips counted into ``stats``.

        Vectors run in chunks holding about ``chunk_elements`` codes, patterns, table lookups (an index
        and a weight each) and outputs per intra-op thread (:func:`vectors_per_chunk`). Raises
        :class:`~forms.errors.ConfigError` for codes that are not finite integers in the plan's range
        or not shaped for the layer; ``checked`` says the caller has checked their values (a crossbar
        array does), so only their shape is checked.
        """
        codes = layer_codes(codes, self.encoded, self.plan, values_checked=checked)
        enc = self.encoded
        g, f, rg = enc.groups, enc.row_groups, enc.group_rows
        steps, v = self.plan.steps, codes.shape[0]
        per_vector = g * (f * (rg + steps) + enc.columns)
        chunk = vectors_per_chunk(chunk_elements, per_vector)
        if stats is not None:  # once over every vector: short chunks would pay its fixed costs each
            stats.zero_skip.add(count_layer_activity(codes, self.plan, enc))
        table, ws = self.layer_table.table, Workspace()
        weights = table.bag_weights(min(chunk, v) * g)  # every chunk's lookup weights: sliced
        outs = []
        for s in range(0, v, chunk):
            frags = fragment_int_view(int_codes(codes[s : s + chunk], self.plan), rg)
            patterns = fragment_patterns(frags, self.plan, ws)
            y, clipped = table.run(patterns, stats is not None, weights, ws)
            if stats is not None:
                stats.clipped += clipped
            outs.append(y)
        width = self.layer_table.table.columns
        y = torch.cat(outs) if outs else codes.new_zeros((0, g, width), dtype=torch.float64)
        layer_columns = self.layer_table.output_columns
        if layer_columns is None:
            return y
        out = y.new_zeros(v, g, enc.columns)
        out[..., layer_columns] = y
        return out
