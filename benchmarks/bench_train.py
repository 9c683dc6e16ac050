"""Training benchmark: accuracy and seconds per epoch of LeNet-5 on MNIST and Fashion-MNIST.

Targets (issue 2): LeNet-5 on MNIST >= 99.0 % test accuracy within 10 epochs at <= 15 s per epoch
on 2 CPU cores; a LeNet-size CNN on Fashion-MNIST >= 90 %. Trains with the library entry point
(exactly what ``forms train`` runs), keeps the runs (``runs/lenet5`` is the MNIST model other stages
use), and writes the ``train`` section of docs/benchmarks.md.

    .venv/bin/python benchmarks/bench_train.py [--threads 2] [--only mnist|fashion-mnist] [--resume]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, stamp, update_section
from forms.nn.train import TrainSpec, train

ROOT = Path(__file__).resolve().parent.parent

# name -> (spec, output dir, accuracy target, seconds-per-epoch target or None, CLI equivalent)
TASKS: dict[str, tuple[TrainSpec, str, float, float | None, str]] = {
    "mnist": (
        TrainSpec(model="lenet5", dataset="mnist", epochs=10),
        "runs/lenet5",
        0.990,
        15.0,
        "forms train --model lenet5 --dataset mnist --epochs 10 --out runs/lenet5",
    ),
    "fashion-mnist": (
        TrainSpec(model="lenet5", dataset="fashion-mnist", epochs=15, flip=True),
        "runs/lenet5-fashion",
        0.900,
        None,
        "forms train --model lenet5 --dataset fashion-mnist --epochs 15 --flip --out runs/lenet5-fashion",
    ),
}


def run(name: str, resume: bool) -> dict[str, Any]:
    """Train one task; return its metrics plus the machine load seen before and after."""
    spec, out, _, _, _ = TASKS[name]
    load_before = os.getloadavg()
    metrics = train(spec, ROOT / out, resume=resume).to_dict()
    metrics["load_before"] = load_before
    metrics["load_after"] = os.getloadavg()
    return metrics


def row(name: str, m: dict[str, Any]) -> str:
    """One Markdown table row of a finished task."""
    spec, out, acc_target, sec_target, _ = TASKS[name]
    secs = [h["seconds"] for h in m["per_epoch"]]
    cpu = [h.get("cpu_seconds", float("nan")) for h in m["per_epoch"]]
    best = max(h["test_accuracy"] for h in m["per_epoch"])
    ok_acc = m["test_accuracy"] >= acc_target
    ok_sec = sec_target is None or sum(secs) / len(secs) <= sec_target
    target = f">= {acc_target:.1%}" + (f", <= {sec_target:.0f} s/epoch" if sec_target else "")
    verdict = "pass" if ok_acc and ok_sec else ("accuracy pass, time FAIL" if ok_acc else "FAIL")
    load = f"{m['load_before'][0]:.1f} / {m['load_after'][0]:.1f}"
    return (
        f"| {spec.model} / {name} | {m['epochs']} | {m['test_accuracy']:.2%} (best {best:.2%}) | "
        f"{sum(secs) / len(secs):.1f} (min {min(secs):.1f}) | {sum(cpu) / len(cpu):.1f} | "
        f"{m['torch_threads']} | {load} | {target} | {verdict} | `{out}` |"
    )


def main() -> None:
    """Parse options, train the selected tasks, write the benchmark section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--only", choices=sorted(TASKS), action="append", help="run only these tasks")
    parser.add_argument("--resume", action="store_true", help="continue/reuse runs already in runs/")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.only or list(TASKS)
    results = {name: run(name, args.resume) for name in names}
    for name, m in results.items():
        print(f"{name}: test accuracy {m['test_accuracy']:.4f}, {m['mean_epoch_seconds']:.1f} s/epoch")
    rows = "\n".join(row(name, m) for name, m in results.items())
    commands = "\n".join(f"- {name}: `{TASKS[name][4]}`" for name in names)
    recipe = TASKS["mnist"][0]
    argv = " ".join(sys.argv[1:])
    columns = ["model / dataset", "epochs", "final test accuracy", "wall s/epoch (train)", "CPU s/epoch"]
    columns += ["threads", "load avg before / after", "target", "verdict", "run"]
    header = "| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|"
    body = f"""## Training: LeNet-5 on MNIST and Fashion-MNIST

Measured {stamp()} on {machine_line()}, torch {torch.__version__}, with
`.venv/bin/python benchmarks/bench_train.py {argv}`.
Recipe (TrainSpec defaults): {recipe.optimizer.upper()} (Nesterov momentum {recipe.momentum}), OneCycle to
lr {recipe.lr}, weight decay {recipe.weight_decay}, batch {recipe.batch_size}, seed {recipe.seed};
Fashion-MNIST adds random horizontal flips. Equivalent commands:

{commands}

{header}
{rows}

Wall seconds are training time per epoch (evaluation excluded); CPU seconds are the process CPU time over
all threads. **The machine was shared** with other jobs while this ran (the 1-minute load average on its
2 cores is shown): wall time then measures contention as much as training speed, and the CPU-seconds
column is the better estimate of the cost on an idle machine.
"""
    update_section("train", body)


if __name__ == "__main__":
    main()
