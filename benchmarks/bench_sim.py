"""Simulator speed and memory benchmarks; writes the ``sim`` section of docs/benchmarks.md.

Models are LeNet-5 / ResNet-18 with randomly initialized weights quantized to 8 bits and polarized
with R = 8 by ``forms.project`` (one-shot projection; speed does not depend on training);
inputs are real MNIST test images (so activation sparsity is realistic) or random CIFAR-shaped tensors.

    .venv/bin/python benchmarks/bench_sim.py [--images 1000] [--lenet-images 10000] [--threads 2]
    .venv/bin/python benchmarks/bench_sim.py --workload-only [--workload-threads 1,2]

Figures:
1. ideal lossless mode (exact fast path + zero-skip statistics) vs the plain integer reference;
2. the bit-level path (4-bit ADC) of single layers vs the (input_bits x slices) integer matmuls it
   must do (GEMMs of the same vectors against each slice's cells, float32), for the table engine and
   for the GEMM engine (the one read noise uses);
3. LeNet-5 through the full bit-level path (4-bit ADC, polarized) on MNIST test images, and with read
   noise (GEMM engine) on a subset;
4. peak resident memory (ru_maxrss of a fresh subprocess) of ResNet-18 on CIFAR shapes, batch 64;
5. issue 20's bit-level workload against its GEMM floor (``benchmarks/_bit_level.py``, its own section).

OpenMP threads wait passively (OMP_WAIT_POLICY=PASSIVE unless set): on a machine shared with other
jobs, spinning threads of a 2-thread run slow every parallel op down by 10-100x.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import forms  # noqa: E402
from _bit_level import run_workload  # noqa: E402
from _bit_level import write_section as write_workload  # noqa: E402
from _report import machine_line, stamp, update_section  # noqa: E402
from forms.nn.models import build_model  # noqa: E402
from forms.sim.crossbar import DEFAULT_TABLE_LIMIT  # noqa: E402
from forms.sim.quant_inputs import calibrate_inputs  # noqa: E402
from forms.sim.simnet import build_simulated_model, program_chip, set_mode, simulated_layers  # noqa: E402
from forms.sim.spec import SimSpec  # noqa: E402

PROJECTION = {"crossbar": {"fragment_size": 8}, "quant": {"weight_bits": 8}, "polarize": {"enabled": True}}
"""One-shot projection of the benchmark models: 8-bit weights polarized in fragments of 8 rows."""


def timed(fn, repeat: int = 1) -> float:  # type: ignore[no-untyped-def]
    """Best wall time of ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def load_average() -> float:
    """1-minute load average (the machine is shared: report it with every timing)."""
    return os.getloadavg()[0]


def simulated(model_name: str, spec: SimSpec, calib: torch.Tensor, **kwargs: int) -> torch.nn.Module:
    model = build_model(model_name, **kwargs).eval()
    layers = forms.project(model, forms.CompressSpec.model_validate(PROJECTION))
    quant = calibrate_inputs(model, [layer.name for layer in layers], [calib], spec.input_bits)
    return build_simulated_model(model, layers, quant, spec)


def run(model: torch.nn.Module, images: torch.Tensor, batch: int = 500) -> None:
    with torch.no_grad():
        for s in range(0, images.shape[0], batch):
            model(images[s : s + batch])


def mnist_test() -> torch.Tensor:
    from forms.nn.data import load_dataset

    return load_dataset("mnist", "test").tensors[0]


def bench_ideal(images: torch.Tensor, repeat: int = 5) -> dict[str, float]:
    """Reference and simulator timed alternately ``repeat`` times; best of each."""
    sim = simulated("lenet5", SimSpec.from_dict({}), images[:256])
    ref = fast = float("inf")
    load = load_average()
    for _ in range(repeat):
        set_mode(sim, "reference")
        ref = min(ref, timed(lambda: run(sim, images)))
        set_mode(sim, "simulate")
        fast = min(fast, timed(lambda: run(sim, images)))
    assert all(layer.array.stats.bit_level_calls == 0 for layer in simulated_layers(sim))
    return {
        "images": images.shape[0],
        "reference_s": ref,
        "simulator_s": fast,
        "ratio": fast / ref,
        "load": max(load, load_average()),
    }


