"""Zero-skip activity: what input zero-skipping saves in each layer, measured or assumed.

Per layer, three fractions (docs/design.md, "Cost model"): conversions skipped (a fragment whose inputs
are all zero at a step is not converted), crossbar reads skipped (every fragment of the crossbar idle at
a step) and the driver activity (the fraction of applied input digits that are non-zero; a zero digit
leaves its row driver idle). Measured fractions come from a ``forms simulate`` metrics dict or file
(:func:`activity_from_metrics`, :func:`load_activity`); :class:`SkipFractions` says, per layer, whether
the measured or an assumed default applies on an architecture, and keeps only the savings its
``zero_skip.saves`` takes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forms.cost.arch import ZeroSkipSpec
from forms.errors import ConfigError
from forms.io import read_json

SKIP_RULES = ("leading", "bitplane")
"""Zero-skip rules a measured activity can be read for (``forms simulate`` counts both)."""

OLD_METRICS_NOTE = "no read or input-digit counts in these metrics: read skip 0, driver activity 1"
"""Appended to an activity's source when its metrics predate the read and digit counts."""


def check_skip_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`SKIP_RULES`; :class:`ConfigError` otherwise."""
    if rule not in SKIP_RULES:
        raise ConfigError(f"zero-skip rule must be {' or '.join(repr(r) for r in SKIP_RULES)}, got '{rule}'")
    return rule


@dataclass(frozen=True)
class Activity:
    """Measured zero-skip activity per layer under one rule, and where it came from."""

    skip_fraction: Mapping[str, float]
    """Fraction of each layer's ADC conversions the rule skips."""
    rule: str
    source: str
    read_skip_fraction: Mapping[str, float] = field(default_factory=dict)
    """Fraction of each layer's crossbar read cycles the rule skips (every fragment idle); absent = 0."""
    driver_activity: Mapping[str, float] = field(default_factory=dict)
    """Fraction of each layer's applied input digits that are non-zero (row driver busy); absent = 1."""


def _fraction(stats: Mapping[str, Any], part: str, whole: str, where: str) -> float:
    """``stats[part] / stats[whole]`` (0 when the whole is 0); ConfigError unless 0 <= part <= whole."""
    try:
        total, count = float(stats[whole]), float(stats[part])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{where} lacks {whole} or {part}") from None
    if not (math.isfinite(total) and 0 <= count <= total):
        raise ConfigError(f"{where}: {part} = {count} is not within 0..{whole} = {total}")
    return count / total if total else 0.0


def activity_from_metrics(metrics: Mapping[str, Any], rule: str, source: str = "metrics") -> Activity:
    """Per-layer skip fractions and driver activity from a ``forms simulate`` metrics dict.

    Reads ``metrics["zero_skip"]``: conversions (always), reads and input digits (when the metrics
    count them; older metrics give read skip 0 and driver activity 1, and the source says so).
    """
    check_skip_rule(rule)
    if not isinstance(metrics, Mapping):
        raise ConfigError(
            f"{source} holds a {type(metrics).__name__}, not the metrics of `forms simulate` (a JSON object)"
        )
    zs = metrics.get("zero_skip")
    if not isinstance(zs, Mapping) or not zs:
        raise ConfigError(f"{source} has no 'zero_skip' statistics; produce it with `forms simulate`")
    conversions, reads, drivers = {}, {}, {}
    for layer, stats in zs.items():
        where = f"{source}: zero_skip['{layer}']"
        if not isinstance(stats, Mapping):
            raise ConfigError(f"{where} is not an object of counts")
        conversions[layer] = _fraction(stats, f"conversions_skipped_{rule}", "conversions_total", where)
        if stats.get("reads_total") is not None:  # absent (or null) in metrics that predate the counts
            reads[layer] = _fraction(stats, f"reads_skipped_{rule}", "reads_total", where)
        if stats.get("input_digits_total") is not None:
            drivers[layer] = _fraction(stats, "input_digits_nonzero", "input_digits_total", where)
    if len(reads) < len(conversions) or len(drivers) < len(conversions):
        source = f"{source}; {OLD_METRICS_NOTE}"
    return Activity(conversions, rule, source, reads, drivers)


