"""The bit-level GEMM engine: every (step, row group, column, slice) partial sum, converted and reduced.

It runs wherever a chip's conversions are not provably exact and the per-pattern tables of
:mod:`forms.sim.table_engine` do not apply (always with read noise). Input digits go into the batch
dimension and cells are laid out as (groups x row groups, group rows, converted columns)
(:mod:`forms.sim.column_split`), so one batched GEMM yields every partial sum; where patterns are
small, the partial sums (and read-noise sigmas) are looked up per digit pattern instead
(:class:`forms.sim.lookup.PartialSumTables`). Read noise is added, the ADC clips/quantizes
elementwise, and the shift-and-add reduces with 2^(k*cell_bits), fragment/set/flip signs and the
digit weights coef * 2^shift; flipped columns add M * U back. Work is chunked over vectors so at most
``chunk_elements`` partial sums are held at once (per intra-op thread on the signed-slice path).

Where every conversion is provably the identity (a forced bit-level run of a lossless chip) the
engine instead adds, inside the GEMM, the partial sums the shift-and-add adds with one place value
(:mod:`forms.sim.slice_lanes`): the same result, bit for bit, at issue 20's floor of input steps x
slices GEMMs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from forms.sim.adc import Adc
from forms.sim.bitplanes import (
    MAX_PATTERN_BITS,
    digit_planes,
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
from forms.sim.packed_fields import PackedColumns, pack_columns
from forms.sim.quant_inputs import DigitPlan
from forms.sim.slice_lanes import SliceLanes
from forms.sim.workspace import Workspace


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


def packed_columns(
    plan: DigitPlan, columns: BitLevelColumns, read_noise: float, integral: bool
) -> PackedColumns | None:
    """``columns``' levels packed several to a float32 column (:mod:`forms.sim.packed_fields`), or None
    where they cannot be: read noise, non-integral levels, or partial sums too wide for two fields."""
    if read_noise > 0 or not integral or not columns.count:
        return None
    return pack_columns(columns.cells, plan.max_digit)


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
    packed: PackedColumns | None
    """The columns packed several to a float32 GEMM column (:func:`packed_columns`), or None."""
    lanes: SliceLanes | None = None
    """The signed-slice GEMM where every conversion is provably the identity
    (:func:`forms.sim.slice_lanes.slice_lanes`), or None to convert every partial sum."""

    def run(
        self, codes: Tensor, chunk_elements: int, stats: LayerStats | None, checked: bool = False
    ) -> Tensor:
        """Bit-level sums (V, G, C) float64 of ``codes`` (V, G, rows) over the engine's columns.

        Clipped conversions are added to ``stats`` when given. Raises :class:`~forms.errors.ConfigError`
        for codes that are not finite integers in the plan's range or not shaped for the layer;
        ``checked`` says the caller has checked their values (a crossbar array does), so only their
        shape is checked.
        """
        codes = layer_codes(codes, self.encoded, self.plan, values_checked=checked)
        if self.lanes is not None:  # nothing can clip
            return self.lanes.run(codes, self.plan, chunk_elements)
        enc, plan = self.encoded, self.plan
        count = self.packed.columns if self.packed is not None else self.columns.count
        per_vector = plan.steps * enc.groups * (enc.row_groups * count + enc.columns)
        chunk = max(1, chunk_elements // max(1, per_vector))
        ws = Workspace()
        converted = torch.promote_types(gemm_dtype(enc, plan), self._converted_dtype())
        cells = self.columns.cells
        max_sum = float(cells.sum(1).max()) * plan.max_digit if cells.numel() else 0.0
        outs = [
            self._run_chunk(codes[s : s + chunk], stats, ws, (converted, max_sum))
            for s in range(0, codes.shape[0], chunk)
        ]
        if not outs:
            return codes.new_zeros((0, enc.groups, enc.columns), dtype=torch.float64)
        return torch.cat(outs)

    def _run_chunk(
        self, codes: Tensor, stats: LayerStats | None, ws: Workspace, bounds: tuple[torch.dtype, float]
    ) -> Tensor:
        """Sums (V, G, C) of one chunk. ``bounds``: the dtype exact for the converted values and their
        one-step shift-and-add, and the largest partial sum of the (integral) levels."""
        enc, plan = self.encoded, self.plan
        g, c, nd, v = enc.groups, enc.columns, plan.steps, codes.shape[0]
        partial, digit_sum = self._partial_sums(codes, gemm_dtype(enc, plan), ws)
        partial = partial.to(bounds[0])
        clipped = self.adc.convert_counted_(partial, self.integral and self.read_noise == 0, bounds[1], ws)
        if stats is not None:
            stats.clipped += clipped
        red = self._shift_and_add(partial, ws)
        del partial
        if digit_sum is not None:
            flips = self.columns.flip_correction
            red = red + torch.einsum("gfn,gfc->gnc", digit_sum.to(torch.float64), flips)
        weights = plan.digit_weights(device=red.device).view(1, nd, 1, 1)
        return (red.view(g, nd, v, c) * weights).sum(1).transpose(0, 1)  # (V, G, C)

    def _partial_sums(self, codes: Tensor, dtype: torch.dtype, ws: Workspace) -> tuple[Tensor, Tensor | None]:
        """Noisy analog partial sums (G*F, nd*V, K) and, where flipped columns need them, the digit
        sums U (G, F, nd*V) of ``codes`` (K: the engine's converted columns; a view of the unpacked
        fields when packed)."""
        enc, plan = self.encoded, self.plan
        flips = bool(self.columns.flip_correction.any())
        if self.tables is not None:  # partial sums and noise sigmas looked up per digit pattern
            patterns = fragment_patterns(fragment_int_view(int_codes(codes, plan), enc.group_rows), plan)
            looked_up, sigma, pattern_sums = self.tables.gather(patterns)
            if sigma is not None:
                add_read_noise_sigma_(looked_up, sigma, self.generator)
            return looked_up, pattern_sums if flips else None
        digits = digit_planes(codes, plan, enc.group_rows, dtype, ws)  # (G*F, nd*V, Rg)
        digit_sum = digits.view(enc.groups, enc.row_groups, -1, enc.group_rows).sum(-1) if flips else None
        n = digits.shape[:2]
        if self.packed is not None:  # the converted columns first, zero-level padding after them
            packed = ws.take("packed", (*n, self.packed.levels.shape[-1]), dtype, digits.device)
            fields = self.packed.unpack(torch.bmm(digits, self.packed.levels, out=packed), ws)
            return fields[..., : self.columns.count], digit_sum
        partial = ws.take("partial", (*n, self.columns.count), dtype, digits.device)
        torch.bmm(digits, self.columns.cells.to(dtype), out=partial)  # (G*F, nd*V, K)
        if self.read_noise > 0:
            variance = torch.bmm(digits.square(), self.columns.conductance_sq.to(dtype))
            add_read_noise_(partial, variance, self.read_noise, self.generator)
        return partial, digit_sum

    def _converted_dtype(self) -> torch.dtype:
        """Dtype exact for the converted values and one step's shift-and-add of them: multiples of the
        ADC's grid up to the largest sum, over an output column's converted columns, of |place value|
        times the ADC's full scale (:func:`exact_float_dtype`)."""
        cols = self.columns
        g, c = self.encoded.groups, self.encoded.columns
        mult = cols.signed_place_value.abs()
        if cols.dense:
            per_output = mult.sum((1, 2))  # (G, C)
        else:
            per_output = mult.new_zeros(g, c).scatter_add_(
                1, cols.output_columns.reshape(g, -1), mult.reshape(g, -1)
            )
        bound = float(per_output.max()) * self.adc.full_scale if per_output.numel() else 0.0
        return exact_float_dtype(bound, self.adc.grid)

    def _shift_and_add(self, partial: Tensor, ws: Workspace) -> Tensor:
        """Converted partial sums (G*F, nd*V, K) -> (G, nd*V, C) float64, weighted and summed over
        row groups and slices/sets (IN PLACE on ``partial``)."""
        enc, cols = self.encoded, self.columns
        g, f, c, n, k = enc.groups, enc.row_groups, enc.columns, partial.shape[1], partial.shape[2]
        mult = cols.signed_place_value.to(partial.dtype).reshape(g, f, k)
        if cols.dense:  # outer-dimension sums are fast
            dense = partial.view(g, f, n, k // c, c)
            by_slice = ws.take("by_slice", (g, n, k // c, c), dense.dtype, dense.device)
            mult = mult.view(g, f, 1, k // c, c)
            if bool((mult == mult[:, :1]).all()):  # same weights on every row group: sum, then weigh
                torch.sum(dense, 1, out=by_slice).mul_(mult[:, 0])
            else:
                torch.sum(dense.mul_(mult), 1, out=by_slice)
            return by_slice.sum(2).to(torch.float64)
        compact = partial.view(g, f, n, k)
        compact.mul_(mult.view(g, f, 1, k))
        # (row group, risky column) pairs side by side, then one scatter-add onto the C outputs
        flat = compact.permute(0, 2, 1, 3).reshape(g, n, f * k)
        index = cols.output_columns.reshape(g, 1, f * k).expand(g, n, f * k)
        out = torch.zeros(g, n, c, dtype=partial.dtype, device=partial.device)
        return out.scatter_add_(2, index, flat).to(torch.float64)
