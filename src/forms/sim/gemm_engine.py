"""The bit-level GEMM engine: every (step, row group, column, slice) partial sum, converted and reduced.

It runs wherever a chip's conversions are not provably exact and the per-pattern tables of
:mod:`forms.sim.table_engine` do not apply (always with read noise). Input digits go into the batch
dimension and cells are laid out as (groups x row groups, group rows, converted columns)
(:mod:`forms.sim.column_split`), so one batched GEMM yields every partial sum; where patterns are
small, the partial sums (and read-noise sigmas) are looked up per digit pattern instead
(:class:`forms.sim.lookup.PartialSumTables`). Read noise is added, the ADC clips/quantizes
elementwise, and the shift-and-add reduces with 2^(k*cell_bits), fragment/set/flip signs and the
digit weights coef * 2^shift; flipped columns add M * U back. Work is chunked over vectors so at most
``chunk_elements`` partial sums are held at once.
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
from forms.sim.devices import add_read_noise_, add_read_noise_sigma_
from forms.sim.encodings import EncodedLayer
from forms.sim.integer_gemm import exact_float_dtype
from forms.sim.layer_stats import LayerStats
from forms.sim.lookup import PartialSumTables
from forms.sim.quant_inputs import DigitPlan


def gemm_dtype(encoded: EncodedLayer, plan: DigitPlan) -> torch.dtype:
    """Dtype of the partial sums: exact for a row group's largest sum, Rg * M * max_digit."""
    return exact_float_dtype(encoded.group_rows * encoded.cell_max * plan.max_digit)


def partial_sum_tables(
    encoded: EncodedLayer, plan: DigitPlan, columns: BitLevelColumns, read_noise: float, limit: int
) -> PartialSumTables | None:
    """Per-pattern partial sums of ``columns``, or None when patterns exceed 16 bits or the tables
    (partial sums and sigmas) would exceed ``limit`` entries."""
    bits = pattern_bits(plan, encoded.group_rows)
    entries = 2 * encoded.groups * encoded.row_groups * (1 << bits) * columns.count
    if bits > MAX_PATTERN_BITS or entries > limit:
        return None
    gsq = columns.conductance_sq
    return PartialSumTables.build(
        columns.cells, gsq if gsq.numel() else None, read_noise, max(plan.widths), gemm_dtype(encoded, plan)
    )


