"""Splitting a programmed chip's columns into *exact* ones (one integer GEMM) and *risky* ones.

A physical column is exact when its conversions provably equal its integer partial sums: integral
cell levels (no variation), no read noise, ADC step 1, and its level sum times the largest DAC digit
fits the ADC. Exact columns (and the offset encoding's bias removal, which is linear) fold into one
integer matrix. The risky columns go through a bit-level engine (:mod:`forms.sim.gemm_engine`,
:mod:`forms.sim.table_engine`): all of them in the dense layout when every column is risky (noise,
variation, a forced bit-level run) or when compacting would save little, else a compacted
(row group, risky column) layout padded to the largest risky count, whose outputs are scattered back
to their weight columns after the shift-and-add.

Engine layout: cells are (G*F, Rg, Q*C), physical columns ordered (slice/set, weight column) so the
shift-and-add reduces over outer dimensions; per-column coefficients are (G, F, Q, C).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from forms.sim.adc import Adc
from forms.sim.encodings import EncodedLayer
from forms.sim.quant_inputs import DigitPlan


def engine_layout(cells: Tensor) -> Tensor:
    """(G, F, Rg, C, Q) -> (G*F, Rg, Q*C) for the batched GEMM."""
    g, f, rg, c, q = cells.shape
    return cells.permute(0, 1, 2, 4, 3).reshape(g * f, rg, q * c).contiguous()


@dataclass(frozen=True)
class ChipColumns:
    """Every converted column of one programmed chip, in the engine layout."""

    levels: Tensor
    """(G*F, Rg, Q*C) programmed cell levels."""
    conductance_sq: Tensor
    """(G*F, Rg, Q*C) squared conductances for read noise; empty without read noise."""
    signed_place_value: Tensor
    """(G, F, Q, C) shift-and-add weight of each converted column (:mod:`forms.sim.encodings`)."""
    flip_weight: Tensor
    """(G, F, Q, C) float64 coefficient of the digit sum U: M * 2^(k*cell_bits) if flipped, else 0."""


@dataclass(frozen=True)
class BitLevelColumns:
    """The columns a bit-level engine converts: all of them (dense) or the risky ones, compacted."""

    cells: Tensor
    """(G*F, Rg, K) cell levels of the converted columns."""
    conductance_sq: Tensor
    """(G*F, Rg, K) squared conductances (read noise); empty without."""
    signed_place_value: Tensor
    """Dense: (G, F, Q, C); compacted: (G, F, K), zero on padding columns."""
    output_columns: Tensor
    """Compacted: (G, F, K) int64 weight column each converted column adds to; dense: unused."""
    flip_correction: Tensor
    """(G, F, C) float64 coefficient of U from the converted columns that are flipped."""
    count: int
    """K: converted columns per (group, row group); Q*C when dense, 0 on a lossless chip."""
    dense: bool
    """True when every column is converted bit by bit (the engine layout unchanged)."""


@dataclass(frozen=True)
class ColumnSplit:
    """A chip's exact columns folded into one integer matrix, and the risky ones."""

    exact_weight: Tensor
    """(G, rows, C) float64: the integer matrix of the exact columns and the input-sum term."""
    bit_level: BitLevelColumns


def _risky_mask(levels: Tensor, plan: DigitPlan, adc: Adc, all_risky: bool) -> Tensor:
    """(G, F, Q, C) bool: columns whose largest partial sum may clip (all, when ``all_risky`` or when
    more than half of some row group's columns are risky: compacting would save little)."""
    g, f, _, q, c = levels.shape
    if all_risky:
        return torch.ones(g, f, q, c, dtype=torch.bool, device=levels.device)
    risky = levels.sum(2) * plan.max_digit > adc.max_code
    most = int(risky.reshape(g, f, q * c).sum(-1).max()) if risky.numel() else 0
    return torch.ones_like(risky) if 2 * most > q * c else risky


def _compacted(chip: ChipColumns, risky: Tensor, count: int, flip_correction: Tensor) -> BitLevelColumns:
    """The risky columns of each (group, row group) first (stable order), padded to ``count``."""
    g, f, q, c = risky.shape
    rg = chip.levels.shape[1]
    flat = risky.reshape(g * f, q * c)
    order = torch.argsort((~flat).to(torch.int8), dim=-1, stable=True)[:, :count]
    valid = torch.gather(flat, 1, order)
    index = order.unsqueeze(1).expand(g * f, rg, count)
    cells = torch.gather(chip.levels, 2, index).contiguous()
    gsq = chip.conductance_sq
    conductance_sq = torch.gather(gsq, 2, index).contiguous() if gsq.numel() else gsq
    mult = torch.gather(chip.signed_place_value.reshape(g * f, q * c), 1, order) * valid
    columns = (order % c).reshape(g, f, count)
    return BitLevelColumns(
        cells, conductance_sq, mult.reshape(g, f, count), columns, flip_correction, count, dense=False
    )


def split_columns(
    encoded: EncodedLayer, chip: ChipColumns, plan: DigitPlan, adc: Adc, all_risky: bool
) -> ColumnSplit:
    """Split ``chip``'s columns for the exact GEMM and the bit-level engines (module docstring).

    ``all_risky`` sends every column bit-level (read noise, non-integral levels, an ADC step other
    than 1, or a forced bit-level run).
    """
    g, f, rg, c, q = encoded.cells.shape
    levels = chip.levels.view(g, f, rg, q, c)
    risky = _risky_mask(levels, plan, adc, all_risky)
    safe = (~risky).to(torch.float64)
    contrib = (levels.to(torch.float64) * (chip.signed_place_value * safe).unsqueeze(2)).sum(3)  # (G,F,Rg,C)
    contrib = contrib + (chip.flip_weight * safe).sum(2).unsqueeze(2)
    exact = contrib.reshape(g, f * rg, c)[:, : encoded.rows] + encoded.input_sum_coefficient
    per_group = risky.reshape(g, f, q * c).sum(-1)
    count = int(per_group.max()) if per_group.numel() else 0
    flip_correction = (chip.flip_weight * risky).sum(2)  # (G, F, C)
    if count == 0 or count == q * c:
        empty = torch.zeros(0, dtype=torch.int64, device=levels.device)
        every = (chip.levels, chip.conductance_sq, chip.signed_place_value, empty, flip_correction)
        return ColumnSplit(exact, BitLevelColumns(*every, count, dense=count == q * c))
    return ColumnSplit(exact, _compacted(chip, risky, count, flip_correction))
