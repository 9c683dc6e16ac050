"""Training-step cost benchmark: ResNet-20 epoch time by memory format and by kind of epoch, on this CPU.

Times :func:`forms.nn.train.train_epoch` on ResNet-20 with 1x32x32 inputs (Fashion-MNIST padded to
32, batch 128, SGD) for three kinds of epoch: ``plain`` (``forms train``), ``wstep`` (an ADMM W-step
of ``forms compress``: the same with the rho/2 ||W - Z + U||^2 penalty of every layer, R = 8, 8-bit)
and ``retrain`` (masked retraining: every layer's weight parametrized by
:class:`forms.compress.retrain.ConstrainedWeight` after the hard projection); each once with the
model in the default order and once with ``place_model(..., channels_last=True)``. The variants
alternate, each measured ``--repeats`` times on ``--batches`` batches of synthetic images (speed
does not depend on the pixel values); the median is scaled to a 60,000-image epoch. Writes the
``memory-format`` section of docs/benchmarks.md.

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
from forms.compress.admm import init_state, penalty_fn, projected_weights
from forms.compress.constraints import layer_constraints
from forms.compress.retrain import attach, load_projected
from forms.compress.spec import CompressSpec
from forms.nn.models import build_model
from forms.nn.train import EpochLoader, place_model, train_epoch

EPOCH_IMAGES = 60_000
BATCH = 128


KINDS = ("plain", "wstep", "retrain")


def epoch_minutes(channels_last: bool, kind: str, batches: int, seed: int = 0) -> float:
    """Minutes per 60,000-image epoch of one timed pass over ``batches`` batches (after a warm-up batch).

    ``kind``: ``plain``, ``wstep`` (with the ADMM penalty) or ``retrain`` (parametrized weights).
    """
    torch.manual_seed(seed)
    device = torch.device("cpu")
    model = place_model(build_model("resnet20", 1, 10, 32), device, channels_last)
    spec = CompressSpec()
    constraints = layer_constraints(model, spec)
    extra = penalty_fn(init_state(model, constraints, spec), device) if kind == "wstep" else None
    if kind == "retrain":
        _, projections = projected_weights(model, constraints, spec)
        load_projected(model, constraints, projections)
        attach(model, constraints, projections)
    n = BATCH * (batches + 1)
    data = TensorDataset(torch.randn(n, 1, 32, 32), torch.randint(0, 10, (n,)))
    warm = TensorDataset(*(t[:BATCH] for t in data.tensors))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    train_epoch(model, EpochLoader(warm, BATCH, seed=seed), optimizer, extra_loss=extra)
    timed = TensorDataset(*(t[BATCH:] for t in data.tensors))
    stats = train_epoch(model, EpochLoader(timed, BATCH, seed=seed), optimizer, extra_loss=extra)
    return stats["seconds"] / (batches * BATCH) * EPOCH_IMAGES / 60


def main() -> None:
    """Parse options, time every kind of epoch in both memory orders, write the benchmark section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per variant and thread count")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        variants = [(order, kind) for kind in KINDS for order in (False, True)]
        times: dict[tuple[bool, str], list[float]] = {v: [] for v in variants}
        for _ in range(args.repeats):
            for v in variants:
                times[v].append(epoch_minutes(*v, args.batches))
        m = {v: statistics.median(t) for v, t in times.items()}
        for kind in KINDS:
            nchw, nhwc = m[False, kind], m[True, kind]
            rows.append(
                f"| {threads} | {kind} | {nchw:.2f} | {nhwc:.2f} | {1 - nhwc / nchw:+.1%} | "
                f"{nchw / m[False, 'plain']:.2f} | {nhwc / m[True, 'plain']:.2f} |"
            )
            print(rows[-1], flush=True)
    lines = [
        "## Training-step cost by memory format and epoch kind (`benchmarks/bench_memory_format.py`)",
        "",
        f"Measured {stamp()} on {machine_line()}. Command: "
        f"`.venv/bin/python benchmarks/bench_memory_format.py --threads {' '.join(map(str, args.threads))} "
        f"--batches {args.batches} --repeats {args.repeats}`. "
        f"1-minute load average before: {load_before:.2f}.",
        "",
        "ResNet-20, 1x32x32 inputs, batch 128, SGD: minutes per 60,000-image training epoch (median of "
        f"{args.repeats} alternating measurements of {args.batches} batches, scaled). `channels-last` is "
        "`--channels-last` of `forms train` / `forms compress` (`place_model`). `plain`: `forms train`; "
        "`wstep`: an ADMM W-step epoch of `forms compress` (penalty on every layer; target of issue 3: "
        "at most 1.15x plain); `retrain`: a masked-retraining epoch through the weight parametrizations "
        "(R = 8, 8-bit).",
        "",
        "| threads | epoch | NCHW min | channels-last min | saved by channels-last | x plain (NCHW) "
        "| x plain (channels-last) |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    update_section("memory-format", "\n".join(lines))


if __name__ == "__main__":
    main()
