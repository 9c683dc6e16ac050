"""Each design at its own optimum: the free parameters that maximize an objective under a constraint.

``forms optimize`` (docs/design.md, "Cost model"): for one architecture, every combination of a small
declared grid of its free parameters (:func:`default_grid`: ADCs per crossbar, ADC width and flipping,
fragment size for polarized designs, crossbars per IMA), each a dotted ArchSpec field path set as a
sweep sets it (:func:`forms.experiments.sweep_plan.with_arch_fields`), is costed on one workload whose
layer shapes are computed once; the point with the best objective among those meeting the constraint
is the :class:`Optimum`. ADC widths are the lossless ones unless clipping is allowed (a clipping
ADC's accuracy is measured by the simulator, not by this search). An :class:`AccuracyFloor`
(:mod:`forms.cost.measured_accuracy`) also refuses every point whose (encoding, R, ADC bits, flipping)
was measured too far below the float model or was not measured at all (counted as unmeasured, never
assumed accurate). ``adc_anchor`` prices every ADC, the constraint's reference included, from one
published anchor by the one scaling rule.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from forms.cost.activity import SkipFractions
from forms.cost.arch import ArchSpec, load_arch
from forms.cost.estimate import Estimate, estimate
from forms.cost.inventory import chip_inventory
from forms.cost.layer_shapes import Workload
from forms.cost.measured_accuracy import AccuracyFloor, AccuracyPoint
from forms.errors import ConfigError

OBJECTIVES: tuple[str, ...] = ("gops_per_s_mm2", "gops_per_w", "fps")
"""Estimate figures an optimum can maximize."""

CONSTRAINED: dict[str, str] = {"area": "chip_area_mm2", "power": "chip_power_w"}
"""Constraint name -> the estimate figure it bounds (one chip's area, one chip's peak power)."""

ADCS_PER_CROSSBAR: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
"""ADCs per crossbar tried: from one ADC shared by two crossbars to 16 per crossbar."""
FRAGMENT_SIZES: tuple[int, ...] = (4, 8, 16, 32)
"""Fragment sizes R tried for polarized designs (those dividing the crossbar rows)."""
CROSSBARS_PER_IMA: tuple[int, ...] = (4, 8, 16)
"""Crossbars per IMA tried (ISAAC's 8, half and double)."""


def default_grid(arch: ArchSpec, allow_clipping: bool = False) -> dict[str, tuple[Any, ...]]:
    """The declared free parameters of ``arch``: dotted field path -> values tried.

    ``adc.bits`` is null (lossless at the point's fragment size and flipping) and, with
    ``allow_clipping``, also the preset's own width when it sets one.
    """
    bits: tuple[int | None, ...] = (None,)
    if allow_clipping and arch.adc.bits is not None:
        bits = (None, arch.adc.bits)
    grid: dict[str, tuple[Any, ...]] = {
        "adc.per_crossbar": ADCS_PER_CROSSBAR,
        "adc.flip": (False, True),
        "adc.bits": bits,
    }
    if arch.encoding.signs_per_fragment:
        grid["crossbar.fragment_size"] = tuple(r for r in FRAGMENT_SIZES if arch.crossbar.rows % r == 0)
    grid["organization.crossbars_per_ima"] = CROSSBARS_PER_IMA
    return grid


FREE_PARAMETERS: tuple[str, ...] = (
    "adc.per_crossbar",
    "adc.flip",
    "adc.bits",
    "crossbar.fragment_size",
    "organization.crossbars_per_ima",
)
"""Dotted paths :func:`default_grid` searches (``crossbar.fragment_size`` for polarized designs only)."""


def held_grid(
    arch: ArchSpec, held: Mapping[str, Any], allow_clipping: bool = False
) -> dict[str, tuple[Any, ...]]:
    """:func:`default_grid` of ``arch`` with each parameter in ``held`` (dotted path -> value) fixed to one
    value, e.g. ``{"crossbar.fragment_size": 8}`` to search FORMS at the fragment size whose accuracy was
    measured. A held parameter ``arch`` does not search (a fragment size for ISAAC) is ignored; a path
    outside :data:`FREE_PARAMETERS` is a ConfigError naming them."""
    unknown = sorted(set(held) - set(FREE_PARAMETERS))
    if unknown:
        raise ConfigError(
            f"cannot hold {', '.join(unknown)}: the free parameters are {', '.join(FREE_PARAMETERS)}"
        )
    grid = default_grid(arch, allow_clipping)
    return {path: (held[path],) if path in held else values for path, values in grid.items()}


def _with_fields(arch: ArchSpec, fields: Sequence[tuple[str, Any]]) -> ArchSpec:
    """``arch`` with each dotted field path set (validated; ConfigError when impossible)."""
    from forms.experiments.sweep_plan import with_arch_fields

    spec: ArchSpec = with_arch_fields(ArchSpec, arch.model_dump(), fields, f"{arch.name} optimum search")
    return spec


@dataclass(frozen=True)
class Constraint:
    """An upper bound on one chip's area or peak power (or none), and what it was taken from."""

    quantity: Literal["none", "area", "power"] = "none"
    """What is bounded: one chip's area, its peak power, or nothing."""
    limit: float | None = None
    """Largest allowed value (mm^2 for area, W for power); None without a constraint."""
    reference: str = ""
    """Where the limit comes from: a preset's name, or 'value'."""

    @classmethod
    def against(
        cls, quantity: str, limit: str | float | None = "isaac-ce", adc_anchor: str | None = None
    ) -> Constraint:
        """A bound on ``quantity`` (none, area, power) at ``limit``: a number, or a preset whose chip
        (its ADCs priced from ``adc_anchor`` when given) sets it."""
        if quantity == "none":
            return cls()
        if quantity not in CONSTRAINED:
            raise ConfigError(f"constraint must be none, {' or '.join(CONSTRAINED)}; got '{quantity}'")
        if limit is None:
            raise ConfigError(f"a {quantity} constraint needs a limit: a number or a preset, e.g. isaac-ce")
        try:
            value = float(limit)
        except ValueError:
            ref = load_arch(str(limit))
            if adc_anchor is not None:
                ref = _with_fields(ref, [("adc.anchor", adc_anchor)])
            inventory = chip_inventory(ref)
            area = sum(i.area_mm2 for i in inventory)
            value = area if quantity == "area" else sum(i.power_mw for i in inventory) * 1e-3
            return cls(quantity, value, str(limit))  # type: ignore[arg-type]
        if value <= 0:
            raise ConfigError(f"the {quantity} limit must be positive, got {value}")
        return cls(quantity, value, "value")  # type: ignore[arg-type]

    def allows(self, est: Estimate) -> bool:
        """Whether ``est`` meets the bound."""
        if self.quantity == "none" or self.limit is None:
            return True
        return float(getattr(est, CONSTRAINED[self.quantity])) <= self.limit * (1 + 1e-12)

    def describe(self) -> str:
        """One line, e.g. 'chip_area_mm2 <= 85.41 (isaac-ce)'."""
        if self.quantity == "none" or self.limit is None:
            return "no constraint"
        return f"{CONSTRAINED[self.quantity]} <= {self.limit:.4g} ({self.reference})"


@dataclass
class Optimum:
    """The best point of one architecture's free-parameter grid on one workload."""

    arch: str
    """The architecture's name."""
    model: str
    """The workload's name."""
    objective: str
    """The Estimate metric maximized."""
    value: float
    """The objective at the optimum."""
    preset_value: float
    """The objective at the preset as published (ADCs priced from the same anchor)."""
    preset_feasible: bool
    """Whether the preset as published meets the constraint and the accuracy floor."""
    constraint: Constraint
    """The bound every point was held to."""
    choice: dict[str, Any]
    """The optimum's value of every free parameter (dotted path -> value)."""
    adc_bits: int
    """The ADC width in use at the optimum (the lossless one when ``adc.bits`` is null)."""
    estimate: Estimate
    """The estimate at the optimum."""
    points: int
    """Grid points tried."""
    feasible: int
    """Points that met the constraint."""
    refused: int
    """Points that are no valid architecture (e.g. a fragment size that does not divide the rows)."""
    adc_anchor: str | None
    """The published ADC every ADC (the constraint's reference too) was priced from; None: each
    preset's own ADC prices."""
    accuracy_floor: AccuracyFloor | None = None
    """The accuracy floor every point was held to; None: accuracy not constrained."""
    accuracy: AccuracyPoint | None = None
    """The measured accuracy at the optimum (None without a floor)."""
    unmeasured: int = 0
    """Valid points refused because their accuracy was not measured (with a floor)."""
    below_floor: int = 0
    """Valid points refused because their measured accuracy is below the floor."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (optimize.json entries); the estimate without its per-layer rows."""
        return {
            "arch": self.arch,
            "model": self.model,
            "objective": self.objective,
            "value": self.value,
            "preset_value": self.preset_value,
            "gain_over_preset": self.value / self.preset_value if self.preset_value else float("nan"),
            "preset_feasible": self.preset_feasible,
            "constraint": {**asdict(self.constraint), "text": self.constraint.describe()},
            "choice": dict(self.choice),
            "adc_bits": self.adc_bits,
            "points": self.points,
            "feasible": self.feasible,
            "refused": self.refused,
            "adc_anchor": self.adc_anchor,
            "accuracy": None if self.accuracy_floor is None else self.accuracy_floor.record(self.accuracy),
            "unmeasured": self.unmeasured,
            "below_floor": self.below_floor,
            "estimate": self.estimate.to_dict(with_layers=False),
        }


def _check_grid(grid: Mapping[str, Sequence[Any]]) -> None:
    """Refuse an unknown dotted path or an empty value list up front, naming it."""
    from forms.experiments.sweep_spec import arch_field_path_error

    for path, values in grid.items():
        why = arch_field_path_error(path)
        if why is not None:
            raise ConfigError(f"optimize parameter '{path}' names no architecture field: {why}")
        if not values:
            raise ConfigError(f"optimize parameter '{path}' has no values to try")


@dataclass
class _Search:
    """Running tally of one exhaustive search."""

    best: tuple[float, dict[str, Any], Estimate, int, AccuracyPoint | None] | None = None
    tried: int = 0
    feasible: int = 0
    refused: int = 0
    unmeasured: int = 0
    below_floor: int = 0
    smallest: float = float("inf")
    """Smallest constrained figure reached (for the message when nothing is feasible)."""


def _search(
    arch: ArchSpec,
    workload: Workload,
    objective: str,
    constraint: Constraint,
    skip: SkipFractions,
    grid: Mapping[str, Sequence[Any]],
    fixed: Sequence[tuple[str, Any]],
    floor: AccuracyFloor | None,
) -> _Search:
    """Cost every valid point of ``grid`` allowed by ``floor``; keep the best meeting ``constraint``."""
    tally = _Search()
    for combo in itertools.product(*grid.values()):
        choice = dict(zip(grid, combo, strict=True))
        tally.tried += 1
        try:
            spec = _with_fields(arch, [*fixed, *choice.items()])
        except ConfigError:
            tally.refused += 1
            continue
        measured = floor.measured.point_for(spec) if floor is not None else None
        if floor is not None and not floor.allows(measured):
            if measured is None:
                tally.unmeasured += 1
            else:
                tally.below_floor += 1
            continue
        est = estimate(spec, workload, skip)
        if constraint.quantity != "none":
            tally.smallest = min(tally.smallest, float(getattr(est, CONSTRAINED[constraint.quantity])))
        if not constraint.allows(est):
            continue
        tally.feasible += 1
        value = float(getattr(est, objective))
        if tally.best is None or value > tally.best[0]:
            tally.best = (value, choice, est, spec.adc_bits, measured)
    return tally


def _nothing_feasible(arch: ArchSpec, constraint: Constraint, floor: AccuracyFloor | None, t: _Search) -> str:
    """Why no point of ``arch``'s grid was feasible, and what to change."""
    if floor is not None and t.tried > t.refused and t.unmeasured + t.below_floor == t.tried - t.refused:
        fixes = [
            *(["allow a larger drop (--max-accuracy-drop)"] if t.below_floor else []),
            *([f"measure {arch.name}'s points (scripts/measure_accuracy.py)"] if t.unmeasured else []),
        ]
        return (
            f"no point of {arch.name}'s grid meets {floor.describe()}: {t.below_floor} measured below it, "
            f"{t.unmeasured} unmeasured (no point at its encoding, fragment size, ADC width and flipping "
            f"under {floor.measured.path.name}'s conditions); {' or '.join(fixes)}"
        )
    return (
        f"no point of {arch.name}'s grid meets {constraint.describe()} (smallest: {t.smallest:.4g}); "
        "relax the constraint or widen the grid"
    )


def optimize(
    arch: ArchSpec,
    workload: Workload,
    objective: str = "gops_per_s_mm2",
    constraint: Constraint = Constraint(),
    skip: SkipFractions = SkipFractions(),
    grid: Mapping[str, Sequence[Any]] | None = None,
    adc_anchor: str | None = None,
    allow_clipping: bool = False,
    accuracy_floor: AccuracyFloor | None = None,
) -> Optimum:
    """Exhaustive search of ``grid`` (default :func:`default_grid`) for ``arch``'s best ``objective``
    under ``constraint`` and ``accuracy_floor`` on ``workload`` (its layer shapes reused by every point).

    With a floor, a point is tried only when its measured accuracy meets it; unmeasured points are
    refused and counted. Ties keep the first point in grid order. ConfigError when the objective is
    unknown or no point is feasible (the message says which bound stopped it).
    """
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}; got '{objective}'")
    grid = dict(grid) if grid is not None else default_grid(arch, allow_clipping)
    _check_grid(grid)
    fixed: list[tuple[str, Any]] = [("adc.anchor", adc_anchor)] if adc_anchor is not None else []
    if allow_clipping:
        fixed.append(("adc.allow_clipping", True))
    preset_spec = _with_fields(arch, fixed)
    preset = estimate(preset_spec, workload, skip)
    tally = _search(arch, workload, objective, constraint, skip, grid, fixed, accuracy_floor)
    if tally.best is None:
        raise ConfigError(_nothing_feasible(arch, constraint, accuracy_floor, tally))
    value, choice, est, bits, measured = tally.best
    preset_accurate = accuracy_floor is None or accuracy_floor.allows(
        accuracy_floor.measured.point_for(preset_spec)
    )
    return Optimum(
        arch=arch.name,
        model=workload.name,
        objective=objective,
        value=value,
        preset_value=float(getattr(preset, objective)),
        preset_feasible=constraint.allows(preset) and preset_accurate,
        constraint=constraint,
        choice=choice,
        adc_bits=bits,
        estimate=est,
        points=tally.tried,
        feasible=tally.feasible,
        refused=tally.refused,
        adc_anchor=adc_anchor,
        accuracy_floor=accuracy_floor,
        accuracy=measured,
        unmeasured=tally.unmeasured,
        below_floor=tally.below_floor,
    )