def bench_bit_level_layers(images: torch.Tensor) -> list[dict[str, float]]:
    spec = SimSpec.from_dict({"adc_bits": 4, "bit_level": True})
    sim = simulated("lenet5", spec, images[:256])
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        layer.register_forward_pre_hook(lambda m, a: captured.__setitem__(m.name, a[0].detach()))
        for layer in simulated_layers(sim)
    ]
    set_mode(sim, "reference")
    run(sim, images[:200])
    for h in hooks:
        h.remove()
    return [bench_layer(layer, captured[layer.name]) for layer in simulated_layers(sim)]


def bench_layer(layer: torch.nn.Module, x_in: torch.Tensor) -> dict[str, Any]:
    """Bit-level time of one simulated layer (table and GEMM engines) vs its integer matmuls."""
    vec, _ = layer.vectors(layer.quantizer.codes(x_in))
    arr = layer.array
    plan, enc = arr.plan, arr.encoded
    load = load_average()
    assert arr.pattern_table() is not None
    arr(vec[:8])  # build the table outside the timing (once per programmed chip)
    t_sim = timed(lambda: arr(vec, collect=True), 3)
    arr.set_table_limit(0)
    t_gemm = timed(lambda: arr(vec, collect=True), 2)
    arr.set_table_limit(DEFAULT_TABLE_LIMIT)
    w = arr.weight_int.to(torch.float32)  # (G, rows, C): each slice's GEMM has this shape
    x = vec.to(torch.float32).transpose(0, 1)

    def gemms() -> None:
        for _ in range(plan.steps * enc.slices):
            torch.bmm(x, w)

    t_ref = timed(gemms, 3)
    return {
        "layer": layer.name,
        "vectors": int(vec.shape[0]),
        "rows": enc.rows,
        "cols": enc.columns,
        "matmuls": plan.steps * enc.slices,
        "bit_level_s": t_sim,
        "gemm_engine_s": t_gemm,
        "matmuls_s": t_ref,
        "ratio": t_sim / t_ref,
        "gemm_ratio": t_gemm / t_ref,
        "load": max(load, load_average()),
    }


def bench_lenet_full(images: torch.Tensor, noise_images: int) -> dict[str, Any]:
    """LeNet-5 with a 4-bit ADC on ``images``: default, every column bit-level, and read noise."""
    out: dict[str, Any] = {"images": images.shape[0]}
    cases = (
        ("natural", {"adc_bits": 4}, images),
        ("forced", {"adc_bits": 4, "bit_level": True}, images),
        ("noise", {"adc_bits": 4, "devices": {"read_noise": 0.05}}, images[:noise_images]),
    )
    for key, spec_dict, xs in cases:
        spec = SimSpec.from_dict(spec_dict)
        sim = simulated("lenet5", spec, images[:256])
        program_chip(sim, 0)
        load = load_average()
        t = timed(lambda: run(sim, xs, batch=250))  # noqa: B023
        out[f"{key}_images"] = xs.shape[0]
        out[f"{key}_s"] = t
        out[f"{key}_ms_per_image"] = 1e3 * t / xs.shape[0]
        out[f"{key}_load"] = max(load, load_average())
        if key == "natural":
            out["risky_fraction"] = sum(
                layer.array.risky_count * layer.array.encoded.row_groups * layer.array.encoded.groups
                for layer in simulated_layers(sim)
            ) / sum(
                layer.array.stats.columns * layer.array.encoded.row_groups * layer.array.encoded.groups
                for layer in simulated_layers(sim)
            )
            out["clip_rate"] = sum(layer.array.stats.clipped for layer in simulated_layers(sim)) / sum(
                layer.array.stats.conversions for layer in simulated_layers(sim)
            )
    return out


