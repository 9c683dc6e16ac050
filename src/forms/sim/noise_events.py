"""Read noise on a lossless chip as sparse conversion errors, drawn from their exact distribution.

With integral cells and an ADC of step 1 that cannot clip, a conversion's noiseless partial sum ``p``
is an integer and read noise adds ``n ~ N(0, sigma^2)``, sigma = read_noise * sqrt(sum_r d_r^2 G_r^2)
(:mod:`forms.sim.devices`). The ADC outputs ``clamp(round(p + n), 0, max_code) = clamp(p + round(n))``
(ties have probability zero), so the conversion differs from ``p`` only when ``|n| > 1/2``, with
probability ``q = erfc(1 / (2 sqrt(2) sigma))``. The chip's result is then the exact GEMM plus these
rare errors, each weighted like its conversion in the shift-and-add.

Sampling (every draw from the chip's generator): a column's conversions all have ``q <= q_col``,
the probability for the largest sigma the column can have (every digit at the DAC's top level).
Candidate conversions are an independent Bernoulli(q_col) subset of each column's conversions (a
binomial count per column, then a uniform subset of that size); a candidate is kept with probability
``q / q_col`` (thinning), and its noise is drawn from N(0, sigma^2) conditioned on ``|n| > 1/2`` by
inverting the normal CDF of one tail, with a random sign. Each conversion therefore errs
independently with exactly the per-conversion noise's distribution (the draws differ from the dense
path's, the distribution does not). Chips whose largest ``q_col`` exceeds :data:`MAX_EVENT_RATE`
keep the dense per-conversion draws of the GEMM engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from forms.sim.adc import Adc
from forms.sim.bitplanes import int_codes
from forms.sim.column_split import ChipColumns
from forms.sim.quant_inputs import DigitPlan

MAX_EVENT_RATE = 0.05
"""Largest per-conversion error probability ``q_max`` for which sparse errors beat dense draws."""


def error_probability(sigma: Tensor) -> Tensor:
    """P(|N(0, sigma^2)| > 1/2) elementwise (0 where sigma is 0)."""
    safe = sigma.clamp(min=1e-300)
    return torch.where(sigma > 0, torch.erfc(0.5 / (math.sqrt(2.0) * safe)), torch.zeros_like(sigma))


@dataclass(frozen=True)
class NoiseEvents:
    """One lossless chip's columns as the sparse-error sampler needs them (engine layout)."""

    levels: Tensor
    """(G*F, K, Rg) float64 integer cell levels of every converted column."""
    conductance_sq: Tensor
    """(G*F, K, Rg) float64 squared conductances."""
    place_value: Tensor
    """(G*F, K) float64 signed place value of each column in the shift-and-add."""
    plan: DigitPlan
    """How input codes are cut into the digits of each step."""
    read_noise: float
    """Relative per-read noise of one cell's conductance."""
    max_code: int
    """The ADC's largest output."""
    column_rate: Tensor
    """(G*F*K,) float64: the largest error probability of any conversion of each column (all its
    digits at the largest DAC level)."""
    columns: int
    """C: weight columns of the layer."""

    @staticmethod
    def build(chip: ChipColumns, plan: DigitPlan, adc: Adc, read_noise: float) -> NoiseEvents:
        """The sampler of a programmed ``chip`` read through ``adc`` with relative ``read_noise``."""
        gsq = chip.conductance_sq.to(torch.float64).transpose(1, 2).contiguous()
        sigma_max = read_noise * plan.max_digit * gsq.sum(-1).reshape(-1).sqrt()
        return NoiseEvents(
            levels=chip.levels.to(torch.float64).transpose(1, 2).contiguous(),
            conductance_sq=gsq,
            place_value=chip.signed_place_value.to(torch.float64).reshape(gsq.shape[0], -1),
            plan=plan,
            read_noise=read_noise,
            max_code=adc.max_code,
            column_rate=error_probability(sigma_max),
            columns=chip.signed_place_value.shape[-1],
        )

    @property
    def max_rate(self) -> float:
        """q_max: the largest error probability of any conversion of the chip."""
        return float(self.column_rate.max()) if self.column_rate.numel() else 0.0

    def errors(self, codes: Tensor, generator: torch.Generator | None) -> tuple[Tensor, int]:
        """The read-noise errors (V, G, C) float64 to add to the exact sums of checked integer ``codes``
        (V, G, rows), and how many conversions clipped."""
        columns = self.columns
        gf, k, rg = self.levels.shape
        v, g, _ = codes.shape
        f = gf // g
        out = torch.zeros(v, g, columns, dtype=torch.float64, device=codes.device)
        trials = self.plan.steps * v  # conversions per column
        if trials == 0 or self.max_rate == 0:
            return out, 0
        chosen = self._candidates(trials, generator)  # column-major: column * trials + step * V + vec
        column, rest = chosen // trials, chosen % trials
        frag, col = column // k, column % k
        step, vec = rest // v, rest % v
        rows = self._fragment_codes(codes, vec, frag, rg)  # (n, Rg)
        shifts = torch.tensor(self.plan.shifts, dtype=rows.dtype, device=rows.device)[step]
        masks = torch.tensor([(1 << w) - 1 for w in self.plan.widths], dtype=rows.dtype, device=rows.device)
        digits = torch.bitwise_and(
            torch.bitwise_right_shift(rows, shifts.unsqueeze(-1)), masks[step].unsqueeze(-1)
        )
        digits = digits.to(torch.float64)
        partial = (digits * self.levels[frag, col]).sum(-1)
        sigma = self.read_noise * (digits.square() * self.conductance_sq[frag, col]).sum(-1).sqrt()
        rate = error_probability(sigma)
        uniform = torch.rand(3, chosen.numel(), generator=generator, dtype=torch.float64, device=codes.device)
        kept = uniform[0] * self.column_rate[column] < rate
        # |n| > 1/2 from one tail of N(0, sigma^2): Phi^-1 of a uniform share of that tail's mass
        magnitude = -sigma[kept] * torch.special.ndtri(uniform[1][kept] * rate[kept] / 2)
        noise = torch.where(uniform[2][kept] < 0.5, -magnitude, magnitude).round()
        shifted = partial[kept] + noise
        error = shifted.clamp(0, self.max_code) - partial[kept]
        weight = (
            self.plan.digit_weights(device=codes.device)[step[kept]] * self.place_value[frag[kept], col[kept]]
        )
        c = col[kept] % columns
        out.index_put_((vec[kept], frag[kept] // f, c), weight * error, accumulate=True)
        return out, int((shifted > self.max_code).sum())

    def _fragment_codes(self, codes: Tensor, vec: Tensor, frag: Tensor, rg: int) -> Tensor:
        """The ``rg`` integer codes (n, rg) of fragment ``frag`` (group-major) of vectors ``vec``, zero
        on the rows that pad a short last fragment; gathered before any conversion of ``codes``."""
        _, g, rows = codes.shape
        f = self.levels.shape[0] // g
        row = ((frag % f) * rg).unsqueeze(-1) + torch.arange(rg, device=codes.device)
        flat = ((vec * g + frag // f) * rows).unsqueeze(-1) + row.clamp(max=rows - 1)
        picked = int_codes(codes.reshape(-1)[flat], self.plan)
        return torch.where(row < rows, picked, torch.zeros_like(picked))

    def _candidates(self, trials: int, generator: torch.Generator | None) -> Tensor:
        """Sorted flat indices ``column * trials + t`` of a subset holding each of a column's ``trials``
        conversions independently with the column's rate: binomial counts per column, then a uniform
        subset of each column's size (draws with replacement, duplicates drawn again)."""
        rate = self.column_rate
        counts = torch.binomial(torch.full_like(rate, float(trials)), rate, generator=generator).to(
            torch.int64
        )
        ids = torch.arange(rate.numel(), device=rate.device)
        chosen = torch.zeros(0, dtype=torch.int64, device=rate.device)
        need = counts
        while bool((need > 0).any()):
            owner = torch.repeat_interleave(ids, need)
            uniform = torch.rand(owner.numel(), generator=generator, dtype=torch.float64, device=rate.device)
            at = (uniform * trials).to(torch.int64).clamp_(max=trials - 1)
            chosen = torch.unique(torch.cat([chosen, owner * trials + at]))
            need = counts - torch.bincount(chosen // trials, minlength=rate.numel())
        return chosen
