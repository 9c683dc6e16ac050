"""The verdict: FORMS against each baseline, and the parameters that decide it.

:func:`compute_verdict` costs one network (its layer shapes computed once, a
:class:`~forms.cost.layer_shapes.Workload`) with the cost API (:func:`forms.cost.estimate.estimate`):

- the headline (:class:`Headline`): FORMS' figures divided by each baseline's on every metric of
  :data:`~forms.experiments.verdict_result.METRICS`, at the presets and with each design at its own
  optimum (:func:`forms.cost.optimize.optimize`), without and with the simulator's accuracy floor
  (:func:`verdict_floor`), with the network-wide skip figures FORMS was costed with (:class:`SkipSummary`);
- a tornado (:class:`TornadoBar`): the FORMS / first-baseline ratio at every point of each uncertain
  parameter's plausible range (``presets/verdict_ranges.yaml``, :mod:`forms.experiments.verdict_ranges`),
  everything else at the presets;
- break-even maps (:class:`BreakEven`): the ratio over ADCs per FORMS crossbar x skip fraction, with
  where it crosses 1 between neighbouring grid points.

A value that sets a default skip fraction replaces the measured per-layer fractions on every layer.
The typed results live in :mod:`forms.experiments.verdict_result`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from forms.cost.activity import SkipFractions
from forms.cost.arch import ArchSpec
from forms.cost.estimate import Estimate, estimate
from forms.cost.layer_shapes import Workload
from forms.cost.measured_accuracy import AccuracyFloor, nearest_accuracy
from forms.cost.optimize import Constraint, Optimum, optimize
from forms.errors import ConfigError
from forms.experiments.verdict_ranges import (
    OptimumSettings,
    UncertainParameter,
    VerdictRanges,
    replaces_measured_skip,
    with_fields,
)
from forms.experiments.verdict_result import (
    MAIN_METRICS,
    BreakEven,
    Crossing,
    Headline,
    SkipSummary,
    TornadoBar,
    TornadoPoint,
    Verdict,
    metric_ratios,
)


@dataclass(frozen=True)
class Costing:
    """What every evaluation of one network shares: its shapes and FORMS' skip figures."""

    workload: Workload
    """The network's layer shapes (a zoo model's, or a compressed checkpoint's non-zero rows and columns)."""
    skip: SkipFractions = field(default_factory=SkipFractions)
    """Measured per-layer figures under FORMS' rule, or a measured network's network-wide ones (its
    ``note`` says which); the default: each preset's stated default fractions."""
    dataset: str | None = None
    """The data set the network is meant for (``--dataset``, a workload's ``dataset`` or a checkpoint's
    record); None: not known, and a measurement of the same model is labelled 'data set unknown'
    (:mod:`forms.cost.measured_activity`)."""

    @property
    def measured(self) -> bool:
        """Whether the skip figures come from a measurement (this network's or its nearest's)."""
        return self.skip.activity is not None or self.skip.default is not None

    def skip_for(self, arch: ArchSpec, fields: Mapping[str, Any], mode: str | None = None) -> SkipFractions:
        """The skip figures of ``arch`` under ``fields``: the arch's defaults when they set a default
        fraction, the network's packaged measurement in ``mode`` when given (ConfigError when none is
        packaged), else the costing's own."""
        if replaces_measured_skip(fields):
            return SkipFractions()
        if mode is not None:
            from forms.cost.measured_activity import measured_skip

            return measured_skip(self.workload.name, mode, arch.zero_skip.rule, dataset=self.dataset)
        return self.skip

    def estimate(
        self, arch: ArchSpec, fields: Mapping[str, Any] | None = None, mode: str | None = None
    ) -> Estimate:
        """The estimate of the network on ``arch`` with ``fields`` (dotted paths) set, and the skip
        figures :meth:`skip_for` gives."""
        fields = fields or {}
        return estimate(with_fields(arch, fields), self.workload, self.skip_for(arch, fields, mode))


def crossings(per_crossbar: Sequence[float], skip: float, row: Sequence[float]) -> list[Crossing]:
    """Every place along ``row`` (ratios at ``per_crossbar``) where the ratio reaches or crosses 1."""
    out = []
    points = list(zip(per_crossbar, row, strict=True))
    for (n0, r0), (n1, r1) in itertools.pairwise(points):
        if (r0 - 1.0) * (r1 - 1.0) <= 0 and r0 != r1:
            out.append(Crossing(skip, n0 + (1.0 - r0) * (n1 - n0) / (r1 - r0), (n0, n1)))
    return out


