"""Pipeline balance: layers spread over chips and replicated, as ISAAC does, to even out the stages.

Layers are pipelined across tiles; each is copied (replicated) within the chips' crossbars so that the
slowest stage is as short as possible. FPS = 1 / slowest stage; the single-image latency runs the
layers one after another, each followed by the architecture's digital cycles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from forms.cost.arch import ArchSpec
from forms.cost.layer_cost import LayerCost


def balance_replication(
    times: Sequence[float], crossbars: Sequence[int], positions: Sequence[int], capacity: int
) -> list[int]:
    """Integer copies r_l >= 1 per layer minimizing the slowest stage with sum r_l crossbars_l <= capacity.

    Copies split a layer's P output positions, so a stage lasts ceil(P / r) positions
    (:func:`stage_time`); a layer is never copied more often than it has positions. The min-max optimum
    is found by bisection on the stage time; ``capacity`` must hold one copy of each.
    """
    t = np.asarray(times, dtype=float)
    c = np.asarray(crossbars, dtype=float)
    p = np.asarray(positions, dtype=float)
    if c.sum() > capacity:
        raise ValueError(f"{int(c.sum())} crossbars do not fit in {capacity}")
    if len(t) == 0:
        return []

    per_position = t / p

    def copies(stage: float) -> np.ndarray:
        # Fewest copies whose ceil(P / r) positions fit in ``stage``: each holds k = floor(stage / t_pos).
        positions_per_copy = np.floor(stage / per_position + 1e-9).clip(min=1)
        return np.minimum(np.ceil(p / positions_per_copy - 1e-9), p).clip(min=1)

    lo, hi = float((t / p).max()), float(t.max())
    if (copies(lo) * c).sum() <= capacity:
        return [int(r) for r in copies(lo)]
    for _ in range(100):
        mid = math.sqrt(lo * hi) if lo > 0 else (lo + hi) / 2
        if (copies(mid) * c).sum() <= capacity:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-12 * hi:
            break
    return [int(r) for r in copies(hi)]


def stage_time(layer_time_s: float, positions: int, copies: int) -> float:
    """Stage time of a layer of ``positions`` output positions over ``copies``: ceil(P / r) positions."""
    return layer_time_s * math.ceil(positions / copies) / positions


@dataclass(frozen=True)
class Pipeline:
    """How a network's layers occupy chips, and the throughput and latency that follow."""

    crossbars_per_chip: int
    crossbars_needed: int
    """Crossbars holding one copy of every layer."""
    chips: int
    """Fewest chips that hold one copy of every layer."""
    fps: float
    latency_s: float


def balance_pipeline(arch: ArchSpec, costs: Sequence[LayerCost]) -> Pipeline:
    """Replicate ``costs`` over the fewest chips of ``arch`` that hold them (sets each replication)."""
    per_chip = arch.organization.crossbars
    needed = sum(c.crossbars for c in costs)
    chips = max(1, math.ceil(needed / per_chip))
    reps = balance_replication(
        [c.layer_time_s for c in costs],
        [c.crossbars for c in costs],
        [c.positions for c in costs],
        chips * per_chip,
    )
    for c, r in zip(costs, reps, strict=True):
        c.replication = r
        c.stage_time_s = stage_time(c.layer_time_s, c.positions, r)
    slowest = max(c.stage_time_s for c in costs)
    digital_s = arch.digital_cycles_per_layer * arch.read_time_ns * 1e-9
    return Pipeline(
        crossbars_per_chip=per_chip,
        crossbars_needed=needed,
        chips=chips,
        fps=1.0 / slowest,
        latency_s=sum(c.stage_time_s + digital_s for c in costs),
    )
