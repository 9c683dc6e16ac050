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
per-sample weights. That sum runs in float32, exactly: where one bag would pass 2^24 (bounded by the
sum over row groups of each output's largest |entry|, times the step weights) the bags are split,
either into ranges of row groups each summed over every step (preferred: a bag then reads each row
group's table block for all its steps, which caches better) or into ranges of steps whose weights,
divided by the range's smallest (so powers of two), keep every bag sum below 2^24; the bags' float32
results are combined in float64. Clip counts are summed by a second, one-column bag. Tables
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
from forms.sim.workspace import Workspace

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


def pattern_partial_sums(levels: Tensor, dac_bits: int) -> Tensor:
    """Partial sums (B, P, K) of every digit pattern on ``levels`` (B, Rg, K), in ``levels``' dtype.

    Built row by row, each row's digit the most significant so far: the sums of patterns over rows
    ``0..r`` are those over rows ``0..r-1`` plus ``d * level[r]`` for each digit ``d`` (pattern index
    ``d << (r * dac_bits)`` higher), so every sum costs one addition instead of ``Rg``
    multiply-adds (exact for integer levels, as the GEMM it replaces)."""
    b, rg, k = levels.shape
    digits = 1 << dac_bits
    sums = levels.new_empty(b, digits**rg, k)
    sums[:, :1] = 0
    n = 1  # patterns of the rows so far
    for r in range(rg):  # at most 16 rows
        row = levels[:, r : r + 1]
        for d in range(1, digits):
            torch.add(sums[:, :n], row, alpha=d, out=sums[:, d * n : (d + 1) * n])
        n *= digits
    return sums


def _build_dtype(
    levels: Tensor, place_value: Tensor, u_coefficient: Tensor, adc: Adc, integral: bool, dac_bits: int
) -> torch.dtype:
    """float32 when integral levels keep every partial sum, converted value and table entry below
    2^24 (bounded by sums of magnitudes), float64 otherwise."""
    if not integral or adc.step != 1.0 or not levels.numel():
        return torch.float64
    rows = levels.shape[1]
    partial = rows * float(levels.max()) * ((1 << dac_bits) - 1)
    entry = float(place_value.abs().sum(-1).max()) * adc.full_scale
    entry += rows * ((1 << dac_bits) - 1) * float(u_coefficient.abs().max())
    return torch.float32 if max(partial, entry) < FLOAT32_EXACT else torch.float64


def pattern_outputs(
    levels: Tensor,
    place_value: Tensor,
    outputs: Tensor,
    u_coefficient: Tensor,
    adc: Adc,
    integral: bool,
    dac_bits: int,
) -> tuple[Tensor, Tensor]:
    """Per-pattern contributions T (B, P, C_t) and clip counts (B, P) int64.

    ``levels`` (B, Rg, K) are the programmed levels of the K converted columns of each of the B
    (group, row group) pairs, ``place_value`` (B, K) each column's shift-and-add weight, ``outputs``
    (B, K) int64 the table column in ``[0, C_t)`` it adds to, ``u_coefficient`` (B, C_t) the coefficient
    of the step's digit sum (flip and offset corrections). ``integral`` says the levels are exact
    integers (the ADC then skips rounding, as in the engine). Everything is computed in float32 where
    that is provably exact (integral levels, every sum below 2^24), else in float64.
    """
    b, rg, k = levels.shape
    c = u_coefficient.shape[-1]
    p = 1 << (dac_bits * rg)
    device = levels.device
    u = pattern_digits(rg, dac_bits, device).sum(-1)  # (P,) digit sum U of each pattern
    dtype = _build_dtype(levels, place_value, u_coefficient, adc, integral, dac_bits)
    levels, mult = levels.to(dtype), place_value.to(dtype)
    ucoef = u_coefficient.to(dtype)
    values = torch.empty(b, p, c, dtype=dtype, device=device)
    clips = torch.zeros(b, p, dtype=torch.int64, device=device)
    step = max(1, BUILD_ELEMENTS // max(1, p * k))
    for s in range(0, b, step):
        e = min(b, s + step)
        partial = pattern_partial_sums(levels[s:e], dac_bits)  # (n, P, K)
        if not (integral and adc.is_lossless_for(int(partial.max()))):  # else every conversion is exact
            clipped = adc.convert_(partial, integral=integral)
            if bool(clipped.any()):
                clips[s:e] = torch.count_nonzero(clipped, dim=-1)
        partial.mul_(mult[s:e, None])
        index = outputs[s:e, None].expand(e - s, p, k)
        torch.mul(u.to(dtype).view(1, p, 1), ucoef[s:e, None], out=values[s:e])
        values[s:e].scatter_add_(2, index, partial)
    return values, clips


@dataclass
class _StepGroup:
    start: int
    stop: int
    scale: float
    """Weight of the group's float32 sums in the output: |coef * 2^shift| of its first step."""
    weights: Tensor
    """(steps,) float32: each step's coef * 2^shift / scale (signed powers of two)."""
    first_row_group: int = 0
    last_row_group: int | None = None
    """The row groups [first, last) this group sums (None: to the last)."""


def _step_groups(bound: float, clip_bound: float, weights: list[float]) -> list[_StepGroup] | None:
    """Consecutive steps whose weighted bag sums over every row group stay below 2^24 (``bound``:
    one step's largest |sum|; ``clip_bound``: one step's largest clip count); None when one step's
    alone would not."""
    groups: list[_StepGroup] = []
    start, steps = 0, len(weights)
    while start < steps:
        scale = abs(weights[start])
        stop, total = start + 1, 1.0
        while stop < steps and bound * (total + abs(weights[stop]) / scale) < FLOAT32_EXACT:
            total += abs(weights[stop]) / scale
            stop += 1
        if bound * total >= FLOAT32_EXACT or steps * clip_bound >= FLOAT32_EXACT:
            return None
        w = torch.tensor([weights[b] / scale for b in range(start, stop)], dtype=torch.float32)
        groups.append(_StepGroup(start, stop, scale, w))
        start = stop
    return groups


def _bag_groups(peak: Tensor, clip_peak: float, weights: list[float]) -> list[_StepGroup] | None:
    """The fewest bag groups whose float32 sums stay exact. ``peak`` (G, F, C): the largest |entry|
    of each row group's table per output; ``clip_peak`` the largest clip count of an entry.

    Step ranges over every row group (:func:`_step_groups`) are the fallback; every step over equal
    ranges of row groups is preferred where it needs no more groups (a bag then reads each row group's
    table block for all its steps at once, which caches better)."""
    _, f, _ = peak.shape
    by_steps = _step_groups(max(float(peak.sum(1).max()), 1.0), f * clip_peak, weights)
    if by_steps is None:
        return None
    scale = abs(weights[0])
    total = sum(abs(w) for w in weights) / scale
    for parts in range(1, len(by_steps) + 1):  # as many groups at most
        size = -(-f // parts)
        ranges = [(a, min(f, a + size)) for a in range(0, f, size)]
        bound = max(max(float(peak[:, a:b].sum(1).max()), 1.0) for a, b in ranges)
        if bound * total < FLOAT32_EXACT and size * len(weights) * clip_peak < FLOAT32_EXACT:
            w = torch.tensor([x / scale for x in weights], dtype=torch.float32)
            return [_StepGroup(0, len(weights), scale, w, a, b) for a, b in ranges]
    return by_steps


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
        levels: Tensor,
        place_value: Tensor,
        outputs: Tensor,
        u_coefficient: Tensor,
        adc: Adc,
        integral: bool,
        plan: DigitPlan,
    ) -> PatternTable | None:
        """Tables of converted columns (see :func:`pattern_outputs`; ``u_coefficient`` (G, F, C_t)
        gives the groups and row groups); None when they would not hold integers (an ADC step other
        than 1), which the float32 sums cannot keep exact."""
        g, f, c = u_coefficient.shape
        values, clips = pattern_outputs(
            levels, place_value, outputs, u_coefficient.reshape(g * f, c), adc, integral, max(plan.widths)
        )
        whole = integral and adc.step == 1.0  # integer levels, ADC outputs, place values: integers
        if not whole and not bool(torch.equal(values, values.round())):
            return None
        p = values.shape[1]
        # one step's bag sum of an output is at most the sum over row groups of its largest |entry|
        peak = values.abs().amax(1).view(g, f, c) if values.numel() else values.new_zeros(g, f, 1)
        clip_peak = float(clips.max()) if clips.numel() else 0.0
        groups = _bag_groups(peak.to(torch.float64), clip_peak, plan.digit_weights().tolist())
        if groups is None:
            return None  # even one step's sum over the row groups is too large for float32
        for grp in groups:
            grp.weights = grp.weights.to(values.device)
        offsets = torch.arange(g * f, dtype=torch.int32, device=values.device) * p
        return cls(
            values=values.reshape(g * f * p, c).to(torch.float32),
            clips=clips.reshape(-1, 1).to(torch.float32) if bool(clips.any()) else None,
            offsets=offsets.view(g, f, 1),
            step_groups=groups,
            columns=c,
        )

    def bag_weights(self, bags: int) -> list[Tensor]:
        """Per step group, the ``per_sample_weights`` of ``bags`` bags (bags, row groups x steps): each
        lookup's step weight. Built once per run and sliced for its chunks (:meth:`run`)."""
        weights = []
        for grp in self.step_groups:
            f = self.offsets[:, grp.first_row_group : grp.last_row_group].shape[1]
            n = grp.stop - grp.start
            weights.append(grp.weights.expand(bags, f, n).reshape(bags, f * n))
        return weights

    def run(
        self,
        patterns: Tensor,
        collect: bool = True,
        bag_weights: list[Tensor] | None = None,
        workspace: Workspace | None = None,
    ) -> tuple[Tensor, int]:
        """Outputs (V, G, C) float64 and clipped conversions of ``patterns`` (V, G, F, steps).

        ``bag_weights`` (:meth:`bag_weights` of at least V * G bags) and ``workspace`` (for the lookup
        indices) let a caller running several chunks build them once. Raises
        :class:`~forms.errors.ConfigError` when ``patterns`` is not shaped for these tables.
        """
        groups, row_groups, _ = self.offsets.shape
        steps = max(grp.stop for grp in self.step_groups)
        check_shape(
            patterns, (None, groups, row_groups, steps), "patterns (vectors, groups, row groups, steps)"
        )
        v, g, _, _ = patterns.shape
        weights = bag_weights if bag_weights is not None else self.bag_weights(v * g)
        ws = workspace or Workspace()
        y = torch.zeros(v * g, self.columns, dtype=torch.float64, device=patterns.device)
        clipped = 0
        for i, grp in enumerate(self.step_groups):
            n, rows = grp.stop - grp.start, slice(grp.first_row_group, grp.last_row_group)
            f = self.offsets[:, rows].shape[1]
            index = ws.take(f"lookups{i}", (v, g, f, n), torch.int32, patterns.device)
            torch.add(patterns[:, :, rows, grp.start : grp.stop], self.offsets[:, rows], out=index)
            bags = index.view(v * g, f * n)
            psw = weights[i][: v * g]
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
