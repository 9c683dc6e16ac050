"""Cost of the zero-skip statistics on the exact fast path; writes the ``sim-zeroskip`` section of
docs/benchmarks.md.

Workload (issue 20, the one compared against CrossSim): rng = numpy.random.default_rng(0);
W = rng.integers(-127, 128, (1152, 128)); X = rng.integers(1, 256, (4096, 1152));
X[rng.random((4096, 1152)) < 0.5] = 0; 8-bit unsigned inputs, 1-bit DAC, 2-bit cells, 128 x 128
crossbars, lossless ADCs (so every call takes the exact fast path). For the polarized encoding each
fragment of W takes one sign drawn from the same generator (|W| kept). Each case times
``CrossbarArray.forward`` with ``collect=False`` and ``collect=True`` alternately, with the exact path's
floor between them (one float32 GEMM of X @ W's shape on operands already converted, which is exact
only where sums stay below 2^24 and so a floor, not an alternative), and reports medians, at each torch
thread count given. The section names the counting that ran: the compiled pass
(:mod:`forms.sim.zeroskip_native`, counting while the exact path converts the codes) where the extension
was built, else the torch passes.

    .venv/bin/python benchmarks/bench_zeroskip.py [--repeat 15] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import machine_line, stamp, update_section
from forms.encoding import Encoding, lossless_adc_bits
from forms.sim.adc import Adc
from forms.sim.crossbar import CrossbarArray
from forms.sim.encodings import encode
from forms.sim.quant_inputs import digit_plan
from forms.sim.zeroskip_native import native_built

CASES = (
    (Encoding.POLARIZED, 8),
    (Encoding.POLARIZED, 16),
    (Encoding.OFFSET, 128),
    (Encoding.DIFFERENTIAL, 128),
)
"""(encoding, fragment size R) of each timed array."""


def workload() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W (1152, 128), X (4096, 1152) of the docstring, and the generator's next per-fragment signs."""
    rng = np.random.default_rng(0)
    weights = rng.integers(-127, 128, (1152, 128))
    inputs = rng.integers(1, 256, (4096, 1152))
    inputs[rng.random((4096, 1152)) < 0.5] = 0
    signs = np.where(rng.random((1152, 128)) < 0.5, -1, 1)
    return weights, inputs, signs


def crossbar(weights: np.ndarray, signs: np.ndarray, encoding: Encoding, fragment: int) -> CrossbarArray:
    """A lossless 128 x 128, 2-bit-cell array of ``weights`` (fragment-polarized when polarized)."""
    w = torch.from_numpy(weights)
    if encoding is Encoding.POLARIZED:
        w = w.abs() * torch.from_numpy(signs[::fragment]).repeat_interleave(fragment, 0)
    w = w.unsqueeze(0)
    enc = encode(w, encoding, 8, 2, 128, fragment)
    adc = Adc(lossless_adc_bits(enc.group_rows, 2, 1, False))
    return CrossbarArray(w, enc, adc, digit_plan(8, 1, False), fragment)


def time_case(array: CrossbarArray, codes: torch.Tensor, repeat: int) -> tuple[float, float, float]:
    """Median seconds of one forward call without and with statistics and of the float32 GEMM floor,
    timed alternately."""
    x = codes[:, 0].to(torch.float32)
    w = array.exact_weight[0].to(torch.float32)
    calls = {
        "off": lambda: array(codes, collect=False, checked=True),
        "floor": lambda: torch.mm(x, w),
        "on": lambda: array(codes, collect=True, checked=True),
    }
    runs: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            runs[name].append(time.perf_counter() - start)
    assert array.lossless
    return statistics.median(runs["off"]), statistics.median(runs["on"]), statistics.median(runs["floor"])


def thread_counts(text: str) -> list[int]:
    """Torch thread counts from a comma-separated list such as ``1,2``."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give thread counts >= 1 separated by commas, e.g. 1,2")
    return counts


def time_rows(
    weights: np.ndarray, inputs: np.ndarray, signs: np.ndarray, threads: int, repeat: int
) -> list[str]:
    """The table rows of every case at ``threads`` torch threads."""
    torch.set_num_threads(threads)
    codes = torch.from_numpy(inputs).to(torch.int32).unsqueeze(1)
    rows = []
    for encoding, fragment in CASES:
        off, on, floor = time_case(crossbar(weights, signs, encoding, fragment), codes, repeat)
        rows.append(
            f"| {threads} | {encoding} | {fragment} | {floor:.4f} | {off:.4f} | {off / floor:.2f}x | "
            f"{on:.4f} | {(on - off) * 1e3:.1f} | **{on / off:.3f}x** |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    """Time every case at every thread count and write the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=thread_counts, default=[2], help="comma-separated, e.g. 1,2")
    args = parser.parse_args()
    weights, inputs, signs = workload()
    load_start = os.getloadavg()[0]
    rows = [
        row for threads in args.threads for row in time_rows(weights, inputs, signs, threads, args.repeat)
    ]
    sha_w = hashlib.sha256(weights.astype(np.int64).tobytes()).hexdigest()[:16]
    sha_x = hashlib.sha256(inputs.astype(np.int64).tobytes()).hexdigest()[:16]
    threads = ",".join(str(t) for t in args.threads)
    lines = [
        "## Simulator: zero-skip statistics (`benchmarks/bench_zeroskip.py`)",
        "",
        f"Measured {stamp()} on {machine_line()}, torch threads = {threads}, 1-min load average "
        f"{load_start:.1f} at start and {os.getloadavg()[0]:.1f} at the end (shared machine). Command: "
        f"`.venv/bin/python benchmarks/bench_zeroskip.py --repeat {args.repeat} --threads {threads}`. "
        "Issue 20's workload (W 1152 x 128 8-bit, 4,096 8-bit input vectors, half the inputs zero; "
        f"SHA-256 of W and X as int64: {sha_w}..., {sha_x}...), lossless ADCs, exact fast path; "
        f"one `CrossbarArray.forward` call, medians of {args.repeat} alternating runs; statistics counted by "
        f"{'the compiled pass (`forms.sim.zeroskip_native`)' if native_built() else 'the torch passes'} "
        "(target: statistics "
        "<= 1.10x the call without them); *floor*: one float32 GEMM of X @ W's shape on converted "
        "operands, alternating with the calls (the exact path converts the codes and needs float64 or "
        "float32 row chunks for exact sums):",
        "",
        "| threads | encoding | R | floor s | collect=False s | / floor | collect=True s | statistics ms "
        "| ratio |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    update_section("sim-zeroskip", "\n".join(lines))


if __name__ == "__main__":
    main()