@dataclass(frozen=True)
class GemmEngine:
    """The GEMM engine of one programmed chip's bit-level columns."""

    encoded: EncodedLayer
    plan: DigitPlan
    adc: Adc
    columns: BitLevelColumns
    read_noise: float
    """Relative per-read noise (0: none)."""
    integral: bool
    """True when the programmed levels are exact integers."""
    generator: torch.Generator | None
    """The chip's generator, drawing read noise."""
    tables: PartialSumTables | None
    """Per-pattern partial sums (:func:`partial_sum_tables`), or None to compute them by GEMM."""

    def run(self, codes: Tensor, chunk_elements: int, stats: LayerStats | None) -> Tensor:
        """Bit-level sums (V, G, C) float64 of ``codes`` (V, G, rows) over the engine's columns.

        Clipped conversions are added to ``stats`` when given. Raises :class:`~forms.errors.ConfigError`
        for codes that are not finite integers in the plan's range or not shaped for the layer.
        """
        codes = layer_codes(codes, self.encoded, self.plan)
        enc, plan = self.encoded, self.plan
        per_vector = plan.steps * enc.groups * (enc.row_groups * self.columns.count + enc.columns)
        chunk = max(1, chunk_elements // max(1, per_vector))
        outs = [self._run_chunk(codes[s : s + chunk], stats) for s in range(0, codes.shape[0], chunk)]
        if not outs:
            return codes.new_zeros((0, enc.groups, enc.columns), dtype=torch.float64)
        return torch.cat(outs)

    def _run_chunk(self, codes: Tensor, stats: LayerStats | None) -> Tensor:
        enc, plan = self.encoded, self.plan
        g, c, nd, v = enc.groups, enc.columns, plan.steps, codes.shape[0]
        dtype = gemm_dtype(enc, plan)
        partial, digit_sum = self._partial_sums(codes, dtype)
        partial = partial.to(torch.promote_types(dtype, self._converted_dtype()))
        clipped = self.adc.convert_(partial, integral=self.integral and self.read_noise == 0)
        if stats is not None:
            stats.clipped += int(torch.count_nonzero(clipped))
        del clipped
        red = self._shift_and_add(partial)
        del partial
        if bool(self.columns.flip_correction.any()):
            u = digit_sum.to(torch.float64)  # (G, F, nd*V)
            red = red + torch.einsum("gfn,gfc->gnc", u, self.columns.flip_correction)
        weights = plan.digit_weights(device=red.device).view(1, nd, 1, 1)
        return (red.view(g, nd, v, c) * weights).sum(1).transpose(0, 1)  # (V, G, C)

    def _partial_sums(self, codes: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Noisy analog partial sums (G*F, nd*V, K) and digit sums U (G, F, nd*V) of ``codes``."""
        enc, plan = self.encoded, self.plan
        if self.tables is not None:  # partial sums and noise sigmas looked up per digit pattern
            patterns = fragment_patterns(fragment_int_view(int_codes(codes, plan), enc.group_rows), plan)
            partial, sigma, digit_sum = self.tables.gather(patterns)
            if sigma is not None:
                add_read_noise_sigma_(partial, sigma, self.generator)
            return partial, digit_sum
        g, f, rg = enc.groups, enc.row_groups, enc.group_rows
        nd, v = plan.steps, codes.shape[0]
        digits = plan.digits(codes).to(dtype)  # (nd, V, G, rows)
        pad = f * rg - enc.rows
        if pad:
            digits = torch.nn.functional.pad(digits, (0, pad))
        digits = digits.reshape(nd, v, g, f, rg).permute(2, 3, 0, 1, 4).reshape(g * f, nd * v, rg)
        digit_sum = digits.view(g, f, nd * v, rg).sum(-1)
        partial = torch.bmm(digits, self.columns.cells.to(dtype))  # (G*F, nd*V, K)
        if self.read_noise > 0:
            variance = torch.bmm(digits.square(), self.columns.conductance_sq.to(dtype))
            add_read_noise_(partial, variance, self.read_noise, self.generator)
        return partial, digit_sum

    def _converted_dtype(self) -> torch.dtype:
        """Dtype exact for the converted values and one step's shift-and-add of them: multiples of the
        ADC's grid up to F * max sum of |place values| * ADC full scale (:func:`exact_float_dtype`)."""
        g, f = self.encoded.groups, self.encoded.row_groups
        mult = self.columns.signed_place_value
        bound = f * float(mult.abs().reshape(g, f, -1).sum(-1).max()) * self.adc.full_scale
        return exact_float_dtype(bound, self.adc.grid)

    def _shift_and_add(self, partial: Tensor) -> Tensor:
        """Converted partial sums (G*F, nd*V, K) -> (G, nd*V, C) float64, weighted and summed over
        row groups and slices/sets (IN PLACE on ``partial``)."""
        enc, cols = self.encoded, self.columns
        g, f, c, n = enc.groups, enc.row_groups, enc.columns, partial.shape[1]
        mult = cols.signed_place_value.to(partial.dtype)
        if cols.dense:
            q = enc.physical_columns
            dense = partial.view(g, f, n, q, c)
            dense.mul_(mult.view(g, f, 1, q, c))
            return dense.sum(1).sum(2).to(torch.float64)  # outer-dimension sums are fast
        k = cols.count
        compact = partial.view(g, f, n, k)
        compact.mul_(mult.view(g, f, 1, k))
        # (row group, risky column) pairs side by side, then one scatter-add onto the C outputs
        flat = compact.permute(0, 2, 1, 3).reshape(g, n, f * k)
        index = cols.output_columns.reshape(g, 1, f * k).expand(g, n, f * k)
        out = torch.zeros(g, n, c, dtype=partial.dtype, device=partial.device)
        return out.scatter_add_(2, index, flat).to(torch.float64)
