"""The verdict's typed results (:mod:`forms.experiments.verdict` computes them): the headline of FORMS
against each baseline (:class:`Headline`), the network-wide skip figures (:class:`SkipSummary`), the
tornado's bars (:class:`TornadoBar`), the break-even maps (:class:`BreakEven`) and the whole
:class:`Verdict`, whose ``to_dict()`` is verdict.json and summary.json's ``verdict.<network>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from forms.cost.estimate import Estimate
from forms.cost.measured_activity import MeasurementSource
from forms.cost.optimize import Optimum

METRICS: tuple[tuple[str, str], ...] = (
    ("gops_per_s_mm2", "GOPs/(s·mm²)"),
    ("gops_per_w", "GOPs/W"),
    ("fps", "FPS"),
    ("energy_per_inference_j", "energy per image"),
)
"""Estimate fields the verdict divides, with their labels (energy: lower is better, the others higher)."""

MAIN_METRICS: tuple[str, ...] = ("gops_per_s_mm2", "gops_per_w")
"""The metrics the tornado and break-even charts draw."""


def metric_ratios(forms: Estimate, baseline: Estimate) -> dict[str, float]:
    """FORMS' figure divided by the baseline's, for every metric of :data:`METRICS`."""
    return {key: getattr(forms, key) / getattr(baseline, key) for key, _ in METRICS}


def _skipped(after: float, before: float) -> float:
    """The fraction of ``before`` actions that skipping removed (0 when nothing is counted)."""
    return 1.0 - after / before if before else 0.0


@dataclass(frozen=True)
class SkipSummary:
    """The fractions of FORMS' conversions and crossbar reads skipped over the whole network, and where
    they come from (what the preset's hardware takes: ``zero_skip.saves``)."""

    rule: str
    """The FORMS preset's zero-skip rule (``leading`` or ``bitplane``)."""
    fraction: float
    """Skipped conversions / conversions without skipping, over every layer of the FORMS preset."""
    read_fraction: float
    """Skipped crossbar reads / reads without skipping, likewise (0 when reads are not saved)."""
    source: str
    """Where the layers' skip figures come from (measured, a nearest network's, or preset defaults)."""

    @classmethod
    def of(cls, est: Estimate, unskipped: Estimate, rule: str) -> SkipSummary:
        """From a FORMS estimate and the same design's without skipping: the network's conversions and
        crossbar reads after skipping over those before."""
        conversions = _skipped(*(sum(c.conversions for c in e.layers) for e in (est, unskipped)))
        reads = _skipped(*(sum(c.actions["crossbar"] for c in e.layers) for e in (est, unskipped)))
        sources = "; ".join(sorted({c.skip_source for c in est.layers}))
        return cls(rule, conversions, reads, sources)


@dataclass(frozen=True)
class AccuracyAtOptimum:
    """The accuracy floor one design's optimum was held to, and the simulator's accuracy there."""

    max_drop_points: float
    """Largest allowed drop below the float model, in percentage points."""
    floor: float
    """Lowest allowed accuracy (0..1)."""
    measured_on: str
    """The measured network (``<model>-<dataset>``) the floor was judged by."""
    borrowed: bool
    """Whether that was measured on another model or another data set than the costed network's."""
    accuracy: float
    """The measured accuracy at the optimum (0..1)."""
    images: int
    """Test images the measurement ran."""
    dataset_known: bool = False
    """Whether the costed network's data set was known (records written before it was asked: not)."""

    @property
    def label(self) -> str:
        """'borrowed', 'data set unknown' or '' (:class:`~forms.cost.measured_activity.MeasurementSource`)."""
        return MeasurementSource(self.borrowed, self.dataset_known).label

    @property
    def text(self) -> str:
        """e.g. '0.9851 >= 0.9821 (lenet5-mnist, 10000 images, borrowed)'."""
        label = f", {self.label}" if self.label else ""
        return f"{self.accuracy:.4f} >= {self.floor:.4f} ({self.measured_on}, {self.images} images{label})"

    @classmethod
    def of(cls, optimum: Optimum) -> AccuracyAtOptimum | None:
        """The floor and accuracy of ``optimum`` (None when it was searched without a floor)."""
        floor, point = optimum.accuracy_floor, optimum.accuracy
        if floor is None or point is None:
            return None
        m, known = floor.measured, floor.source.dataset_known
        return cls(
            floor.max_drop_points, floor.floor, m.name, floor.borrowed, point.accuracy, m.images, known
        )


def floor_label(optimum: Optimum) -> str:
    """How an optimum's accuracy was bounded, for a headline's setting: 'no accuracy floor', or 'accuracy
    within 1 point of float (lenet5-mnist, borrowed)'."""
    floor = optimum.accuracy_floor
    if floor is None:
        return "no accuracy floor"
    label = f", {floor.source.label}" if floor.source.label else ""
    points = "point" if floor.max_drop_points == 1 else "points"
    return f"accuracy within {floor.max_drop_points:g} {points} of float ({floor.measured.name}{label})"


@dataclass(frozen=True)
class Headline:
    """FORMS against one baseline on every metric, at one setting (the presets, or each one's optimum)."""

    setting: str
    """``presets``, or the optimum both designs are put at (objective and constraint)."""
    forms: str
    """The FORMS architecture's name."""
    baseline: str
    """The baseline architecture's name."""
    forms_values: dict[str, float]
    """FORMS' value of every metric."""
    baseline_values: dict[str, float]
    """The baseline's value of every metric."""
    ratios: dict[str, float]
    """FORMS / baseline per metric (> 1: FORMS higher; for energy per image lower is better)."""
    forms_choice: dict[str, Any] = field(default_factory=dict)
    """At an optimum: FORMS' free parameters there (dotted path -> value); empty at the presets."""
    baseline_choice: dict[str, Any] = field(default_factory=dict)
    """At an optimum: the baseline's free parameters there."""
    forms_accuracy: AccuracyAtOptimum | None = None
    """At an optimum held to an accuracy floor: FORMS' floor and measured accuracy there."""
    baseline_accuracy: AccuracyAtOptimum | None = None
    """Likewise for the baseline (None also when the measurement has no point at its widths)."""

    @classmethod
    def of(cls, setting: str, forms: Estimate, baseline: Estimate) -> Headline:
        """The headline of two estimates of the same network."""
        values = {key: getattr(forms, key) for key, _ in METRICS}
        base = {key: getattr(baseline, key) for key, _ in METRICS}
        return cls(setting, forms.arch, baseline.arch, values, base, metric_ratios(forms, baseline))

    @classmethod
    def at_optima(cls, forms: Optimum, baseline: Optimum) -> Headline:
        """The headline of two designs each at its own optimum for the same objective and constraint;
        the setting says how FORMS' accuracy was bounded (:func:`floor_label`)."""
        setting = f"optimum: max {forms.objective}, {forms.constraint.describe()}, {floor_label(forms)}"
        plain = cls.of(setting, forms.estimate, baseline.estimate)
        return replace(
            plain,
            forms_choice=dict(forms.choice),
            baseline_choice=dict(baseline.choice),
            forms_accuracy=AccuracyAtOptimum.of(forms),
            baseline_accuracy=AccuracyAtOptimum.of(baseline),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Headline:
        """Read back ``asdict``."""
        accuracy = {
            key: None if data.get(key) is None else AccuracyAtOptimum(**data[key])
            for key in ("forms_accuracy", "baseline_accuracy")
        }
        return cls(**{**data, **accuracy})


@dataclass(frozen=True)
class TornadoPoint:
    """The FORMS / baseline ratios at one point of a parameter's range."""

    label: str
    """The point in words (from the ranges file)."""
    fields: dict[str, Any]
    """The architecture fields (dotted paths) the point sets."""
    ratios: dict[str, float]
    """FORMS / baseline per metric at this point."""


@dataclass(frozen=True)
class TornadoBar:
    """One parameter of the tornado chart: its range, where the range comes from, the ratio at each point."""

    name: str
    """The parameter's identifier (``UncertainParameter.name``)."""
    label: str
    """What the parameter is, in words."""
    design: str
    """Which design's fields it sets: ``forms``, ``baseline`` or ``both``."""
    status: str
    """Where the range comes from: ``sourced``, ``measured`` or ``assumed``."""
    justification: str
    """Why these values: the sources, measurements or reasoning."""
    points: list[TornadoPoint]
    """The ratios at every point of the range, in the ranges file's order."""

    def span(self, metric: str) -> tuple[float, float]:
        """(lowest, highest) ratio of ``metric`` over the range."""
        values = [p.ratios[metric] for p in self.points]
        return min(values), max(values)

    def width(self, metric: str) -> float:
        """How far the range moves the ratio of ``metric`` (0 for a one-point range)."""
        low, high = self.span(metric)
        return high - low

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TornadoBar:
        """Read back ``asdict``."""
        return cls(**{**data, "points": [TornadoPoint(**p) for p in data["points"]]})


@dataclass(frozen=True)
class Crossing:
    """Where the ratio crosses 1 between two neighbouring ADC counts, at one skip fraction."""

    skip_fraction: float
    """The skip fraction (a row of the grid) the crossing lies on."""
    per_crossbar: float
    """Linear interpolation between the two grid points."""
    between: tuple[float, float]
    """The two neighbouring ADC counts whose ratios lie on either side of 1."""


@dataclass(frozen=True)
class BreakEven:
    """The FORMS / baseline ratio of one metric over ADCs per FORMS crossbar x skip fraction."""

    metric: str
    """The metric whose ratio the grid holds."""
    baseline: str
    """The baseline architecture's name."""
    per_crossbar: list[float]
    """The grid's ADCs per FORMS crossbar (columns)."""
    skip_fraction: list[float]
    """The grid's fractions of conversions skipped (rows)."""
    ratios: list[list[float]]
    """ratios[i][j]: at skip_fraction[i] and per_crossbar[j]."""
    crossings: list[Crossing]
    """Every place a row of the grid reaches or crosses a ratio of 1."""
    preset_per_crossbar: float
    """The FORMS preset's ADCs per crossbar."""
    measured_skip: float | None
    """The network-wide measured skip fraction (None: nothing measured)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BreakEven:
        """Read back ``asdict``."""
        crossings = [
            Crossing(c["skip_fraction"], c["per_crossbar"], tuple(c["between"])) for c in data["crossings"]
        ]
        return cls(**{**data, "crossings": crossings})


@dataclass(frozen=True)
class Verdict:
    """The verdict on one network (:func:`compute_verdict`); :meth:`to_dict` is verdict.json."""

    network: str
    """The network judged, in words (e.g. ``lenet5 (mnist)``)."""
    forms: str
    """The FORMS architecture's name."""
    baseline: str
    """The baseline of the tornado and break-even charts (the first one given)."""
    skip: SkipSummary
    """FORMS' network-wide skip fractions and their source."""
    headline: list[Headline]
    """FORMS against every baseline at the presets, then at each design's optima."""
    tornado: list[TornadoBar]
    """Widest bar (on the first main metric) first."""
    break_even: list[BreakEven]
    """One break-even grid per main metric."""
    notes: list[str] = field(default_factory=list)
    """How to read the figures and every assumption behind them."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """Read back :meth:`to_dict`."""
        return cls(
            network=data["network"],
            forms=data["forms"],
            baseline=data["baseline"],
            skip=SkipSummary(**data["skip"]),
            headline=[Headline.from_dict(h) for h in data["headline"]],
            tornado=[TornadoBar.from_dict(b) for b in data["tornado"]],
            break_even=[BreakEven.from_dict(b) for b in data["break_even"]],
            notes=list(data.get("notes", [])),
        )
