"""The bit-level crossbar pipeline evaluated through per-pattern tables (exact, deterministic cells).

A row group (fragment) of ``Rg`` rows at one analog step is fully described by its digit *pattern*
(:mod:`forms.sim.bitplanes`): the partial sum of every physical column is ``sum_r d_r * level[r, col]``.
With deterministic cells (no read noise) every conversion of that step is therefore a function of
the pattern, and so is its share of the output after the ADC and the digital shift-and-add:

    T[f, p, c] = sum_q signed_place_value[f, c, q] * ADC(partial[f, p, c, q])      (slices / crossbar sets q)
                 + (flip correction[f, c] + input_sum_coefficient) * U(p),

with ``U(p)`` the sum of the pattern's digits (ISAAC's flipped-column and unit-column corrections are
linear in the step's digits). :class:`PatternTable` builds ``T`` once per programmed chip, with the
ADC applied to every entry exactly as the engine applies it to a partial sum, and counts per entry
the conversions that clip. Running a vector is then, per (step, row group), one table row:

    y[c] = sum_b coef_b 2^shift_b sum_f T[f, pattern(b, f), c].

Each vector is one ``embedding_bag`` sum over its (row group, step) rows, the step weights given as
per-sample weights. That sum runs in float32, exactly: the steps are split into groups whose weights,
divided by the group's smallest (so powers of two), keep every bag sum below 2^24, and the groups'
float32 results are combined in float64. Clip counts are summed by a second, one-column bag. Tables
hold only integers (an ADC step of 1); they have ``2^(dac_bits * Rg)`` rows per row group, so the path
applies to FORMS fragments (R <= 16 with a 1-bit DAC), not to ISAAC and PRIME's 128-row columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from forms.sim.adc import Adc
from forms.sim.boundary import check_shape
from forms.sim.integer_gemm import FLOAT32_EXACT
from forms.sim.quant_inputs import DigitPlan

BUILD_ELEMENTS = 1 << 22
"""Partial sums held at once while a table is built (row groups are processed in chunks)."""


def table_size(groups: int, row_groups: int, group_rows: int, columns: int, plan: DigitPlan) -> int:
    """Entries of the tables: G * F * P * (C + 1), P = 2^(dac_bits * Rg) patterns (+1: clip counts)."""
    return groups * row_groups * (1 << (max(plan.widths) * group_rows)) * (columns + 1)


def pattern_digits(group_rows: int, dac_bits: int, device: torch.device | str) -> Tensor:
    """Digits (P, Rg) float64 of every pattern, P = 2^(dac_bits * Rg): row r's digit is bits
    [r * dac_bits, (r + 1) * dac_bits) of the pattern index (as :func:`forms.sim.bitplanes.fragment_patterns`
    packs them)."""
    pat = torch.arange(1 << (dac_bits * group_rows), device=device, dtype=torch.int64)
    shifts = torch.arange(group_rows, device=device, dtype=torch.int64) * dac_bits
    return torch.bitwise_and(pat.unsqueeze(-1) >> shifts, (1 << dac_bits) - 1).to(torch.float64)


def pattern_outputs(
    cells: Tensor, signed_place_value: Tensor, u_coefficient: Tensor, adc: Adc, integral: bool, dac_bits: int
) -> tuple[Tensor, Tensor]:
    """Per-pattern contributions T (G*F, P, C) float64 and clip counts (G*F, P) int64.

    ``cells`` (G, F, Rg, Q, C) are the programmed levels, ``signed_place_value`` (G, F, Q, C) each converted
    column's shift-and-add weight, ``u_coefficient`` (G, F, C) the coefficient of the step's digit sum
    (flip and offset corrections). ``integral`` says the levels are exact integers (the ADC then skips
    rounding, as in the engine). Partial sums are formed in float64 (exact for integer levels).
    """
    g, f, rg, q, c = cells.shape
    p = 1 << (dac_bits * rg)
    device = cells.device
    digits = pattern_digits(rg, dac_bits, device)
    u = digits.sum(-1)  # (P,) digit sum U of each pattern
    levels = cells.reshape(g * f, rg, q * c).to(torch.float64)
    mult = signed_place_value.reshape(g * f, q, c).to(torch.float64)
    ucoef = u_coefficient.reshape(g * f, c).to(torch.float64)
    values = torch.empty(g * f, p, c, dtype=torch.float64, device=device)
    clips = torch.empty(g * f, p, dtype=torch.int64, device=device)
    step = max(1, BUILD_ELEMENTS // max(1, p * q * c))
    for s in range(0, g * f, step):
        e = min(g * f, s + step)
        partial = torch.matmul(digits, levels[s:e]).view(e - s, p, q, c)
        clips[s:e] = adc.convert_(partial, integral=integral).sum((2, 3))
        values[s:e] = torch.einsum("npqc,nqc->npc", partial, mult[s:e]) + u.view(1, p, 1) * ucoef[s:e, None]
    return values, clips


@dataclass
class _StepGroup:
    start: int
    stop: int
    scale: float
    """Weight of the group's float32 sums in the output: |coef * 2^shift| of its first step."""
    weights: Tensor
    """(steps,) float32: each step's coef * 2^shift / scale (signed powers of two)."""


