"""Cost-model benchmark: `forms compare` figures for the zoo, the model's speed, and sweep throughput.

Writes the ``perf`` and ``sweep`` sections of docs/benchmarks.md. Run:
``.venv/bin/python benchmarks/bench_perf.py`` (both), ``... bench_perf.py sweep`` (the sweep section only).
"""

from __future__ import annotations

import itertools
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, stamp, update_section
from forms.cost.activity import SkipFractions
from forms.cost.arch import load_arch
from forms.cost.compare import compare
from forms.cost.estimate import estimate
from forms.cost.layer_shapes import Workload, layer_shapes, zoo_workload
from forms.experiments.sweep import run_sweep
from forms.experiments.sweep_spec import SweepSpec
from forms.nn.models import build_model

SWEEP_GRID = {
    "arch": ["forms-8"],
    "model": ["resnet18"],
    "fragment_size": [2, 4, 8, 16, 32],
    "adc.per_crossbar": list(range(1, 26)),
    "zero_skip.default_skip_fraction": [round(0.1 * i, 1) for i in range(10)],
    "read_time_ns": [50, 100],
    "input_bits": [8, 16],
    "adc.flip": [True, False],
}
"""The throughput sweep: 5 x 25 x 10 x 2 x 2 x 2 = 10,000 ResNet-18 (CIFAR shape) points on forms-8."""

ARCHS = ["isaac-opt", "prime", "forms-8", "forms-16"]
NETWORKS = [
    ("lenet5", (1, 28, 28), "MNIST"),
    ("resnet18", (3, 32, 32), "CIFAR-10"),
    ("vgg16", (3, 32, 32), "CIFAR-10"),
    ("resnet18-imagenet", (3, 224, 224), "ImageNet"),
    ("vgg16-imagenet", (3, 224, 224), "ImageNet"),
]
FIELDS = [
    ("fps", "FPS"),
    ("latency_s", "latency s"),
    ("energy_per_inference_j", "energy/inf J"),
    ("gops_per_s_mm2", "GOPs/(s*mm2)"),
    ("gops_per_w", "GOPs/W"),
    ("peak_gops_per_s_mm2", "peak GOPs/(s*mm2)"),
    ("peak_gops_per_w", "peak GOPs/W"),
    ("chip_area_mm2", "chip mm2"),
    ("chips", "chips"),
]


def compare_section() -> tuple[str, list[str]]:
    """Markdown tables of the comparisons and the union of their assumptions."""
    lines: list[str] = []
    assumptions: dict[str, list[str]] = {}
    for model, shape, data in NETWORKS:
        workload = zoo_workload(model, shape)
        cmp = compare([load_arch(a) for a in ARCHS], Workload(workload.shapes, workload.name))
        lines += [f"#### {model} ({data} shape {'x'.join(map(str, shape))}), ratios to {ARCHS[0]}", ""]
        lines.append("| figure | " + " | ".join(ARCHS) + " |")
        lines.append("|---" * (len(ARCHS) + 1) + "|")
        rows = cmp.rows()
        for key, label in FIELDS:
            cells = [f"{r[key]:.4g} ({r[key + '_ratio']:.2f}x)" for r in rows]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
        for est in cmp.estimates:
            for a in est.assumptions:
                if not a.startswith("model "):
                    assumptions.setdefault(est.arch, [])
                    if a not in assumptions[est.arch]:
                        assumptions[est.arch].append(a)
    notes = []
    for arch, items in assumptions.items():
        notes.append(f"- **{arch}**")
        notes += [f"  - {a}" for a in items]
    return "\n".join(lines), notes


def speed_section() -> list[str]:
    """Timings: ResNet-50 at 224x224 cold and warm, and a 500-point design sweep with shapes reused."""
    model = build_model("resnet50", in_channels=3, num_classes=1000, image_size=224)
    arch = load_arch("forms-8")
    t0 = time.perf_counter()
    workload = Workload(layer_shapes(model, (3, 224, 224)))
    estimate(arch, workload)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(3):
        t0 = time.perf_counter()
        estimate(arch, Workload(layer_shapes(model, (3, 224, 224))))
        warm.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(20):
        estimate(arch, workload)
    model_only = (time.perf_counter() - t0) / 20

    sweep_workload = Workload(layer_shapes(build_model("resnet18-imagenet", 3, 1000, 224), (3, 224, 224)))
    points = list(
        itertools.product([4, 8, 16, 32], [1, 2, 4, 8, 16], [0.0, 0.2, 0.4, 0.6, 0.8], [0, 1, 2, 3, 4])
    )
    t0 = time.perf_counter()
    for r, adcs, skip, extra_bits in points:
        base = load_arch(f"forms-{r}")
        spec = base.replace(
            adc={**base.adc.model_dump(), "per_crossbar": float(adcs), "bits": base.adc_bits + extra_bits}
        )
        estimate(spec, sweep_workload, SkipFractions(default=skip))
    sweep = time.perf_counter() - t0
    return [
        f"- ResNet-50, 3x224x224, forms-8: first estimate in a fresh process {cold:.2f} s (includes torch's "
        f"one-off meta-kernel warm-up), then {min(warm):.3f} s per full estimate (layer shapes + model), "
        f"{model_only * 1e3:.1f} ms per estimate from precomputed shapes. Target <= 1 s.",
        f"- {len(points)} design points (R x ADCs per crossbar x skip fraction x ADC bits) on ResNet-18 "
        f"ImageNet shapes computed once: {sweep:.2f} s in one process (target <= 60 s on 2 cores).",
    ]


