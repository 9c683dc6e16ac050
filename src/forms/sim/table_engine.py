"""The table engine: bit-level runs of deterministic chips through per-pattern tables.

Without read noise every conversion of a step is a function of the row group's digit pattern, so the
ADC outputs and their shift-and-add are tabulated per pattern once per programmed chip
(:class:`forms.sim.lookup.PatternTable`) and a vector costs one table row per (step, row group)
(patterns from :mod:`forms.sim.bitplanes`). It applies when patterns have at most 16 bits (FORMS
fragments; not ISAAC/PRIME's 128-row columns) and the tables fit the layer's entry limit.
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
from forms.sim.column_split import ChipColumns
from forms.sim.encodings import EncodedLayer
from forms.sim.layer_stats import LayerStats
from forms.sim.lookup import PatternTable, table_size
from forms.sim.quant_inputs import DigitPlan
from forms.sim.zeroskip import count_fragments


def pattern_table_applies(encoded: EncodedLayer, plan: DigitPlan, read_noise: float, limit: int) -> bool:
    """True without read noise, for patterns of at most 16 bits and tables of at most ``limit`` entries."""
    return (
        read_noise == 0
        and pattern_bits(plan, encoded.group_rows) <= MAX_PATTERN_BITS
        and table_size(encoded.groups, encoded.row_groups, encoded.group_rows, encoded.columns, plan) <= limit
    )


def build_pattern_table(
    encoded: EncodedLayer, chip: ChipColumns, adc: Adc, plan: DigitPlan, integral: bool
) -> PatternTable | None:
    """The per-pattern tables of ``chip`` (None where they would not hold integers)."""
    g, f, rg, c, q = encoded.cells.shape
    u_coef = chip.flip_weight.sum(2) + encoded.input_sum_coefficient
    return PatternTable.build(
        chip.levels.view(g, f, rg, q, c), chip.signed_place_value, u_coef, adc, integral, plan
    )


@dataclass(frozen=True)
class TableEngine:
    """A layer's bit-level run through its chip's :class:`PatternTable`."""

    table: PatternTable
    encoded: EncodedLayer
    plan: DigitPlan

    def run(self, codes: Tensor, chunk_elements: int, stats: LayerStats | None) -> Tensor:
        """Sums (V, G, C) float64 of ``codes`` (V, G, rows); clips and zero-skips counted into ``stats``.

        Raises :class:`~forms.errors.ConfigError` for codes that are not finite integers in the plan's
        range or not shaped for the layer.
        """
        codes = layer_codes(codes, self.encoded, self.plan)
        enc = self.encoded
        g, f, rg = enc.groups, enc.row_groups, enc.group_rows
        steps, v = self.plan.steps, codes.shape[0]
        per_vector = g * (f * rg * 8 + f * steps * 3 + steps * enc.columns)
        chunk = max(1, chunk_elements // per_vector)
        outs = []
        for s in range(0, v, chunk):
            u = int_codes(codes[s : s + chunk], self.plan)
            frags = fragment_int_view(u, rg)
            if stats is not None:
                r = enc.fragment_size  # rows per zero-skip sub-array
                sub = frags if r == rg else fragment_int_view(u, r)
                stats.zero_skip.add(count_fragments(sub, self.plan))
            y, clipped = self.table.run(fragment_patterns(frags, self.plan), stats is not None)
            if stats is not None:
                stats.clipped += clipped
            outs.append(y)
        return torch.cat(outs) if outs else codes.new_zeros((0, g, enc.columns), dtype=torch.float64)
