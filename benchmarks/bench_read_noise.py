"""Read noise on LeNet-5: sparse conversion errors against the ideal path and the dense draws; writes the
``sim-read-noise`` section of docs/benchmarks.md.

LeNet-5 with random weights quantized to 8 bits and polarized (R = 8) by ``forms.project``, 16-bit
inputs, 2-bit cells, 1-bit DAC, lossless ADCs, read noise sigma 0.02 (as ``forms simulate --read-noise
0.02``), on MNIST test images. Three models in one process, timed alternately (medians): ideal cells;
read noise as sparse errors (:mod:`forms.sim.noise_events`, the default); read noise with a Gaussian
draw per conversion (the GEMM engine, forced by disabling the sparse errors).

    .venv/bin/python benchmarks/bench_read_noise.py [--images 200] [--repeat 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import torch

import forms.sim.crossbar as crossbar_module
from _report import machine_line, stamp, update_section
from bench_sim import load_average, mnist_test, run, simulated, timed
from forms.sim.simnet import program_chip, simulated_layers
from forms.sim.spec import SimSpec

READ_NOISE = 0.02
"""Relative per-read noise of the timed runs."""


def models(calibration: torch.Tensor) -> dict[str, torch.nn.Module]:
    """The ideal, sparse-error and dense-draw LeNet-5 models (same weights: the torch seed is reset)."""
    spec = SimSpec.from_dict({"devices": {"read_noise": READ_NOISE}})
    built = {}
    for name in ("ideal", "sparse", "dense"):
        torch.manual_seed(0)
        limit = crossbar_module.MAX_EVENT_RATE
        if name == "dense":
            crossbar_module.MAX_EVENT_RATE = -1.0  # no chip qualifies: every layer draws per conversion
        try:  # the engine is chosen when a chip is programmed
            built[name] = simulated("lenet5", SimSpec.from_dict({}) if name == "ideal" else spec, calibration)
            if name != "ideal":
                program_chip(built[name], 0)
        finally:
            crossbar_module.MAX_EVENT_RATE = limit
    assert all(layer.array.engine == "events" for layer in simulated_layers(built["sparse"]))
    return built


def main() -> None:
    """Time the three models and write the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = mnist_test()
    built = models(images[:256])
    xs = images[: args.images]
    load_start = load_average()
    times: dict[str, list[float]] = {name: [] for name in built}
    for _ in range(args.repeat):
        for name, model in built.items():
            times[name].append(timed(lambda m=model: run(m, xs, batch=100)))
    ms = {name: 1e3 * statistics.median(t) / args.images for name, t in times.items()}
    print(ms, flush=True)
    lines = [
        "## Simulator: read noise (`benchmarks/bench_read_noise.py`)",
        "",
        f"Measured {stamp()} on {machine_line()}, torch threads = {args.threads}, 1-min load average "
        f"{load_start:.1f} at start and {load_average():.1f} at the end (shared machine). Command: "
        f"`.venv/bin/python benchmarks/bench_read_noise.py --images {args.images} --repeat {args.repeat} "
        f"--threads {args.threads}`. LeNet-5 (random 8-bit weights, polarized R = 8, 16-bit inputs, "
        f"2-bit cells, 1-bit DAC, lossless ADCs) on {args.images} MNIST test images, read noise sigma "
        f"{READ_NOISE}; medians of {args.repeat} alternating runs (target: read noise <= 2x the ideal path "
        "per image):",
        "",
        "| model | ms per image | ratio to ideal |",
        "|---|---|---|",
        f"| ideal cells (exact fast path) | {ms['ideal']:.3f} | 1.00x |",
        f"| read noise, sparse conversion errors (default) | {ms['sparse']:.3f} | "
        f"**{ms['sparse'] / ms['ideal']:.2f}x** |",
        f"| read noise, a Gaussian draw per conversion (GEMM engine) | {ms['dense']:.3f} | "
        f"{ms['dense'] / ms['ideal']:.1f}x |",
        "",
        "Sparse errors apply to chips with integral cells and step-1 ADCs that cannot clip, where a "
        "conversion's error rate is at most 5% (`MAX_EVENT_RATE`); other noisy chips (narrow ADCs, "
        "variation, large sigma) keep the per-conversion draws.",
    ]
    update_section("sim-read-noise", "\n".join(lines))


if __name__ == "__main__":
    main()
