"""Cost-model benchmark: `forms compare` figures for the zoo, and the model's speed.

Writes the ``perf`` section of docs/benchmarks.md. Run: ``.venv/bin/python benchmarks/bench_perf.py``.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, stamp, update_section
from forms.cost.activity import SkipFractions
from forms.cost.arch import load_arch
from forms.cost.compare import compare
from forms.cost.estimate import estimate
from forms.cost.layer_shapes import Workload, layer_shapes, zoo_workload
from forms.nn.models import build_model

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


def main() -> None:
    """Run the benchmark and update docs/benchmarks.md."""
    torch.set_num_threads(1)
    speed = speed_section()  # first, so the "fresh process" timing really is one
    tables, notes = compare_section()
    body = "\n".join(
        [
            "## Cost model (`benchmarks/bench_perf.py`)",
            "",
            f"Measured {stamp()} on {machine_line()}; the machine is shared with other jobs, so "
            "timings are upper bounds. Command: `.venv/bin/python benchmarks/bench_perf.py` "
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
