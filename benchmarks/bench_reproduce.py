"""The full `forms reproduce` run: run (or resume) it, copy its report into docs/, summarize it.

Runs :func:`forms.experiments.reproduce.run_reproduce` with a ReproduceSpec YAML (finished stages are
reused, so this also turns a finished run into docs), copies ``report.html``, ``report.md``,
``summary.json``, figures and CSV tables to ``docs/reproduce/``, and writes the ``reproduce`` section of
docs/benchmarks.md: accuracy vs R for both models with the ADMM residuals, and the comparison of the
deeper model with the plain-ADMM GPU baseline of issue 3.

Usage: ``python benchmarks/bench_reproduce.py --config configs/reproduce-cpu.yaml --out runs/reproduce-cpu``
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import GPU_BASELINE_DROP, TARGET_DROP, machine_line, residual_layer_table, stamp, update_section
from forms.experiments.reproduce import run_reproduce
from forms.experiments.reproduce_spec import ReproduceSpec
from forms.io import atomic_write

DOCS = Path(__file__).resolve().parent.parent / "docs" / "reproduce"


def copy_report(report_dir: Path, docs: Path) -> list[Path]:
    """Copy the report (with its figures/ and tables/) into ``docs``, each file written atomically."""
    copied = []
    for src in sorted(report_dir.rglob("*")):
        if not src.is_file() or src.suffix not in {".html", ".md", ".json", ".csv", ".png"}:
            continue
        dst = docs / src.relative_to(report_dir)
        atomic_write(dst, lambda fh, src=src: fh.write(src.read_bytes()))
        copied.append(dst)
    return copied


def _fmt(value: Any, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if not isinstance(value, int | float) else f"{scale * value:.{digits}f}"


def accuracy_table(summary: dict[str, Any], spec: ReproduceSpec) -> list[str]:
    """Experiment (a) per model and R, with the ADMM stages and the last round's largest residual."""
    lines = [
        "| model | R | float | after ADMM | after hard projection | final | drop (points) | "
        "max ‖W−Z‖/‖W‖, first → last round | mixed-sign fragments |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    compress = summary["experiments"]["a"]["compress"]
    for run in (spec.mnist, spec.deep):
        for r in spec.fragment_sizes:
            m = compress.get(f"{run.key}-R{r}", {})
            hist = m.get("admm", {}).get("history", [])
            res = f"{hist[0]['residual_max']:.3f} → {hist[-1]['residual_max']:.4f}" if hist else "-"
            lines.append(
                f"| {run.key} | {r} | {_fmt(m.get('accuracy_before'), 100)} | "
                f"{_fmt(m.get('accuracy_admm'), 100)} | {_fmt(m.get('accuracy_projected'), 100)} | "
                f"{_fmt(m.get('accuracy_after'), 100)} | {_fmt(m.get('accuracy_drop_points'))} | {res} | "
                f"{m.get('fragments_mixed_sign', '-')} / {m.get('fragments_total', '-')} |"
            )
    return lines


def baseline_table(summary: dict[str, Any], spec: ReproduceSpec) -> list[str]:
    """The deeper model's drops next to the GPU baseline and the targets of issue 3."""
    compress = summary["experiments"]["a"]["compress"]
    lines = [
        "| R | plain ADMM baseline (issue 3, GPU, full data, 20 epochs per R) | target | this run |",
        "|---|---|---|---|",
    ]
    for r in sorted(GPU_BASELINE_DROP):
        m = compress.get(f"{spec.deep.key}-R{r}", {})
        target = f"≤ {TARGET_DROP[r]}" if r in TARGET_DROP else "-"
        lines.append(f"| {r} | {GPU_BASELINE_DROP[r]} | {target} | {_fmt(m.get('accuracy_drop_points'))} |")
    return lines


def residual_table(summary: dict[str, Any], key: str) -> list[str]:
    """Per-layer ||W - Z|| / ||W|| after every ADMM round of one compression."""
    hist = summary["experiments"]["a"]["compress"].get(key, {}).get("admm", {}).get("history", [])
    if not hist:
        return [f"({key}: no ADMM rounds recorded)"]
    return residual_layer_table(hist)


def section(summary: dict[str, Any], spec: ReproduceSpec, command: str) -> str:
    """The ``reproduce`` section of docs/benchmarks.md."""
    deep_r = 8 if 8 in spec.fragment_sizes else spec.fragment_sizes[0]
    lines = [
        "## Full `forms reproduce` run",
        "",
        f"Written {stamp()} on {machine_line()}. Command: `{command}`. The report, summary.json and CSVs "
        "are copied to [docs/reproduce/](reproduce/); the settings behind every figure are in the report's "
        "assumptions section. Discussion: [docs/results.md](results.md).",
        "",
        "Experiment (a), accuracy vs fragment size R (8-bit, no pruning, every R from the same float model):",
        "",
        *accuracy_table(summary, spec),
        "",
        f"{spec.deep.key} drop vs the plain ADMM baseline of issue 3 (note the different training budgets):",
        "",
        *baseline_table(summary, spec),
        "",
        f"Per-layer ‖W − Z‖ / ‖W‖ after each ADMM round, {spec.deep.key}, R = {deep_r}:",
        "",
        *residual_table(summary, f"{spec.deep.key}-R{deep_r}"),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run or resume the reproduction, then copy and summarize it."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=Path("configs/reproduce-cpu.yaml"))
    parser.add_argument("--out", type=Path, default=Path("runs/reproduce-cpu"))
    parser.add_argument("--quiet", action="store_true", help="No progress bars.")
    args = parser.parse_args()
    spec = ReproduceSpec.from_yaml(args.config)
    command = shlex.join(["forms", "reproduce", "--config", str(args.config), "--out", str(args.out)])
    result = run_reproduce(args.out, spec, progress=not args.quiet, command=command)
    copy_report(result.report.html.parent, DOCS)
    summary = json.loads(result.report.summary.read_text())
    update_section("reproduce", section(summary, spec, command))
    print(f"docs/benchmarks.md section 'reproduce' written; report copied to {DOCS}")


if __name__ == "__main__":
    main()
