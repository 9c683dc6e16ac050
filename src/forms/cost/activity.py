"""Zero-skip activity: the fraction of each layer's ADC conversions that input zero-skipping saves.

Measured fractions come from a ``forms simulate`` metrics dict or file (:func:`activity_from_metrics`,
:func:`load_activity`); :class:`SkipFractions` says, per layer, whether the measured or an assumed
default fraction applies on an architecture.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forms.cost.arch import ZeroSkipSpec
from forms.errors import ConfigError
from forms.io import read_json

SKIP_RULES = ("leading", "bitplane")
"""Zero-skip rules a measured activity can be read for (``forms simulate`` counts both)."""


def check_skip_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`SKIP_RULES`; :class:`ConfigError` otherwise."""
    if rule not in SKIP_RULES:
        raise ConfigError(f"zero-skip rule must be {' or '.join(repr(r) for r in SKIP_RULES)}, got '{rule}'")
    return rule


@dataclass(frozen=True)
class Activity:
    """Measured zero-skip activity: fraction of conversions skipped per layer, and where it came from."""

    skip_fraction: Mapping[str, float]
    rule: str
    source: str


def activity_from_metrics(metrics: Mapping[str, Any], rule: str, source: str = "metrics") -> Activity:
    """Skip fractions per layer from a ``forms simulate`` metrics dict (``metrics["zero_skip"]``)."""
    check_skip_rule(rule)
    if not isinstance(metrics, Mapping):
        raise ConfigError(
            f"{source} holds a {type(metrics).__name__}, not the metrics of `forms simulate` (a JSON object)"
        )
    zs = metrics.get("zero_skip")
    if not isinstance(zs, Mapping) or not zs:
        raise ConfigError(f"{source} has no 'zero_skip' statistics; produce it with `forms simulate`")
    fractions = {}
    for layer, stats in zs.items():
        try:
            total = float(stats["conversions_total"])
            skipped = float(stats[f"conversions_skipped_{rule}"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(
                f"{source}: zero_skip['{layer}'] lacks conversions_total or conversions_skipped_{rule}"
            ) from None
        if not (math.isfinite(total) and 0 <= skipped <= total):
            raise ConfigError(f"{source}: zero_skip['{layer}'] skips {skipped} of {total} conversions")
        fractions[layer] = skipped / total if total else 0.0
    return Activity(fractions, rule, source)


def load_activity(path: str | Path, rule: str) -> Activity:
    """Read a simulate ``metrics.json`` (UTF-8 JSON object) into an :class:`Activity` for ``rule``."""
    check_skip_rule(rule)
    metrics = read_json(path, "activity file")
    return activity_from_metrics(metrics, rule, str(path))


@dataclass(frozen=True)
class LayerSkip:
    """Fraction of one layer's conversions skipped, and where that fraction comes from."""

    fraction: float
    source: str


@dataclass(frozen=True)
class SkipFractions:
    """Where each layer's skip fraction comes from: measured activity, else a default."""

    activity: Activity | None = None
    """Measured per-layer fractions; None when nothing was measured."""
    default: float | None = None
    """Fraction for layers without a measurement; None = the arch's zero_skip.default_skip_fraction."""

    def __post_init__(self) -> None:
        if self.default is not None and not 0.0 <= self.default < 1.0:
            raise ConfigError(f"default skip fraction must be in [0, 1), got {self.default}")

    def for_layer(self, zero_skip: ZeroSkipSpec, name: str) -> LayerSkip:
        """The skip fraction of layer ``name`` on an architecture with ``zero_skip`` logic (0 without any)."""
        if zero_skip.rule == "none":
            return LayerSkip(0.0, "no zero-skip logic")
        if self.activity is not None and name in self.activity.skip_fraction:
            return LayerSkip(
                self.activity.skip_fraction[name], f"measured ({self.activity.rule}, {self.activity.source})"
            )
        default = zero_skip.default_skip_fraction if self.default is None else self.default
        return LayerSkip(default, f"assumed default {default:.3f}")
