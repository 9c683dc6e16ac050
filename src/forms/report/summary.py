"""summary.json: every stage's typed result in one :class:`Summary`, plus the quantities derived from them.

Layout (every report number is read from one of these paths)::

    format, version, title, meta{created, command, machine, [stage timings], [wall_seconds]}
    parameters{...}            the settings that produced the figures (flattened into the report)
    assumptions[...]           statements the figures rest on (strings)
    baseline                   the architecture the cost ratios divide by
    train{...}                 metrics.json of `forms train` ({} without one)
    compress{...}              metrics.json of `forms compress` ({} without one)
    simulate{<run>: {setup{encoding, mode, adc_bits, ...}, metrics{...}}}
    estimate{<arch>: {...}}    estimate.json of `forms estimate`, one per architecture
    <extra>...                 a job's own tables (`forms reproduce`: experiments; `forms sweep`: points)
    derived{estimate_ratios, zero_skip}   computed from the fields above (:mod:`forms.report.derived`)

:meth:`Summary.to_dict` writes this layout and :meth:`Summary.from_dict` reads it back; ``derived`` is
always recomputed from the stage results, so it never disagrees with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from forms.compress.result import CompressResult
from forms.cost.estimate import Estimate
from forms.nn.train_result import TrainResult
from forms.report.derived import Derived, derive
from forms.report.records import RunMeta, SimulationRun

SUMMARY_FORMAT = "forms-summary"
SUMMARY_VERSION = 1
STANDARD_KEYS = (
    "format",
    "version",
    "title",
    "meta",
    "parameters",
    "assumptions",
    "baseline",
    "train",
    "compress",
    "simulate",
    "estimate",
    "derived",
)
"""Top-level keys of summary.json that are not a job's extra tables."""


@dataclass(frozen=True)
class Summary:
    """Everything a report shows: the settings, the typed stage results, a job's own tables, ratios."""

    title: str
    meta: RunMeta
    parameters: dict[str, Any]
    """The user's settings, as given (free-form)."""
    assumptions: list[str]
    baseline: str = "isaac-opt"
    """The architecture the cost ratios divide by."""
    train: TrainResult | None = None
    compress: CompressResult | None = None
    simulate: dict[str, SimulationRun] = field(default_factory=dict)
    """Simulation runs by name."""
    estimate: dict[str, Estimate] = field(default_factory=dict)
    """Cost-model estimates by architecture."""
    extra: dict[str, Any] = field(default_factory=dict)
    """A job's own tables (plain JSON data), each a top-level key of summary.json."""
    derived: Derived = field(init=False)
    """Cost ratios and zero-skip savings, computed from the fields above."""

    def __post_init__(self) -> None:
        for key in self.extra:
            if key in STANDARD_KEYS:
                raise ValueError(f"extra summary key '{key}' collides with a standard key")
        metrics = {name: run.metrics for name, run in self.simulate.items()}
        object.__setattr__(self, "derived", derive(metrics, self.estimate, self.baseline))

    def to_dict(self) -> dict[str, Any]:
        """summary.json (the layout of the module docstring)."""
        return {
            "format": SUMMARY_FORMAT,
            "version": SUMMARY_VERSION,
            "title": self.title,
            "meta": self.meta.to_dict(),
            "parameters": self.parameters,
            "assumptions": self.assumptions,
            "baseline": self.baseline,
            "train": self.train.to_dict() if self.train is not None else {},
            "compress": self.compress.to_dict() if self.compress is not None else {},
            "simulate": {name: run.to_dict() for name, run in self.simulate.items()},
            "estimate": {arch: est.to_dict() for arch, est in self.estimate.items()},
            **self.extra,
            "derived": self.derived.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        """Read back :meth:`to_dict` (a summary.json, checked by :func:`check_summary`)."""
        check_summary(data)
        return cls(
            title=data["title"],
            meta=RunMeta.from_dict(data["meta"]),
            parameters=data["parameters"],
            assumptions=data["assumptions"],
            baseline=data["baseline"],
            train=TrainResult.from_dict(data["train"]) if data["train"] else None,
            compress=CompressResult.from_dict(data["compress"]) if data["compress"] else None,
            simulate={name: SimulationRun.from_dict(run) for name, run in data["simulate"].items()},
            estimate={arch: Estimate.from_dict(est) for arch, est in data["estimate"].items()},
            extra={key: value for key, value in data.items() if key not in STANDARD_KEYS},
        )


def check_summary(summary: dict[str, Any]) -> None:
    """Raise ValueError unless ``summary`` looks like a summary.json this module wrote."""
    if summary.get("format") != SUMMARY_FORMAT:
        raise ValueError(
            f"not a FORMS summary (format {summary.get('format')!r}, expected {SUMMARY_FORMAT!r})"
        )
    if summary.get("version") != SUMMARY_VERSION:
        raise ValueError(f"summary version {summary.get('version')!r} is not {SUMMARY_VERSION}")
