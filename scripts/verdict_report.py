"""The verdict on the networks of `forms reproduce` (c), from their layer shapes and packaged activity.

For every default workload of :class:`~forms.experiments.reproduce_spec.ReproduceSpec`, and every other
network with a packaged measurement (at its measured input shape): the zoo model's
layer shapes (dense), FORMS' skip figures from the packaged measurement in ``--mode`` (else the nearest
measured network's, else each preset's stated default: :func:`forms.experiments.verdict.packaged_skip`),
and :func:`forms.experiments.verdict.compute_verdict` with the packaged ranges. Writes
``<out>/<model>/verdict.json`` (reused when present), a report of the verdict sections in
``<out>/report`` and prints the headline and the widest tornado bars as Markdown.

Usage: ``python scripts/verdict_report.py --out runs/verdict [--mode in16-calibrated]``
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from forms.experiments.reproduce_spec import ReproduceSpec, Workload
from forms.experiments.stages import verdict_stage
from forms.experiments.verdict import packaged_skip, split_archs
from forms.experiments.verdict_result import AccuracyAtOptimum, Verdict
from forms.report import Report, RunMeta, Summary, write_report
from forms.report.cost_sections import assumptions_section
from forms.report.verdict_sections import VERDICT_KEY, verdict_sections


def _ratios(r: dict[str, float], keys: tuple[str, ...]) -> str:
    return " | ".join(f"{r[k]:.3f}" for k in keys)


ALL = ("gops_per_s_mm2", "gops_per_w", "fps", "energy_per_inference_j")
MAIN = ("gops_per_s_mm2", "gops_per_w")


def _presets_table(verdicts: dict[str, Verdict]) -> list[str]:
    """FORMS / each baseline at the presets, with the skip figures FORMS was costed with."""
    names = [h.baseline for h in next(iter(verdicts.values())).headline if h.setting == "presets"]
    head = "| network | conv. / reads skipped | " + " | ".join(
        f"{names[0]}: {m}" for m in ("GOPs/(s·mm²)", "GOPs/W", "FPS", "energy/image")
    )
    head += " | " + " | ".join(f"{n}: GOPs/(s·mm²) | {n}: GOPs/W" for n in names[1:]) + " |"
    lines = [head, "|" + "---|" * (2 + len(ALL) + 2 * (len(names) - 1))]
    for name, v in verdicts.items():
        rows = [h for h in v.headline if h.setting == "presets"]
        cells = [_ratios(rows[0].ratios, ALL), *(_ratios(h.ratios, MAIN) for h in rows[1:])]
        skip = f"{v.skip.fraction:.3f} / {v.skip.read_fraction:.3f}"
        lines.append(f"| {name} | {skip} | " + " | ".join(cells) + " |")
    return lines


def _optima_table(verdicts: dict[str, Verdict]) -> list[str]:
    """FORMS / the first baseline with each at its optimum, without and with the accuracy floor, what
    each chose and the accuracy the simulator measured there."""
    lines = [
        "| network | objective | accuracy floor | FORMS chose | FORMS accuracy | baseline chose | "
        "baseline accuracy | GOPs/(s·mm²) | GOPs/W | FPS | energy |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in verdicts.items():
        for h in (h for h in v.headline if h.forms_choice and h.baseline == v.baseline):
            objective = h.setting.split(",")[0].removeprefix("optimum: max ")
            lines.append(
                f"| {name} | {objective} | {_floor(h.forms_accuracy)} | {_choice(h.forms_choice)} | "
                f"{_accuracy(h.forms_accuracy)} | {_choice(h.baseline_choice)} | "
                f"{_accuracy(h.baseline_accuracy)} | {_ratios(h.ratios, ALL)} |"
            )
    return lines


def _floor(at: AccuracyAtOptimum | None) -> str:
    if at is None:
        return "none"
    return f"{at.max_drop_points:g} pt below float ({at.measured_on}{f', {at.label}' if at.label else ''})"


def _accuracy(at: AccuracyAtOptimum | None) -> str:
    return "—" if at is None else f"{100 * at.accuracy:.2f}%"


def _choice(choice: dict[str, Any]) -> str:
    short = {"adc.per_crossbar": "ADCs", "adc.flip": "flip", "crossbar.fragment_size": "R"}
    short["organization.crossbars_per_ima"] = "xbars/IMA"
    return ", ".join(
        f"{short.get(k, k)} {v:g}" if isinstance(v, float) else f"{short.get(k, k)} {v}"
        for k, v in choice.items()
        if v is not None
    )


def _tornado_table(verdicts: dict[str, Verdict], widest: int = 4) -> list[str]:
    """Each network's widest tornado bars: the ratio range over the parameter's range."""
    lines = ["| network | parameter (status) | GOPs/(s·mm²) | GOPs/W |", "|---|---|---|---|"]
    for name, v in verdicts.items():
        for bar in v.tornado[:widest]:
            (a, b), (c, d) = bar.span("gops_per_s_mm2"), bar.span("gops_per_w")
            lines.append(f"| {name} | {bar.label} ({bar.status}) | {a:.3f}-{b:.3f} | {c:.3f}-{d:.3f} |")
    return lines


def _break_even_table(verdicts: dict[str, Verdict]) -> list[str]:
    """Where each network's GOPs/(s·mm²) ratio crosses 1, per skip fraction of the grid."""
    lines = ["| network | metric | skip fraction: ADCs per crossbar at ratio 1 |", "|---|---|---|"]
    for name, v in verdicts.items():
        for chart in v.break_even:
            text = "; ".join(f"{c.skip_fraction:g}: {c.per_crossbar:.2f}" for c in chart.crossings) or "none"
            lines.append(f"| {name} | {chart.metric} | {text} |")
    return lines


