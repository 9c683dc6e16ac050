"""The ``derived`` block of summary.json: quantities the report computes from the stage results.

:func:`derive` divides every architecture's :data:`COST_METRICS` by the baseline's (:class:`CostRatios`)
and turns each simulation run's zero-skip counts into the fraction of ADC conversions each rule saves
(:class:`ZeroSkipSavings`). It reads only typed stage results, so the block never disagrees with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from forms.cost.estimate import Estimate
from forms.sim.result import LayerZeroSkip, SimulationResult


@dataclass(frozen=True)
class CostRatios:
    """One architecture's estimate.json figures divided by the baseline's (None: no baseline figure)."""

    chip_area_mm2: float | None = field(metadata={"label": "area (mm²)"})
    chip_power_w: float | None = field(metadata={"label": "power (W)"})
    energy_per_inference_j: float | None = field(metadata={"label": "energy / inference (J)"})
    latency_s: float | None = field(metadata={"label": "latency (s)"})
    fps: float | None = field(metadata={"label": "FPS"})
    gops_per_s_mm2: float | None = field(metadata={"label": "GOPs/(s·mm²)"})
    gops_per_w: float | None = field(metadata={"label": "GOPs/W"})
    peak_gops_per_s_mm2: float | None = field(metadata={"label": "peak GOPs/(s·mm²)"})
    peak_gops_per_w: float | None = field(metadata={"label": "peak GOPs/W"})

    def to_dict(self) -> dict[str, float | None]:
        """``{metric: ratio}`` in :data:`COST_METRICS` order."""
        return asdict(self)


COST_METRICS: tuple[tuple[str, str], ...] = tuple((f.name, f.metadata["label"]) for f in fields(CostRatios))
"""estimate.json fields set side by side in the report, with their labels (the fields of CostRatios)."""


def ratio(value: Any, base: Any) -> float | None:
    """value / base, or None when either is not a number or the base is zero."""
    v, b = _number(value), _number(base)
    if v is None or b is None or b == 0:
        return None
    return v / b


def _number(value: Any) -> float | None:
    """``value`` as a float, or None when it is not a number (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def estimate_ratios(estimates: Mapping[str, Estimate], baseline: str) -> dict[str, CostRatios]:
    """Each architecture's :data:`COST_METRICS` divided by the baseline architecture's (empty without it)."""
    if baseline not in estimates:
        return {}
    base = estimates[baseline]
    return {
        arch: CostRatios(**{key: ratio(getattr(est, key), getattr(base, key)) for key, _ in COST_METRICS})
        for arch, est in estimates.items()
    }


@dataclass(frozen=True)
class LayerSavings:
    """One layer's conversions without skipping and the fraction of them each rule skips."""

    conversions_total: float
    saved_leading: float | None
    """Skipped by the "leading" rule / conversions (None without conversions)."""
    saved_bitplane: float | None
    """Skipped by the "bitplane" rule / conversions (None without conversions)."""


@dataclass(frozen=True)
class OverallSavings:
    """Conversions and skips summed over the layers, and the fraction each rule saves."""

    conversions_total: float
    conversions_skipped_leading: float
    saved_leading: float | None
    conversions_skipped_bitplane: float
    saved_bitplane: float | None


@dataclass(frozen=True)
class ZeroSkipSavings:
    """Zero-skip savings of one simulation run, per layer and over all layers."""

    layers: dict[str, LayerSavings]
    overall: OverallSavings

    def to_dict(self) -> dict[str, Any]:
        """``{"layers": {layer: {...}}, "overall": {...}}``."""
        return asdict(self)


def zero_skip_savings(zero_skip: Mapping[str, LayerZeroSkip]) -> ZeroSkipSavings:
    """Per layer and overall: fraction of ADC conversions each rule skips, from simulator counts."""
    layers: dict[str, LayerSavings] = {}
    total = leading = bitplane = 0.0
    for layer, stats in zero_skip.items():
        conversions = float(stats.conversions_total)
        layers[layer] = LayerSavings(
            conversions,
            ratio(stats.conversions_skipped_leading, conversions),
            ratio(stats.conversions_skipped_bitplane, conversions),
        )
        leading += stats.conversions_skipped_leading
        bitplane += stats.conversions_skipped_bitplane
        total += conversions
    overall = OverallSavings(total, leading, ratio(leading, total), bitplane, ratio(bitplane, total))
    return ZeroSkipSavings(layers, overall)


@dataclass(frozen=True)
class Derived:
    """The ``derived`` block: cost ratios to the baseline, zero-skip savings of every simulation run."""

    estimate_ratios: dict[str, CostRatios]
    zero_skip: dict[str, ZeroSkipSavings]

    def to_dict(self) -> dict[str, Any]:
        """``{"estimate_ratios": {arch: {...}}, "zero_skip": {run: {...}}}``."""
        return {
            "estimate_ratios": {arch: r.to_dict() for arch, r in self.estimate_ratios.items()},
            "zero_skip": {run: s.to_dict() for run, s in self.zero_skip.items()},
        }


def derive(
    simulate: Mapping[str, SimulationResult], estimates: Mapping[str, Estimate], baseline: str
) -> Derived:
    """Cost ratios of ``estimates`` to ``baseline``; zero-skip savings of every run that counted skips."""
    return Derived(
        estimate_ratios(estimates, baseline),
        {run: zero_skip_savings(m.zero_skip) for run, m in simulate.items() if m.zero_skip},
    )
