"""The grids maxabs / j that :func:`forms.compress.projections.choose_scale` ('lsq') searches.

A grid maxabs / j (j = 1 .. 2^b - 1) holds the largest magnitude exactly. Up to 8 bits every j is
tried; above, trying all 2^b - 1 of them costs one quantize pass each (65,535 at 16 bits), so the
search is coarse to fine (128 levels across the range, then 128 j around the best level, ~256 passes
as at 8 bits) plus each scale unit's own grid: the smallest j on which all its entries already lie,
if any. That keeps an already-quantized matrix (s * k, integers |k| <= 2^b - 1, any max |k|)
reproduced exactly, so the projection stays idempotent.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

EXHAUSTIVE_GRID_LIMIT = 255
"""Up to this 2^b - 1 (8 bits) 'lsq' tries every grid maxabs / j; above it, coarse to fine."""

COARSE_LEVELS = 128
"""Grids per stage of the coarse-to-fine search above 8 bits: two stages cost about the 255 passes of
the exhaustive 8-bit search (a cost budget, not a tuned value)."""


def grid_divisors(limit: int) -> list[int]:
    """The j of the grids maxabs / j tried first, finest first: every j = limit .. 1 up to 8 bits;
    above, the coarse stage: j = round(i * limit / 128) for i = 128 .. 1."""
    if limit <= EXHAUSTIVE_GRID_LIMIT:
        return list(range(limit, 0, -1))
    levels = {round(i * limit / COARSE_LEVELS) for i in range(1, COARSE_LEVELS + 1)}
    return sorted(levels, reverse=True)


def fine_divisors(best_j: Tensor, limit: int) -> list[Tensor]:
    """The fine stage, finest first: 128 j per unit evenly spaced around its coarse best ``best_j``
    (included), step d = ceil(limit / (128 * 63)) so they span at least one coarse spacing each side
    (d = 1 up to 12 bits: every j within 63 of the coarse best)."""
    step = math.ceil(limit / (COARSE_LEVELS * 63))
    return [(best_j + t * step).clamp(1, limit) for t in range(COARSE_LEVELS // 2, -COARSE_LEVELS // 2, -1)]


def _grid_misfit(ratios: np.ndarray, j: np.ndarray, rel_tol: float) -> np.ndarray:
    """How far ``ratios * j`` (entries in units of the grid max / j) is from an integer, beyond the
    rounding allowance ``rel_tol`` of each value: <= 0 where the grid holds the entry."""
    units = ratios * j
    return np.abs(units - np.rint(units)) - rel_tol * units


def own_grid_divisor(magnitudes: np.ndarray, limit: int, rel_tol: float) -> int:
    """The smallest j <= limit whose grid max / j holds every magnitude to within ``rel_tol`` of its
    value (the rounding of a stored s * k), or 0 when there is none.

    If the entries are s * k with integers k, |k| <= limit, then j = max|k| / gcd(k) is such a j.
    Every j that fits the smallest nonzero ratio r = min / max has j * r within rounding of an
    integer n <= r * limit, and that rounding (< 1/2 of a unit for j <= 2^16 in float32 or float64)
    leaves one j per n: round(n / r). Candidates are then tried smallest first on all entries; a
    failing candidate removes every candidate that misfits its worst entry, so few full passes are made.
    """
    top = float(magnitudes.max(initial=0.0))
    ratios = magnitudes[magnitudes > 0] / top if top > 0 else magnitudes[:0]
    if ratios.size == 0:
        return 0
    probe = ratios.min(keepdims=True)
    numerators = np.arange(1, math.floor(float(probe[0]) * limit * (1 + rel_tol)) + 1)
    candidates = np.rint(numerators / probe)  # increasing and distinct: n / r steps by 1 / r >= 1
    candidates = candidates[(candidates >= 1) & (candidates <= limit)]
    candidates = candidates[_grid_misfit(probe, candidates, rel_tol) <= 0]
    while candidates.size:
        misfit = _grid_misfit(ratios, candidates[0], rel_tol)
        if misfit.max() <= 0:
            return int(candidates[0])
        worst = ratios[misfit.argmax()].reshape(1)
        candidates = candidates[1:][_grid_misfit(worst, candidates[1:], rel_tol) <= 0]
    return 0


def own_grid_divisors(x: Tensor, mode: str, limit: int, rel_tol: float) -> Tensor:
    """:func:`own_grid_divisor` of every scale unit (each column of each group, or the layer), shaped
    like the keepdim max-abs of ``x`` (float64; 0 where the unit is on no grid)."""
    units = x.abs().reshape(1, -1) if mode == "layer" else x.abs().transpose(-2, -1).reshape(-1, x.shape[-2])
    rows = units.detach().cpu().numpy()
    found = [own_grid_divisor(row, limit, rel_tol) for row in rows]
    shape = (1, 1, 1) if mode == "layer" else (x.shape[0], 1, x.shape[-1])
    return torch.tensor(found, dtype=torch.float64, device=x.device).reshape(shape)


def rounding_tolerance(dtype: torch.dtype) -> float:
    """Relative slack within which a stored product s * k of ``dtype`` still counts as on the grid s:
    4 machine epsilons (the product and the max-abs it is divided by are each rounded by eps / 2)."""
    return 4 * torch.finfo(dtype if dtype.is_floating_point else torch.float64).eps


def best_grid(
    maxabs: Tensor, divisors: list[int | Tensor], error: Callable[[Tensor], Tensor]
) -> tuple[Tensor, Tensor]:
    """The step maxabs / j of least ``error`` (per unit, keepdim like ``maxabs``) over ``divisors``,
    and that error; ties keep the earlier (finer) grid. An all-zero unit gets step 1."""
    best = torch.where(maxabs > 0, maxabs / divisors[0], torch.ones_like(maxabs))
    best_err = error(best)
    for j in divisors[1:]:
        grid = torch.where(maxabs > 0, maxabs / j, torch.ones_like(maxabs))
        err = error(grid)
        better = err < best_err
        best = torch.where(better, grid, best)
        best_err = torch.where(better, err, best_err)
    return best, best_err


def search_grid(
    x: Tensor,
    maxabs: Tensor,
    mode: str,
    limit: int,
    dtype: torch.dtype,
    error: Callable[[Tensor], Tensor],
) -> tuple[Tensor, Tensor]:
    """The best step maxabs / j (keepdim like ``maxabs``) and its ``error``: over every j up to 8 bits;
    above, over :func:`grid_divisors`, then :func:`fine_divisors` around the best and each unit's own
    grid (:func:`own_grid_divisors`, to the :func:`rounding_tolerance` of ``dtype``, the dtype ``x``
    was stored in; a unit on no grid retries its best). Never worse than j = limit."""
    if limit <= EXHAUSTIVE_GRID_LIMIT:
        return best_grid(maxabs, list(grid_divisors(limit)), error)
    coarse, _ = best_grid(maxabs, list(grid_divisors(limit)), error)
    best_j = torch.where(maxabs > 0, maxabs / coarse, 1.0).round()
    own = own_grid_divisors(x, mode, limit, rounding_tolerance(dtype))
    divisors: list[int | Tensor] = [*fine_divisors(best_j, limit), torch.where(own > 0, own, best_j)]
    return best_grid(maxabs, divisors, error)
