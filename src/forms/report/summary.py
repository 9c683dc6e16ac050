"""summary.json: every stage's output in one dict, plus the quantities the report derives from them.

Layout (every report number is read from one of these paths)::

    format, version, title, meta{created, command, machine, ...}
    parameters{...}            the settings that produced the figures (flattened into the report)
    assumptions[...]           statements the figures rest on (strings)
    train{...}                 metrics.json of `forms train`
    compress{...}              metrics.json of `forms compress`
    simulate{<run>: {setup{encoding, mode, adc_bits, variation_sigma, runs}, metrics{...}}}
    estimate{<arch>: {...}}    estimate.json of `forms estimate`, one per architecture
    derived{estimate_ratios, zero_skip}   computed here from the fields above

:func:`derive` recomputes ``derived`` from the other fields, so it never disagrees with them.
"""

from __future__ import annotations

import datetime as _dt
import platform
from collections.abc import Mapping
from typing import Any

from forms.report.model import MISSING, resolve

SUMMARY_FORMAT = "forms-summary"
SUMMARY_VERSION = 1

COST_METRICS: tuple[tuple[str, str], ...] = (
    ("chip_area_mm2", "area (mm²)"),
    ("chip_power_w", "power (W)"),
    ("energy_per_inference_j", "energy / inference (J)"),
    ("latency_s", "latency (s)"),
    ("fps", "FPS"),
    ("gops_per_s_mm2", "GOPs/(s·mm²)"),
    ("gops_per_w", "GOPs/W"),
    ("peak_gops_per_s_mm2", "peak GOPs/(s·mm²)"),
    ("peak_gops_per_w", "peak GOPs/W"),
)
"""estimate.json fields set side by side in the report, with their labels (issue 5)."""

ZERO_SKIP_RULES: tuple[str, ...] = ("leading", "bitplane")
"""Zero-skip rules the simulator counts (docs/design.md)."""


def machine_description() -> str:
    """One line naming the machine: OS, CPU architecture, Python and logical CPU count."""
    import os

    return (
        f"{platform.system()} {platform.release()} {platform.machine()}, "
        f"{os.cpu_count()} logical CPUs, Python {platform.python_version()}"
    )


def build_summary(
    *,
    title: str,
    parameters: Mapping[str, Any],
    assumptions: list[str],
    train: Mapping[str, Any] | None = None,
    compress: Mapping[str, Any] | None = None,
    simulate: Mapping[str, Mapping[str, Any]] | None = None,
    estimate: Mapping[str, Mapping[str, Any]] | None = None,
    baseline: str = "isaac-opt",
    command: str = "",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble summary.json from stage outputs (plain dicts as the stages wrote them) and derive ratios.

    ``simulate`` maps a run name to ``{"setup": {...}, "metrics": <simulate metrics.json>}``;
    ``estimate`` maps an architecture name to its estimate.json; ``baseline`` is the architecture the
    cost ratios divide by. ``extra`` adds more top-level keys (e.g. the experiments of `forms reproduce`).
    """
    summary: dict[str, Any] = {
        "format": SUMMARY_FORMAT,
        "version": SUMMARY_VERSION,
        "title": title,
        "meta": {
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "command": command,
            "machine": machine_description(),
        },
        "parameters": dict(parameters),
        "assumptions": list(assumptions),
        "baseline": baseline,
        "train": dict(train or {}),
        "compress": dict(compress or {}),
        "simulate": {k: dict(v) for k, v in (simulate or {}).items()},
        "estimate": {k: dict(v) for k, v in (estimate or {}).items()},
    }
    for key, value in (extra or {}).items():
        if key in summary:
            raise ValueError(f"extra summary key '{key}' collides with a standard key")
        summary[key] = value
    summary["derived"] = derive(summary)
    return summary


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def ratio(value: Any, base: Any) -> float | None:
    """value / base, or None when either is missing or the base is zero."""
    v, b = _number(value), _number(base)
    if v is None or b is None or b == 0:
        return None
    return v / b


def estimate_ratios(estimates: Mapping[str, Mapping[str, Any]], baseline: str) -> dict[str, dict[str, Any]]:
    """Each architecture's :data:`COST_METRICS` divided by the baseline architecture's (empty without it)."""
    if baseline not in estimates:
        return {}
    base = estimates[baseline]
    return {
        arch: {key: ratio(est.get(key), base.get(key)) for key, _ in COST_METRICS}
        for arch, est in estimates.items()
    }


def zero_skip_savings(zero_skip: Mapping[str, Any]) -> dict[str, Any]:
    """Per layer and overall: fraction of ADC conversions each rule skips, from simulator counts."""
    layers: dict[str, Any] = {}
    totals = {"conversions_total": 0.0, **{f"conversions_skipped_{r}": 0.0 for r in ZERO_SKIP_RULES}}
    for layer, stats in zero_skip.items():
        if not isinstance(stats, Mapping):
            continue
        total = _number(stats.get("conversions_total"))
        row: dict[str, Any] = {"conversions_total": total}
        for rule in ZERO_SKIP_RULES:
            skipped = _number(stats.get(f"conversions_skipped_{rule}"))
            row[f"saved_{rule}"] = ratio(skipped, total)
            if skipped is not None:
                totals[f"conversions_skipped_{rule}"] += skipped
        if total is not None:
            totals["conversions_total"] += total
        layers[layer] = row
    overall: dict[str, Any] = {"conversions_total": totals["conversions_total"]}
    for rule in ZERO_SKIP_RULES:
        overall[f"conversions_skipped_{rule}"] = totals[f"conversions_skipped_{rule}"]
        overall[f"saved_{rule}"] = ratio(totals[f"conversions_skipped_{rule}"], totals["conversions_total"])
    return {"layers": layers, "overall": overall}


def derive(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The ``derived`` block: cost ratios to the baseline and zero-skip savings of every simulation run."""
    zero_skip = {}
    for run, entry in summary.get("simulate", {}).items():
        stats = resolve(entry, "metrics.zero_skip")
        if stats is not MISSING and isinstance(stats, Mapping) and stats:
            zero_skip[run] = zero_skip_savings(stats)
    return {
        "estimate_ratios": estimate_ratios(summary.get("estimate", {}), str(summary.get("baseline", ""))),
        "zero_skip": zero_skip,
    }


def check_summary(summary: Mapping[str, Any]) -> None:
    """Raise ValueError unless ``summary`` looks like a summary.json this module wrote."""
    if summary.get("format") != SUMMARY_FORMAT:
        raise ValueError(
            f"not a FORMS summary (format {summary.get('format')!r}, expected {SUMMARY_FORMAT!r})"
        )
    if summary.get("version") != SUMMARY_VERSION:
        raise ValueError(f"summary version {summary.get('version')!r} is not {SUMMARY_VERSION}")
