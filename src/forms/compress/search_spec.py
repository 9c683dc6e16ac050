"""Typed specification of an automatic per-layer pruning search (:mod:`forms.compress.search`).

A search holds a whole :class:`CompressSpec` (geometry, bits, pruning unit, propagation, tile
rounding, ADMM schedule, held-out validation images) and chooses only ``prune.layer_ratios``; the
goal is an accuracy floor on the held-out validation images, or a crossbar budget, or both.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from forms.compress.spec import FINITE, CompressSpec
from forms.config import Spec

DEFAULT_SCAN_RATIOS = (0.25, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
"""The default grid of per-layer pruning ratios the sensitivity scan tries (a grid, not a tuned value:
``ratios`` replaces it)."""


class SearchSpec(Spec):
    """A per-layer ratio search: the compression it runs, the goal and the sensitivity-scan grid."""

    model_config = FINITE

    compress: CompressSpec = Field(
        default_factory=lambda: CompressSpec(validation_images=5000),
        description="The compression every trial runs (prune.layer_ratios is what the search sets; "
        "prune.ratio must be 0). validation_images > 0: the floor is checked on those held-out images; "
        "null: on the images the float model held out (forms train --validation-images).",
    )
    accuracy_floor: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Lowest accepted validation accuracy (fraction) of the compressed model; the search "
        "then looks for the most compressed allocation that keeps it.",
    )
    max_drop_points: float | None = Field(
        None,
        ge=0.0,
        le=100.0,
        description="Alternative to accuracy_floor: the floor is the float model's accuracy on the same "
        "validation images minus this many percentage points.",
    )
    crossbar_budget: int | None = Field(
        None,
        ge=1,
        description="Most final crossbars (whole crossbars per layer, the physical count, polarized where "
        "fragments allow) accepted; "
        "the search then looks for the least pruned allocation within the budget (and the floor, if set).",
    )
    ratios: list[float] = Field(
        default_factory=lambda: list(DEFAULT_SCAN_RATIOS),
        min_length=1,
        description="Per-layer pruning ratios the sensitivity scan tries on each prunable layer.",
    )
    scan_images: int | None = Field(
        None,
        ge=1,
        description="Validation images the sensitivity scan evaluates (the first N of the hold-out; "
        "None = all of them).",
    )
    max_trials: int = Field(
        8, ge=1, le=100, description="Most compression runs (trials) the search may start."
    )

    @field_validator("ratios")
    @classmethod
    def _ratios_sorted(cls, value: list[float]) -> list[float]:
        for ratio in value:
            if not 0.0 < ratio < 1.0:
                raise ValueError(f"every scan ratio must lie in (0, 1), got {ratio}")
        return sorted(set(value))

    @model_validator(mode="after")
    def _goal_and_compression(self) -> SearchSpec:
        if self.accuracy_floor is not None and self.max_drop_points is not None:
            raise ValueError("give accuracy_floor or max_drop_points, not both")
        if self.accuracy_floor is None and self.max_drop_points is None and self.crossbar_budget is None:
            raise ValueError("give a goal: accuracy_floor, max_drop_points or crossbar_budget")
        prune = self.compress.prune
        if self.compress.validation_images == 0:
            raise ValueError(
                "compress.validation_images must be > 0 or unset (the float model's held-out images): "
                "the search measures on held-out images"
            )
        if self.compress.schedule.retrain_epochs == 0:
            raise ValueError("compress.schedule.retrain_epochs must be > 0: its epochs are measured on them")
        if prune.scope != "layer" or prune.ratio != 0 or prune.layer_ratios:
            raise ValueError(
                "compress.prune must have scope 'layer', ratio 0 and no layer_ratios: the search sets them"
            )
        return self