MEMORY_CHILD = """
import resource, sys, torch
torch.set_num_threads({threads})
import forms
from forms.sim.quant_inputs import calibrate_inputs
from forms.sim.spec import SimSpec
from forms.sim.simnet import build_simulated_model
from forms.nn.models import build_model
model = build_model("resnet18", in_channels=3, num_classes=10, image_size=32).eval()
layers = forms.project(model, forms.CompressSpec.model_validate({projection!r}))
x = torch.randn({batch}, 3, 32, 32, generator=torch.Generator().manual_seed(0))
quant = calibrate_inputs(model, [l.name for l in layers], [x[:16]], 16)
spec = SimSpec.from_dict({spec})
sim = build_simulated_model(model, layers, quant, spec)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.no_grad():
    sim(x)
print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def bench_memory(threads: int, batch: int, spec: dict[str, object]) -> dict[str, float]:
    code = MEMORY_CHILD.format(threads=threads, batch=batch, spec=repr(spec), projection=PROJECTION)
    t = time.perf_counter()
    # glibc gives each thread its own malloc arena, which can hold on to freed chunk-sized blocks;
    # cap the arenas so that peak RSS reflects the simulator's tensors more closely.
    env = {**os.environ, "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    )
    base, peak = (int(v) for v in out.stdout.split()[-2:])
    return {
        "batch": batch,
        "peak_mib": peak / 1024,
        "before_run_mib": base / 1024,
        "seconds": time.perf_counter() - t,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="MNIST images for the ideal-mode ratio")
    parser.add_argument("--lenet-images", type=int, default=10000, help="images for the full bit-level run")
    parser.add_argument("--noise-images", type=int, default=500, help="images for the read-noise run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--bit-level-memory-batch",
        type=int,
        default=8,
        help="ResNet-18 batch for the bit-level memory figure (batch 64 takes about half an hour on 2 cores)",
    )
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--workload-only",
        action="store_true",
        help="only issue 20's bit-level workload (_bit_level.py)",
    )
    parser.add_argument("--workload-threads", default="1,2", help="thread counts for the bit-level workload")
    parser.add_argument("--workload-repeat", type=int, default=3, help="alternating runs per workload case")
    args = parser.parse_args()
    if args.workload_only:
        bench_workload(args)
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # the random LeNet-5 / ResNet-18 weights
    load = f"{load_average():.1f}"
    images = mnist_test()
    res: dict[str, Any] = {"ideal": bench_ideal(images[: args.images])}
    print(json.dumps(res["ideal"]), flush=True)
    res["bit_level_layers"] = bench_bit_level_layers(images)
    print(json.dumps(res["bit_level_layers"]), flush=True)
    res["lenet_full"] = bench_lenet_full(images[: args.lenet_images], args.noise_images)
    print(json.dumps(res["lenet_full"]), flush=True)
    if not args.skip_memory:
        res["memory_ideal"] = bench_memory(args.threads, 64, {})
        print(json.dumps(res["memory_ideal"]), flush=True)
        res["memory_bit_level"] = bench_memory(
            args.threads, args.bit_level_memory_batch, {"adc_bits": 4, "bit_level": True}
        )
        print(json.dumps(res["memory_bit_level"]), flush=True)
    write(res, args, load)
    bench_workload(args)


def bench_workload(args: argparse.Namespace) -> None:
    """Issue 20's bit-level workload at each thread count; writes the ``sim-bit-level`` section."""
    command = (
        ".venv/bin/python benchmarks/bench_sim.py --workload-only "
        f"--workload-threads {args.workload_threads} --workload-repeat {args.workload_repeat}"
    )
    threads = [int(n) for n in args.workload_threads.split(",")]
    write_workload(run_workload(threads, args.workload_repeat), command)
    torch.set_num_threads(args.threads)


