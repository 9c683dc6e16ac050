"""ReRAM cell non-idealities: stuck-at faults, log-normal programming variation, finite on/off ratio,
per-read noise. All draws come from a seeded :class:`torch.Generator`.

Units: conductances in cell levels, (G_on - G_off) / M with M = 2^cell_bits - 1, so an ideal cell at
level c conducts c + g_min, g_min = M / (on_off_ratio - 1) (0 for an ideal off state). Every column's
off current is removed by a reference column of G_off cells (the usual correction), so the ADC sees
sum_r d_r (G_r - g_min): exact for ideal cells, perturbed by variation and faults.

- Stuck-at-0 / stuck-at-1: a cell is stuck at level 0 / level M with the given rates (disjoint).
- Variation (drawn once per programmed chip): G = (level + g_min) * exp(N(0, sigma)), the log-normal
  model of FORMS' device study (Yuan et al., ISCA 2021, Sec. 6; sigma = 0.1 there).
- Read noise (drawn at every read): each cell's conductance fluctuates by a relative N(0, read_noise),
  so a column sum gets Gaussian noise of sigma read_noise * sqrt(sum_r d_r^2 G_r^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from forms.sim.spec import DeviceSpec


def off_conductance(spec: DeviceSpec, cell_max: int) -> float:
    """g_min in level units: M / (on_off_ratio - 1), 0 for an infinite ratio."""
    return 0.0 if spec.on_off_ratio is None else cell_max / (spec.on_off_ratio - 1.0)


@dataclass(frozen=True)
class ProgrammedCells:
    """Cell values one chip's ADCs see, after faults and variation, and what read noise needs."""

    levels: Tensor
    """Reference-corrected effective levels G - g_min, same shape as the ideal levels (float)."""
    conductance_sq: Tensor | None
    """Squared absolute conductances G^2 for the read-noise variance (None without read noise)."""
    integral: bool
    """True when ``levels`` are the exact integer levels (no fault or variation applied)."""


def program_cells(
    cells: Tensor,
    cell_max: int,
    spec: DeviceSpec,
    generator: torch.Generator | None,
    dtype: torch.dtype = torch.float32,
) -> ProgrammedCells:
    """Program ideal integer ``cells`` onto one chip: faults, then variation (see the module docstring)."""
    levels = cells.to(dtype)
    g_min = off_conductance(spec, cell_max)
    integral = True
    if spec.stuck_at_0 > 0 or spec.stuck_at_1 > 0:
        u = torch.rand(levels.shape, generator=generator, device=levels.device, dtype=torch.float64)
        levels = torch.where(u < spec.stuck_at_0, torch.zeros_like(levels), levels)
        stuck_high = (u >= spec.stuck_at_0) & (u < spec.stuck_at_0 + spec.stuck_at_1)
        levels = torch.where(stuck_high, torch.full_like(levels, float(cell_max)), levels)
    if spec.variation > 0:
        eps = torch.randn(levels.shape, generator=generator, device=levels.device, dtype=torch.float64)
        absolute = (levels.to(torch.float64) + g_min) * torch.exp(spec.variation * eps)
        levels = (absolute - g_min).to(dtype)
        integral = False
    conductance_sq = None
    if spec.read_noise > 0:
        conductance_sq = (levels.to(torch.float64) + g_min).square().to(dtype)
    return ProgrammedCells(levels=levels, conductance_sq=conductance_sq, integral=integral)


def add_read_noise_(
    partial: Tensor, variance: Tensor, sigma: float, generator: torch.Generator | None
) -> None:
    """Add per-read Gaussian noise of std ``sigma * sqrt(variance)`` to ``partial`` in place."""
    noise = torch.randn(partial.shape, generator=generator, device=partial.device, dtype=partial.dtype)
    partial.add_(noise.mul_(variance.clamp_(min=0).sqrt_()).mul_(sigma))


def add_read_noise_sigma_(partial: Tensor, sigma: Tensor, generator: torch.Generator | None) -> None:
    """Add per-read Gaussian noise of standard deviation ``sigma`` (elementwise) to ``partial`` in place."""
    noise = torch.randn(partial.shape, generator=generator, device=partial.device, dtype=partial.dtype)
    partial.addcmul_(noise, sigma)