def tornado_bar(
    costing: Costing, forms: ArchSpec, baseline: ArchSpec, param: UncertainParameter
) -> TornadoBar:
    """The FORMS / baseline ratios at every point of ``param``'s range, the rest at the presets (a
    point's activity mode applies to FORMS; ConfigError when that mode is not packaged)."""
    base_preset = costing.estimate(baseline) if param.design == "forms" else None
    points = []
    for point in param.values:
        forms_fields = point.fields if param.design in ("forms", "both") else {}
        base_est = base_preset or costing.estimate(baseline, point.fields)
        ratios = metric_ratios(costing.estimate(forms, forms_fields, point.activity_mode), base_est)
        points.append(TornadoPoint(point.label, dict(point.fields), ratios))
    return TornadoBar(param.name, param.label, param.design, param.status, param.justification, points)


def tornado(
    costing: Costing, forms: ArchSpec, baseline: ArchSpec, ranges: VerdictRanges
) -> tuple[list[TornadoBar], list[str]]:
    """Every parameter's bar, widest first (on the first main metric), and a note for each parameter
    left out because a measurement it needs is not packaged."""
    bars: list[TornadoBar] = []
    notes: list[str] = []
    for param in ranges.parameters:
        try:
            bars.append(tornado_bar(costing, forms, baseline, param))
        except ConfigError as exc:
            if not any(point.activity_mode for point in param.values):
                raise  # an impossible range is the ranges file's error, not a missing measurement
            notes.append(f"tornado: '{param.label}' left out: {exc}")
    bars.sort(key=lambda bar: -bar.width(MAIN_METRICS[0]))
    return bars, notes


def break_even(
    costing: Costing, forms: ArchSpec, baseline: ArchSpec, ranges: VerdictRanges, measured: float | None
) -> list[BreakEven]:
    """The ratio of each main metric over the ranges' grid of ADCs per crossbar x skip fraction."""
    grid = ranges.break_even
    base = costing.estimate(baseline)
    rows: dict[str, list[list[float]]] = {metric: [] for metric in MAIN_METRICS}
    for skip in grid.skip_fraction:
        ests = [
            costing.estimate(forms, {"adc.per_crossbar": n, "zero_skip.default_skip_fraction": skip})
            for n in grid.per_crossbar
        ]
        for metric in MAIN_METRICS:
            rows[metric].append([getattr(e, metric) / getattr(base, metric) for e in ests])
    return [
        BreakEven(
            metric,
            baseline.name,
            list(grid.per_crossbar),
            list(grid.skip_fraction),
            rows[metric],
            [
                c
                for s, row in zip(grid.skip_fraction, rows[metric], strict=True)
                for c in crossings(grid.per_crossbar, s, row)
            ],
            forms.adc.per_crossbar,
            measured,
        )
        for metric in MAIN_METRICS
    ]


def verdict_floor(
    network: str, settings: OptimumSettings, dataset: str | None = None
) -> tuple[AccuracyFloor | None, list[str]]:
    """The accuracy floor of ``network``'s optima on ``dataset`` (None: not known;
    :func:`forms.cost.measured_accuracy.nearest_accuracy`: the model's measurement, its family's or the
    settings' fallback, the last two borrowed) and a note saying which, or that there is none."""
    wanted = settings.accuracy_floor
    if wanted is None:
        return None, ["optima: no accuracy floor set (verdict ranges, optimum.accuracy_floor)"]
    measured = nearest_accuracy(network, wanted.fallback, dataset=dataset)
    if measured is None:
        return None, [f"optima: no accuracy floor: no measured accuracy for {network} nor a fallback"]
    floor = AccuracyFloor(wanted.max_drop_points, measured, network, dataset)
    costed = network if dataset is None else f"{network} on {dataset}"
    whose = f"borrowed from {measured.name} ({costed} not measured)" if floor.borrowed else "measured"
    if not floor.borrowed and not floor.source.dataset_known:
        whose = f"measured on {measured.dataset}, {network}'s data set unknown"
    return floor, [
        f"optima with an accuracy floor ({wanted.status}): {floor.describe()}; accuracy {whose}; "
        f"{wanted.justification.rstrip('.')}"
    ]


def _optimum(
    arch: ArchSpec, costing: Costing, objective: str, constraint: Constraint, floor: AccuracyFloor | None
) -> Optimum:
    """``arch``'s optimum, held to ``floor`` when its measurement has points at ``arch``'s encoding and
    widths (else without one: :func:`optimum_headlines` notes it)."""
    held = floor if floor is not None and floor.measured.covers(arch) else None
    return optimize(arch, costing.workload, objective, constraint, costing.skip, accuracy_floor=held)