def load_activity(path: str | Path, rule: str) -> Activity:
    """Read a simulate ``metrics.json`` (UTF-8 JSON object) into an :class:`Activity` for ``rule``."""
    check_skip_rule(rule)
    metrics = read_json(path, "activity file")
    return activity_from_metrics(metrics, rule, str(path))


@dataclass(frozen=True)
class LayerSkip:
    """What zero-skipping saves in one layer on one architecture, and where the figures come from."""

    fraction: float
    """Fraction of the layer's conversions skipped (0 unless the arch saves conversions or reads)."""
    source: str
    read_fraction: float = 0.0
    """Fraction of the layer's crossbar read cycles skipped (0 unless the arch saves reads)."""
    driver_activity: float = 1.0
    """Fraction of row-driver activations that happen (1 unless the arch saves drivers)."""


def _check_fraction(name: str, value: float | None, closed: bool = False) -> None:
    """ConfigError unless ``value`` is None or in [0, 1) ([0, 1] when ``closed``)."""
    if value is None:
        return
    if not (0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0):
        raise ConfigError(f"{name} must be in [0, 1{']' if closed else ')'}, got {value}")


@dataclass(frozen=True)
class SkipFractions:
    """Where each layer's skip figures come from: measured activity, else defaults."""

    activity: Activity | None = None
    """Measured per-layer figures; None when nothing was measured."""
    default: float | None = None
    """Conversion skip for layers without a measurement; None = the arch's zero_skip.default_skip_fraction."""
    default_read: float | None = None
    """Read skip for layers without a measurement; None = the arch's zero_skip.default_read_skip_fraction."""
    default_driver_activity: float = 1.0
    """Driver activity for layers without a measurement: 1 = every row driver drives every digit (no
    input statistics assumed)."""
    note: str = ""
    """How the defaults were chosen (e.g. a nearest measured network's network-wide figures)."""

    def __post_init__(self) -> None:
        _check_fraction("default skip fraction", self.default)
        _check_fraction("default read skip fraction", self.default_read)
        _check_fraction("default driver activity", self.default_driver_activity, closed=True)

    def _raw(self, zero_skip: ZeroSkipSpec, name: str) -> tuple[float, float, float, str]:
        """(conversion skip, read skip, driver activity, source) of ``name``, before the arch's savings."""
        act = self.activity
        if act is not None and name in act.skip_fraction:
            return (
                act.skip_fraction[name],
                act.read_skip_fraction.get(name, 0.0),
                act.driver_activity.get(name, 1.0),
                f"measured ({act.rule}, {act.source})",
            )
        conv = zero_skip.default_skip_fraction if self.default is None else self.default
        read = zero_skip.default_read_skip_fraction if self.default_read is None else self.default_read
        driver = self.default_driver_activity
        source = f"assumed defaults: conversions {conv:.3f}, reads {read:.3f}, driver activity {driver:.3f}"
        return conv, read, driver, f"{source} ({self.note})" if self.note else source

    def for_layer(self, zero_skip: ZeroSkipSpec, name: str) -> LayerSkip:
        """The savings of layer ``name`` on an architecture with ``zero_skip`` logic (none without any).

        Only what ``zero_skip.saves`` takes counts; a skipped read skips all its conversions, so with
        reads saved the conversion skip is at least the read skip.
        """
        if zero_skip.rule == "none":
            return LayerSkip(0.0, "no zero-skip logic")
        conv, read, driver, source = self._raw(zero_skip, name)
        saves = set(zero_skip.saves)
        read = read if "reads" in saves else 0.0
        conv = max(conv if "conversions" in saves else 0.0, read)
        driver = driver if "drivers" in saves else 1.0
        return LayerSkip(conv, f"{source}; saves {', '.join(zero_skip.saves) or 'nothing'}", read, driver)