@dataclass
class PatternTable:
    """Per-pattern tables of one programmed layer (see the module docstring)."""

    values: Tensor
    """(G * F * P, C) float32 contributions T (integers)."""
    clips: Tensor | None
    """(G * F * P, 1) float32 clipped conversions per pattern; None when no pattern clips."""
    offsets: Tensor
    """(G, F, 1) int32: first table row of each (group, row group)."""
    step_groups: list[_StepGroup]
    columns: int

    @classmethod
    def build(
        cls,
        cells: Tensor,
        signed_place_value: Tensor,
        u_coefficient: Tensor,
        adc: Adc,
        integral: bool,
        plan: DigitPlan,
    ) -> PatternTable | None:
        """Tables for cell ``levels`` (G, F, Rg, Q, C) (see :func:`pattern_outputs`); None when they
        would not hold integers (an ADC step other than 1), which the float32 sums cannot keep exact."""
        g, f, _, _, c = cells.shape
        values, clips = pattern_outputs(
            cells, signed_place_value, u_coefficient, adc, integral, max(plan.widths)
        )
        if not bool(torch.equal(values, values.round())):
            return None
        p = values.shape[1]
        bound = f * max(float(values.abs().max()) if values.numel() else 0.0, 1.0)
        weights = plan.digit_weights().tolist()
        groups: list[_StepGroup] = []
        start = 0
        while start < plan.steps:
            scale = abs(weights[start])
            stop, total = start + 1, 1.0
            while stop < plan.steps and bound * (total + abs(weights[stop]) / scale) < FLOAT32_EXACT:
                total += abs(weights[stop]) / scale
                stop += 1
            if bound * total >= FLOAT32_EXACT or f * plan.steps * float(clips.max()) >= FLOAT32_EXACT:
                return None  # even one step's sum over the row groups is too large for float32
            w = torch.tensor([weights[b] / scale for b in range(start, stop)], dtype=torch.float32)
            groups.append(_StepGroup(start, stop, scale, w.to(values.device)))
            start = stop
        offsets = torch.arange(g * f, dtype=torch.int32, device=values.device) * p
        return cls(
            values=values.reshape(g * f * p, c).to(torch.float32),
            clips=clips.reshape(-1, 1).to(torch.float32) if bool(clips.any()) else None,
            offsets=offsets.view(g, f, 1),
            step_groups=groups,
            columns=c,
        )

    def run(self, patterns: Tensor, collect: bool = True) -> tuple[Tensor, int]:
        """Outputs (V, G, C) float64 and clipped conversions of ``patterns`` (V, G, F, steps).

        Raises :class:`~forms.errors.ConfigError` when ``patterns`` is not shaped for these tables.
        """
        groups, row_groups, _ = self.offsets.shape
        steps = self.step_groups[-1].stop
        check_shape(
            patterns, (None, groups, row_groups, steps), "patterns (vectors, groups, row groups, steps)"
        )
        v, g, f, _ = patterns.shape
        y = torch.zeros(v * g, self.columns, dtype=torch.float64, device=patterns.device)
        clipped = 0
        for grp in self.step_groups:
            n = grp.stop - grp.start
            index = torch.empty(v, g, f, n, dtype=torch.int32, device=patterns.device)
            torch.add(patterns[..., grp.start : grp.stop], self.offsets, out=index)
            bags = index.view(v * g, f * n)
            psw = grp.weights.expand(v * g, f, n).reshape(v * g, f * n)
            sums = F.embedding_bag(bags, self.values, mode="sum", per_sample_weights=psw)  # (V*G, C)
            y.add_(sums, alpha=grp.scale)
            if collect and self.clips is not None:
                clipped += int(F.embedding_bag(bags, self.clips, mode="sum").sum(dtype=torch.float64))
        return y.view(v, g, self.columns), clipped


