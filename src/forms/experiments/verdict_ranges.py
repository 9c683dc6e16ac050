"""The plausible ranges of the parameters that decide the verdict (``presets/verdict_ranges.yaml``).

Each :class:`UncertainParameter` sets ArchSpec fields by dotted path (checked with the sweep's own
path rule, :func:`forms.experiments.sweep_spec.arch_field_path_error`) on the FORMS design, the
baseline or both, at the points of its range, and says whether that range is sourced, measured or
assumed, and why. :func:`with_fields` applies such fields to an architecture the way a sweep point
does (:func:`forms.experiments.sweep_plan.with_arch_fields`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from forms.config import Spec
from forms.cost.arch import ArchSpec
from forms.experiments.sweep_plan import with_arch_fields
from forms.experiments.sweep_spec import arch_field_path_error

SKIP_PATH_PREFIX = "zero_skip.default_"
"""Fields under this prefix replace the measured skip fractions (the default then applies to every layer)."""


def _check_paths(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    """``fields`` when every key is an ArchSpec field path; ValueError naming the first that is not."""
    for path in fields:
        why = arch_field_path_error(path)
        if why is not None:
            raise ValueError(f"'{path}' names no architecture field: {why}")
    return fields


class RangePoint(Spec):
    """One point of a parameter's range: how the report names it and the fields it sets."""

    label: str = Field(description="The point in words, e.g. '16' or 'lossless, flipped'.")
    fields: dict[str, Any] = Field(
        min_length=1, description="ArchSpec fields by dotted path (e.g. adc.per_crossbar) and their values."
    )
    activity_mode: str | None = Field(
        None,
        description="A measured input mode (forms.cost.measured_activity.ACTIVITY_MODES): the network's "
        "packaged measurement in that mode (or its nearest measured network's) replaces FORMS' skip figures.",
    )

    _paths = field_validator("fields")(_check_paths)

    @field_validator("activity_mode")
    @classmethod
    def _known_mode(cls, mode: str | None) -> str | None:
        from forms.cost.measured_activity import check_mode

        return None if mode is None else check_mode(mode)


class UncertainParameter(Spec):
    """A parameter that moves the verdict: the design it applies to, its range, where the range comes from."""

    name: str = Field(description="Identifier (a key of the report's tables).")
    label: str = Field(description="What the parameter is, in words.")
    design: Literal["forms", "baseline", "both"] = Field(
        description="Which design's fields it sets: the FORMS preset, the baseline, or both."
    )
    values: list[RangePoint] = Field(
        min_length=1, description="Points of the plausible range (one point: a bar of zero width)."
    )
    status: Literal["sourced", "measured", "assumed"] = Field(
        description="sourced (published), measured (by the simulator) or assumed (a stated guess)."
    )
    justification: str = Field(description="Why these values: the sources, measurements or reasoning.")


class BreakEvenGrid(Spec):
    """The break-even chart's grid: ADCs per FORMS crossbar against the fraction of conversions skipped."""

    per_crossbar: list[float] = Field(min_length=2, description="ADCs per crossbar, increasing.")
    skip_fraction: list[float] = Field(min_length=2, description="Skip fractions in [0, 1), increasing.")
    justification: str = Field("", description="Why this grid.")

    @field_validator("per_crossbar", "skip_fraction")
    @classmethod
    def _increasing(cls, values: list[float]) -> list[float]:
        if any(b <= a for a, b in itertools.pairwise(values)):
            raise ValueError(f"values must increase, got {values}")
        return values


class AccuracyFloorSettings(Spec):
    """The accuracy floor every optimum of the verdict is held to (:mod:`forms.cost.measured_accuracy`)."""

    max_drop_points: float = Field(
        ge=0, description="Largest allowed drop, in percentage points, below the float model's accuracy."
    )
    fallback: str | None = Field(
        None,
        description="The measured network (<model>-<dataset>) whose accuracy a network without its own or "
        "its family's measurement borrows (labelled borrowed); None: such a network's optima have no floor.",
    )
    status: Literal["sourced", "measured", "assumed"] = Field(
        description="sourced (published), measured (by the simulator) or assumed (a stated guess)."
    )
    justification: str = Field(description="Why this drop and this fallback.")


class OptimumSettings(Spec):
    """How each design is put at its own optimum (:func:`forms.cost.optimize.optimize`, its default grid)."""

    objectives: list[Literal["gops_per_s_mm2", "gops_per_w", "fps"]] = Field(
        min_length=1, description="Objectives maximized, one optimum per design and objective."
    )
    constraint: Literal["none", "area", "power"] = Field(
        description="What one chip's optimum may not exceed."
    )
    limit: str | float | None = Field(
        None, description="The bound: a preset whose chip sets it, or a number."
    )
    justification: str = Field("", description="Why this objective and constraint.")
    accuracy_floor: AccuracyFloorSettings | None = Field(
        None,
        description="The accuracy floor of the optima (each objective is also searched without it); "
        "None: no floor.",
    )


class VerdictRanges(Spec):
    """Everything the "what decides the verdict" analysis varies."""

    parameters: list[UncertainParameter] = Field(min_length=1, description="The tornado chart's parameters.")
    break_even: BreakEvenGrid = Field(description="The break-even chart's grid.")
    optimum: OptimumSettings = Field(description="The headline's optima.")


def default_ranges_path() -> Path:
    """The packaged ``presets/verdict_ranges.yaml``."""
    return Path(str(resources.files("forms") / "presets" / "verdict_ranges.yaml"))


def load_verdict_ranges(path: str | Path | None = None) -> VerdictRanges:
    """Read and validate a ranges file (default: the packaged one); ConfigError naming a bad field."""
    return VerdictRanges.from_yaml(path or default_ranges_path())


def with_fields(arch: ArchSpec, fields: Mapping[str, Any]) -> ArchSpec:
    """``arch`` with ``fields`` (dotted ArchSpec paths) set and validated, its name marked with '*'."""
    if not fields:
        return arch
    data = {**arch.model_dump(), "name": f"{arch.name}*"}
    spec: ArchSpec = with_arch_fields(
        ArchSpec, data, list(fields.items()), f"{arch.name} with {dict(fields)}"
    )
    return spec


def replaces_measured_skip(fields: Mapping[str, Any]) -> bool:
    """Whether ``fields`` set a default skip fraction (it then replaces the measured ones on every layer)."""
    return any(path.startswith(SKIP_PATH_PREFIX) for path in fields)
