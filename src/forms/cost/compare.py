"""Comparison: one network estimated on several architectures, each figure's ratio to the first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from forms.cost.activity import SkipFractions
from forms.cost.arch import ArchSpec
from forms.cost.estimate import Estimate, estimate
from forms.cost.layer_shapes import Workload
from forms.errors import ConfigError

COMPARE_FIELDS: tuple[str, ...] = (
    "fps",
    "latency_s",
    "energy_per_inference_j",
    "chip_area_mm2",
    "chip_power_w",
    "chips",
    "crossbars_needed",
    "gops_per_s_mm2",
    "gops_per_w",
    "peak_gops_per_s_mm2",
    "peak_gops_per_w",
)
"""Figures set side by side by :func:`compare`."""


@dataclass
class Comparison:
    """Several estimates of one network, with each figure's ratio to the first architecture."""

    model: str
    estimates: list[Estimate]

    def rows(self) -> list[dict[str, Any]]:
        """One row per architecture: every compared figure and its ratio to the first."""
        base = self.estimates[0]
        rows = []
        for est in self.estimates:
            row: dict[str, Any] = {"arch": est.arch}
            for f in COMPARE_FIELDS:
                v, b = getattr(est, f), getattr(base, f)
                row[f] = v
                row[f"{f}_ratio"] = v / b if b else float("nan")
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (compare.json): the side-by-side rows and every full estimate."""
        return {
            "model": self.model,
            "baseline": self.estimates[0].arch,
            "rows": self.rows(),
            "estimates": [e.to_dict() for e in self.estimates],
        }


def compare(
    archs: Sequence[ArchSpec], workload: Workload, skip: SkipFractions = SkipFractions()
) -> Comparison:
    """Estimate one network on several architectures (its layer shapes computed once); ratios to the first."""
    if not archs:
        raise ConfigError("compare needs at least one architecture")
    return Comparison(workload.name, [estimate(arch, workload, skip) for arch in archs])
