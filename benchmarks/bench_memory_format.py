"""Memory-format benchmark: ResNet-20 training seconds per epoch, NCHW vs channels-last, on this CPU.

Times :func:`forms.nn.train.train_epoch` (what ``forms train`` and the ADMM W-step run) on
ResNet-20 with 1x32x32 inputs (Fashion-MNIST padded to 32, batch 128), once with the model placed
in the default order and once with ``place_model(..., channels_last=True)``; and the same for a
masked-retraining epoch of ``forms compress`` (every layer's weight parametrized by
:class:`forms.compress.retrain.ConstrainedWeight` after the hard projection, R = 8, 8-bit). The
variants alternate, each measured ``--repeats`` times on ``--batches`` batches of synthetic images
(speed does not depend on the pixel values); the median is scaled to a 60,000-image epoch. Writes
the ``memory-format`` section of docs/benchmarks.md.

    .venv/bin/python benchmarks/bench_memory_format.py [--threads 1 2] [--batches 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, stamp, update_section
from forms.compress.admm import projected_weights
from forms.compress.constraints import layer_constraints
from forms.compress.retrain import attach, load_projected
from forms.compress.spec import CompressSpec
from forms.nn.models import build_model
from forms.nn.train import EpochLoader, place_model, train_epoch

EPOCH_IMAGES = 60_000
BATCH = 128


def epoch_minutes(channels_last: bool, masked: bool, batches: int, seed: int = 0) -> float:
    """Minutes per 60,000-image epoch of one timed pass over ``batches`` batches (after a warm-up batch).

    ``masked``: a masked-retraining epoch (constrained, parametrized weights) instead of a plain one.
    """
    torch.manual_seed(seed)
    model = place_model(build_model("resnet20", 1, 10, 32), torch.device("cpu"), channels_last)
    if masked:
        spec = CompressSpec()
        constraints = layer_constraints(model, spec)
        _, projections = projected_weights(model, constraints, spec)
        load_projected(model, constraints, projections)
        attach(model, constraints, projections)
    n = BATCH * (batches + 1)
    data = TensorDataset(torch.randn(n, 1, 32, 32), torch.randint(0, 10, (n,)))
    warm = TensorDataset(*(t[:BATCH] for t in data.tensors))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    train_epoch(model, EpochLoader(warm, BATCH, seed=seed), optimizer)
    timed = TensorDataset(*(t[BATCH:] for t in data.tensors))
    stats = train_epoch(model, EpochLoader(timed, BATCH, seed=seed), optimizer)
    return stats["seconds"] / (batches * BATCH) * EPOCH_IMAGES / 60


def main() -> None:
    """Parse options, time both memory orders at each thread count, write the benchmark section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per order and thread count")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        variants = [(order, masked) for masked in (False, True) for order in (False, True)]
        times: dict[tuple[bool, bool], list[float]] = {v: [] for v in variants}
        for _ in range(args.repeats):
            for v in variants:
                times[v].append(epoch_minutes(*v, args.batches))
        m = {v: statistics.median(t) for v, t in times.items()}
        rows.append(
            f"| {threads} | {m[False, False]:.2f} | {m[True, False]:.2f} | "
            f"{1 - m[True, False] / m[False, False]:+.1%} | {m[False, True]:.2f} | {m[True, True]:.2f} | "
            f"{1 - m[True, True] / m[False, True]:+.1%} | {m[True, True] / m[True, False]:.2f} |"
        )
        print(rows[-1], flush=True)
    lines = [
        "## Memory format (`benchmarks/bench_memory_format.py`)",
        "",
        f"Measured {stamp()} on {machine_line()}. Command: "
        f"`.venv/bin/python benchmarks/bench_memory_format.py --threads {' '.join(map(str, args.threads))} "
        f"--batches {args.batches} --repeats {args.repeats}`. "
        f"1-minute load average before: {load_before:.2f}.",
        "",
        "ResNet-20, 1x32x32 inputs, batch 128, SGD: minutes per 60,000-image training epoch (median of "
        f"{args.repeats} alternating measurements of {args.batches} batches, scaled). `channels-last` is "
        "`--channels-last` of `forms train` / `forms compress` (`place_model`). A plain epoch is what "
        "`forms train` and the ADMM W-step run; a masked-retraining epoch trains through the weight "
        "parametrizations of `forms compress` after the hard projection (R = 8, 8-bit).",
        "",
        "| threads | plain NCHW | plain channels-last | saved | retraining NCHW | retraining channels-last "
        "| saved | retraining / plain (channels-last) |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    update_section("memory-format", "\n".join(lines))


if __name__ == "__main__":
    main()