def write(res: dict[str, Any], args: argparse.Namespace, load: str) -> None:
    ideal = res["ideal"]
    lines = [
        "## Simulator (`benchmarks/bench_sim.py`)",
        "",
        f"Measured {stamp()} on {machine_line()}, torch threads = {args.threads}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, 1-min load average at start {load} (the "
        "machine is shared with other jobs: timings are upper bounds; each figure gives the highest load "
        "average seen while it ran).",
        f"Command: `.venv/bin/python benchmarks/bench_sim.py --images {args.images} "
        f"--lenet-images {args.lenet_images} --noise-images {args.noise_images} --threads {args.threads}`. "
        "LeNet-5 / ResNet-18 with random weights quantized to 8 bits and polarized (R = 8); 16-bit inputs, "
        "2-bit cells, 1-bit DAC, 128 x 128 crossbars.",
        "",
        f"1. **Ideal lossless mode** (exact fast path + zero-skip statistics), LeNet-5 on "
        f"{ideal['images']} MNIST test images, best of 5 alternating runs: simulator "
        f"{ideal['simulator_s']:.2f} s vs plain integer reference {ideal['reference_s']:.2f} s = "
        f"**{ideal['ratio']:.2f}x** (target <= 2x; load <= {ideal['load']:.1f}).",
        "2. **Bit-level path** (4-bit ADC, polarized, R = 8, every column bit-level) per LeNet-5 layer on "
        "200 images vs the (input_bits x slices) float32 integer matmuls of the same vectors (target <= "
        "1.5x). *Table* is the default engine for deterministic cells (per-pattern tables, "
        "`forms.sim.lookup`); *GEMM* is the per-(step, fragment, slice) GEMM engine that read noise needs:",
        "",
        "   | layer | vectors | rows x cols | matmuls | matmuls s | table s | ratio | GEMM s | ratio "
        "| load |",
        "   |---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["bit_level_layers"]:
        lines.append(
            f"   | {r['layer']} | {r['vectors']} | {r['rows']} x {r['cols']} | {r['matmuls']} | "
            f"{r['matmuls_s']:.3f} | {r['bit_level_s']:.3f} | **{r['ratio']:.2f}x** | "
            f"{r['gemm_engine_s']:.3f} | {r['gemm_ratio']:.1f}x | {r['load']:.1f} |"
        )
    full = res["lenet_full"]
    per10k = {k: full[f"{k}_ms_per_image"] * 10 for k in ("natural", "forced", "noise")}
    lines += [
        "",
        f"3. **LeNet-5 with a 4-bit ADC** (polarized, R = 8) on {full['images']} MNIST test images (target: "
        f"10,000 images <= 60 s). Default path (columns that provably cannot clip folded into one exact "
        f"GEMM, the layers with the other {100 * full['risky_fraction']:.1f}% of the columns on the table "
        f"engine; clip rate {100 * full['clip_rate']:.3f}%): **{full['natural_s']:.1f} s** (load <= "
        f"{full['natural_load']:.1f}). Every column bit-level (`bit_level: true`, as with faults or "
        f"variation): **{full['forced_s']:.1f} s** (load <= {full['forced_load']:.1f}). With read noise "
        f"(sigma 0.05, GEMM engine, a fresh Gaussian draw per conversion) on {full['noise_images']} images: "
        f"{full['noise_s']:.1f} s, i.e. {per10k['noise']:.0f} s per 10,000 (load <= "
        f"{full['noise_load']:.1f}).",
    ]
    if "memory_ideal" in res:
        mi, mb = res["memory_ideal"], res["memory_bit_level"]
        lines.append(
            f"4. **Peak memory**, ResNet-18 on CIFAR shapes (ru_maxrss of a fresh process, "
            f"MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', '2')}): ideal mode, "
            f"batch {mi['batch']}: **{mi['peak_mib']:.0f} MiB** ({mi['before_run_mib']:.0f} MiB before "
            f"the batch: the mapped model itself); every column bit-level with a 4-bit ADC, "
            f"batch {mb['batch']}: **{mb['peak_mib']:.0f} MiB** in {mb['seconds']:.0f} s "
            "(target <= 4 GiB at batch 64). No tensor either engine holds grows with the batch (the GEMM "
            "engine holds at most `chunk_elements`, default 2^21, partial sums per chunk (per intra-op "
            "thread on its signed-slice path) plus a few same-sized temporaries; the table engine at most "
            "2^24 table entries per layer, "
            "`DEFAULT_TABLE_LIMIT`, larger layers use the GEMM engine), yet the bit-level peak RSS varies "
            "from run to run: 2.1, 8.7, 2.1 and 10.7 GiB in four runs at batch 8 on 2026-11-28 (the GEMM "
            "engine's ResNet layers; allocator retention suspected, not resolved)."
        )
    table_ok = all(r["ratio"] <= 1.5 for r in res["bit_level_layers"])
    mi = res.get("memory_ideal", {"peak_mib": 0.0})
    lines += [
        "",
        "Status: ideal mode "
        + ("meets" if ideal["ratio"] <= 2 else "misses")
        + " its 2x target; the table engine (narrow ADC, faults, variation) "
        + ("meets" if table_ok else "misses")
        + " the 1.5x target on every layer; LeNet-5 on 10,000 images through every-column bit-level "
        + ("meets" if full["forced_s"] * 10000 / full["forced_images"] <= 60 else "misses")
        + " the 60 s target; ideal-mode memory "
        + ("meets" if mi["peak_mib"] <= 4096 else "misses")
        + " the 4 GiB bound, bit-level memory is not reliably within it (see 4). Read noise with a narrow "
        "ADC (as in 3) misses both speed targets: each conversion needs its own Gaussian draw (about 4-5 "
        "ns each with torch.randn on this CPU, vs well under 1 ns of matmul work per conversion for "
        "R = 8); with lossless ADCs read noise takes sparse conversion errors instead (see the read-noise "
        "section below).",
    ]
    update_section("sim", "\n".join(lines))


if __name__ == "__main__":
    main()