@dataclass(frozen=True)
class SweepTiming:
    """One timed `run_sweep` of :data:`SWEEP_GRID`."""

    jobs: int
    points: int
    points_s: float
    """From the call to the last point finished (planning, worker start-up and every point)."""
    total_s: float
    """Including results.csv, the Pareto plots and the report."""
    load: tuple[float, float]
    """1-minute load average before and after."""
    cpu_s: float
    """CPU seconds (user + system) of this process and its workers over the whole run."""


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished (waited-for) child processes."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def time_sweep(jobs: int) -> SweepTiming:
    """Run :data:`SWEEP_GRID` with ``jobs`` workers into a fresh folder and time it."""
    spec = SweepSpec.from_dict({"name": "throughput", "grid": SWEEP_GRID})
    last = [0.0]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as out:
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        result = run_sweep(
            spec, out, jobs=jobs, progress=False, on_point=lambda _: last.__setitem__(0, time.perf_counter())
        )
        total, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    return SweepTiming(jobs, result.points, last[0] - t0, total, (load_before, os.getloadavg()[0]), cpu)


def sweep_section() -> str:
    """The ``sweep`` section: points per second of a 10,000-point ResNet-18 sweep, 2 jobs and 1 job."""
    timings = [time_sweep(2), time_sweep(1)]
    lines = [
        "## Sweep throughput (`benchmarks/bench_perf.py sweep`)",
        "",
        f"Measured {stamp()} on {machine_line()}; the machine is shared with other jobs (load averages "
        "below). Command: `OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_perf.py sweep`. "
        "Grid: forms-8 on ResNet-18 (CIFAR shape), fragment_size [2, 4, 8, 16, 32] x adc.per_crossbar 1..25 "
        "x zero_skip.default_skip_fraction 0..0.9 x read_time_ns [50, 100] x input_bits [8, 16] x adc.flip "
        "[true, false] = 10,000 points, each written to its own JSON. Points/s counts from the call to the "
        "last point (planning, spawning workers, building the layer shapes once per worker, every point); "
        "the total adds results.csv, the Pareto plots and the report. Target: 150 points/s on 2 cores. "
        "CPU s is the user + system time of the sweep's process and its workers over the whole run (with the "
        "report): unlike wall time it hardly depends on the other jobs, so points per CPU second x the cores "
        "a sweep keeps busy (jobs, at most 2) bounds what an idle 2-core machine reaches (a derived figure, "
        "not a measurement; file-system waits are not CPU time).",
        "",
        "| jobs | points | to last point s | points/s | total s | points/s with report | load before/after "
        "| CPU s | points per CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in timings:
        lines.append(
            f"| {t.jobs} | {t.points} | {t.points_s:.1f} | {t.points / t.points_s:.0f} | {t.total_s:.1f} | "
            f"{t.points / t.total_s:.0f} | {t.load[0]:.1f} / {t.load[1]:.1f} | {t.cpu_s:.1f} | "
            f"{t.points / t.cpu_s:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and update docs/benchmarks.md (``sweep``: only the sweep section)."""
    torch.set_num_threads(1)
    if sys.argv[1:] not in ([], ["sweep"]):
        raise SystemExit("usage: bench_perf.py [sweep]")
    if sys.argv[1:] != ["sweep"]:
        perf_section()
    sweep = sweep_section()
    print(sweep)
    print(f"\nupdated {update_section('sweep', sweep)}")


def perf_section() -> None:
    """The ``perf`` section: the model's speed (first, in a fresh process) and the zoo comparisons."""
    load_before = os.getloadavg()[0]
    speed = speed_section()  # first, so the "fresh process" timing really is one
    load_after = os.getloadavg()[0]
    tables, notes = compare_section()
    body = "\n".join(
        [
            "## Cost model (`benchmarks/bench_perf.py`)",
            "",
            f"Measured {stamp()} on {machine_line()}; the machine is shared with other jobs, so "
            f"timings are upper bounds (1-minute load average {load_before:.1f} before the timings, "
            f"{load_after:.1f} after). Command: `.venv/bin/python benchmarks/bench_perf.py` "
            "(the same figures as `forms compare --archs isaac-opt,prime,forms-8,forms-16 --model <m> "
            "--input-shape <s>`). Dense zoo models (no checkpoint), no measured activity: FORMS' "
            "zero-skip saves nothing here (default skip fraction 0).",
            "",
            "### Speed",
            "",
            *speed,
            "",
            "### Comparisons",
            "",
            tables,
            "### Assumptions behind these figures",
            "",
            *notes,
        ]
    )
    path = update_section("perf", body)
    print(body)
    print(f"\nupdated {path}")


if __name__ == "__main__":
    main()