@dataclass
class PartialSumTables:
    """Per-pattern analog partial sums (and read-noise sigmas) for the GEMM engine's layout.

    Where the pattern tables above cannot be used (read noise: every conversion needs its own draw;
    or ADC outputs that are not integers) each conversion is still made, but its noiseless partial
    sum ``sum_r d_r level[r, col]`` and its noise sigma ``read_noise * sqrt(sum_r d_r^2 G_r^2)`` are
    looked up per pattern instead of recomputed by two GEMMs and a square root per conversion.
    """

    partial: Tensor
    """(G*F*P, cols) partial sums of each (group x row group, pattern) and converted column."""
    sigma: Tensor | None
    """(G*F*P, cols) read-noise standard deviations; None without read noise."""
    digit_sum: Tensor
    """(P,) float64 digit sum U of each pattern (flipped-column correction)."""
    patterns: int

    @classmethod
    def build(
        cls,
        cells: Tensor,
        conductance_sq: Tensor | None,
        read_noise: float,
        dac_bits: int,
        dtype: torch.dtype,
    ) -> PartialSumTables:
        """Tables of ``cells`` (G*F, Rg, cols) levels and squared conductances (same shape) or None."""
        n, rg, cols = cells.shape
        digits = pattern_digits(rg, dac_bits, cells.device)
        p = digits.shape[0]
        partial = torch.matmul(digits, cells.to(torch.float64)).to(dtype).reshape(n * p, cols)
        sigma = None
        if conductance_sq is not None and read_noise > 0:
            variance = torch.matmul(digits.square(), conductance_sq.to(torch.float64))
            sigma = (variance.clamp(min=0).sqrt() * read_noise).to(dtype).reshape(n * p, cols)
        return cls(partial, sigma, digits.sum(-1), p)

    def gather(self, patterns: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """Partial sums (G*F, steps*V, cols), their sigmas (or None) and digit sums (G, F, steps*V)
        of ``patterns`` (V, G, F, steps), rows ordered (step, vector) as in the GEMM engine."""
        v, g, f, steps = patterns.shape
        offsets = torch.arange(g * f, device=patterns.device, dtype=torch.int64).view(g, f, 1, 1)
        index = torch.empty(g, f, steps, v, dtype=torch.int64, device=patterns.device)
        torch.add(patterns.permute(1, 2, 3, 0), offsets * self.patterns, out=index)
        flat = index.view(-1)
        partial = self.partial.index_select(0, flat).view(g * f, steps * v, -1)
        sigma = (
            self.sigma.index_select(0, flat).view(g * f, steps * v, -1) if self.sigma is not None else None
        )
        u = self.digit_sum[patterns.permute(1, 2, 3, 0).reshape(g, f, steps * v).to(torch.int64)]
        return partial, sigma, u