def _measured_table() -> list[str]:
    """Every packaged measurement's network-wide figures, per mode and rule."""
    from forms.cost.measured_activity import list_packaged_activity, network_wide

    lines = [
        "| network | mode | conversions skipped: leading / bitplane | reads skipped: leading / bitplane "
        "| non-zero input digits |",
        "|---|---|---|---|---|",
    ]
    for entry in list_packaged_activity():
        lead, plane = network_wide(entry, "leading"), network_wide(entry, "bitplane")
        lines.append(
            f"| {entry.model} ({entry.dataset}) | {entry.mode} | {lead.conversions_skipped:.3f} / "
            f"{plane.conversions_skipped:.3f} | {lead.reads_skipped:.3f} / {plane.reads_skipped:.3f} | "
            f"{lead.driver_activity:.3f} |"
        )
    return lines


def _markdown(verdicts: dict[str, Verdict]) -> str:
    """The tables docs/results.md (c) quotes."""
    blocks = [_presets_table(verdicts), _optima_table(verdicts), _tornado_table(verdicts)]
    return "\n\n".join("\n".join(b) for b in [*blocks, _break_even_table(verdicts), _measured_table()])


def _packaged_only(workloads: list[Workload], mode: str | None) -> list[tuple[Workload, str]]:
    """A workload for every packaged network (at its measured input shape) that ``workloads`` lacks, with
    the data set it was measured on."""
    from forms.cost.measured_activity import DEFAULT_MODE, list_packaged_activity
    from forms.io import read_json

    known = {w.model for w in workloads}
    out = []
    for entry in list_packaged_activity():
        if entry.mode == (mode or DEFAULT_MODE) and entry.model not in known:
            shape = read_json(entry.path, "packaged activity")["provenance"]["input_shape"]
            label = f"{entry.model} ({entry.dataset})"
            workload = Workload.from_dict({"model": entry.model, "input_shape": shape, "label": label})
            out.append((workload, entry.dataset))
    return out


def main(argv: list[str] | None = None) -> int:
    """Compute (or reuse) every network's verdict, write the report, print the Markdown summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Output folder.")
    parser.add_argument("--mode", default=None, help="Packaged activity mode (default in16-calibrated).")
    args = parser.parse_args(argv)
    spec = ReproduceSpec.from_dict({})
    rule = split_archs(spec.archs, spec.baseline)[0].zero_skip.rule
    verdicts: dict[str, Verdict] = {}
    sources: list[str] = []
    recorded: list[tuple[Workload, str | None]] = [(w, w.dataset) for w in spec.workloads]
    for w, dataset in [*recorded, *_packaged_only(spec.workloads, args.mode)]:
        skip, source = packaged_skip(w.model, rule, args.mode, dataset)
        sources.append(f"{w.label}: FORMS' skip figures: {source}")
        verdicts[w.label] = verdict_stage(
            args.out / w.model,
            w.label,
            spec.archs,
            spec.baseline,
            model=w.model,
            activity=skip,
            input_shape=w.input_shape,
            dataset=dataset,
        )
    command = "python scripts/verdict_report.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    parameters: dict[str, Any] = {"mode": args.mode, "archs": spec.archs, "baseline": spec.baseline}
    summary = Summary(
        title="FORMS verdict on the networks of forms reproduce (c)",
        meta=RunMeta.now(command),
        parameters=parameters,
        assumptions=["layer shapes of the dense zoo models", *sources],
        extra={VERDICT_KEY: {name: v.to_dict() for name, v in verdicts.items()}},
    )
    sections = [*verdict_sections(summary), assumptions_section(summary)]
    files = write_report(Report(summary.title, summary.meta.created, sections, summary), args.out / "report")
    print(_markdown(verdicts))
    print(f"\nreport: {files.html}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