def optimum_headlines(
    costing: Costing, forms: ArchSpec, baselines: Sequence[ArchSpec], settings: OptimumSettings
) -> tuple[list[Headline], list[str]]:
    """FORMS against each baseline with every design at its own optimum, per objective: without an
    accuracy floor, then (when one applies, :func:`verdict_floor`) with it; and notes on the floor, on
    each design it cannot judge and on each objective no design point can meet the bounds for."""
    constraint = Constraint.against(settings.constraint, settings.limit)
    floor, notes = verdict_floor(costing.workload.name, settings, costing.dataset)
    if floor is not None:
        notes += [
            f"optima: no accuracy floor for {arch.name}: {floor.measured.path.name} has no "
            f"{arch.encoding.value} point at its widths"
            for arch in (forms, *baselines)
            if not floor.measured.covers(arch)
        ]
    rows: list[Headline] = []
    floors = [None] if floor is None else [None, floor]
    for objective, held in itertools.product(settings.objectives, floors):
        try:
            best = _optimum(forms, costing, objective, constraint, held)
            others = [_optimum(b, costing, objective, constraint, held) for b in baselines]
        except ConfigError as exc:
            notes.append(f"no optimum for {objective}{'' if held is None else ' with the floor'}: {exc}")
            continue
        rows += [Headline.at_optima(best, other) for other in others]
    return rows, notes


def compute_verdict(
    network: str,
    costing: Costing,
    forms: ArchSpec,
    baselines: Sequence[ArchSpec],
    ranges: VerdictRanges,
) -> Verdict:
    """The headline, tornado and break-even of ``network`` for ``forms`` against ``baselines``.

    The tornado and break-even compare with ``baselines[0]``; the headline with every baseline.
    """
    if not baselines:
        raise ConfigError("the verdict needs at least one baseline architecture")
    if forms.zero_skip.rule == "none":
        raise ConfigError(
            f"'{forms.name}' has no zero-skip logic: the verdict's FORMS design must skip zeros"
        )
    forms_est = costing.estimate(forms)
    unskipped = costing.estimate(forms, {"zero_skip.rule": "none"})
    skip = SkipSummary.of(forms_est, unskipped, forms.zero_skip.rule)
    headline = [Headline.of("presets", forms_est, costing.estimate(b)) for b in baselines]
    optima, optimum_notes = optimum_headlines(costing, forms, baselines, ranges.optimum)
    bars, unmeasured = tornado(costing, forms, baselines[0], ranges)
    measured = skip.fraction if costing.measured else None
    notes = [
        "ratios are FORMS / baseline: above 1 FORMS is ahead, except energy per image (below 1: ahead)",
        "tornado and break-even: every parameter not varied stays at its preset value",
        "a value that sets a skip fraction replaces the measured per-layer fractions on every layer",
        f"optima: {ranges.optimum.justification.rstrip('.')}; the skip figures stay those of the preset's "
        "fragment size at every fragment size tried",
        *optimum_notes,
        *unmeasured,
        *([costing.skip.note] if costing.skip.note else []),
        *costing.workload.notes,
    ]
    return Verdict(
        network=network,
        forms=forms.name,
        baseline=baselines[0].name,
        skip=skip,
        headline=headline + optima,
        tornado=bars,
        break_even=break_even(costing, forms, baselines[0], ranges, measured),
        notes=notes,
    )


def packaged_skip(
    model: str, rule: str, mode: str | None = None, dataset: str | None = None
) -> tuple[SkipFractions | None, str]:
    """FORMS' skip figures for a zoo ``model`` on ``dataset`` (None: not known) simulated nowhere in this
    run, and their source in words: its packaged measurement in ``mode`` (default
    :data:`~forms.cost.measured_activity.DEFAULT_MODE`; its note says when it is borrowed or the data set
    unknown), else its nearest measured network's (:func:`forms.cost.measured_activity.measured_skip`),
    else (None, why): each preset's stated default."""
    from forms.cost.measured_activity import DEFAULT_MODE, measured_skip

    mode = mode or DEFAULT_MODE
    try:
        skip = measured_skip(model, mode, rule, dataset=dataset)
    except ConfigError as exc:
        return None, f"preset default (stated): {exc}"
    return skip, skip.note or f"measured ({mode}, packaged with forms)"


def split_archs(archs: Sequence[str], baseline: str) -> tuple[ArchSpec, list[ArchSpec]]:
    """The FORMS design (the first polarized architecture of ``archs``) and the baselines: ``baseline``
    first, then every other non-polarized architecture, in order."""
    from forms.cost.arch import load_arch

    specs = {name: load_arch(name) for name in dict.fromkeys([*archs, baseline])}
    forms = next((s for s in specs.values() if s.encoding.signs_per_fragment), None)
    if forms is None:
        raise ConfigError(
            f"no FORMS (polarized) architecture among {', '.join(archs)}: the verdict needs one"
        )
    others = [s for name, s in specs.items() if name != baseline and not s.encoding.signs_per_fragment]
    return forms, [specs[baseline], *others]
