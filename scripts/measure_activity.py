"""Measure the zero-skip activity of every compared network and package it for the cost model.

For each network (LeNet-5/MNIST, ResNet-20/Fashion-MNIST at 32x32, ResNet-18 and VGG-16 in CIFAR shape on
Fashion-MNIST padded to 32x32 with 3 channels) this runs, in order, through the ``forms`` CLI:

1. ``forms train``     the float model (a training subset on CPU: :data:`NETWORKS` says which);
2. ``forms compress``  FORMS settings: polarized fragments of R = 8 rows, 8-bit weights, no pruning;
3. ``forms simulate``  on the first test images (:attr:`Network.images`), once per input mode (:data:`MODES`):
   ``in16-calibrated`` (16-bit inputs, per-layer scale calibrated to the activation range),
   ``in16-8bit`` (a 16-bit datapath holding activations quantized to 8 significant bits), ``in8``;
4. packages each simulation as ``src/forms/presets/activity/<model>-<dataset>-<mode>.json``: the
   ``accuracy``, ``zero_skip`` and ``zero_skip_totals`` of its metrics.json plus ``provenance`` (the exact
   commands and configs, checkpoint content digests, images, seeds, training subset, git commit, date).

It is resumable: a step whose output exists is skipped (train and compress resume an interrupted run);
a simulation older than its compressed checkpoint, or made by a simulator without the read and row-driver
counts, is redone. Run folders live
under ``--runs`` (default /tmp/activity-runs), outside the repository. Each command runs with one torch
thread (``OMP_NUM_THREADS=1``) so several measurements can share a machine.

    .venv/bin/python scripts/measure_activity.py                          # everything
    .venv/bin/python scripts/measure_activity.py --network resnet20-fashion-mnist --until compress
    .venv/bin/python scripts/measure_activity.py --table                  # skip fractions, markdown
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from forms.io import read_json, write_json_atomic, write_text_atomic
from forms.nn.fingerprint import checkpoint_content_key

REPO = Path(__file__).resolve().parent.parent
ACTIVITY_DIR = REPO / "src" / "forms" / "presets" / "activity"
FORMS = str(Path(sys.executable).parent / "forms")
STEPS = ("train", "compress", "simulate", "package")
NEW_FIELDS = ("reads_total", "input_digits_total")
"""Per-layer zero-skip fields a simulation must carry to be packaged (read cycles, row drivers)."""
SEED = 0
"""Seed of every training, compression and simulation."""

FORMS_COMPRESSION = {
    "crossbar": {"rows": 128, "cols": 128, "cell_bits": 2, "fragment_size": 8},
    "quant": {"weight_bits": 8},
    "polarize": {"enabled": True},
    "prune": {"ratio": 0.0},
    "seed": SEED,
}
"""FORMS settings every network is compressed with: polarized, R = 8, 8-bit weights, no pruning."""


@dataclass(frozen=True)
class Network:
    """One measured network: its training, its compression (the ``schedule`` and data fields of a
    CompressSpec besides :data:`FORMS_COMPRESSION`), a sentence saying what data and schedule they used,
    and how many test images are simulated."""

    model: str
    dataset: str
    train: dict[str, Any]
    schedule: dict[str, Any]
    compress_data: dict[str, Any]
    subset: str
    images: int
    """Test images each simulation runs (the first ones)."""

    @property
    def name(self) -> str:
        """``<model>-<dataset>``: the run folder and the packaged files' prefix."""
        return f"{self.model}-{self.dataset}"

    def train_config(self) -> dict[str, Any]:
        """TrainSpec of the float stage."""
        return {"model": self.model, "dataset": self.dataset, "seed": SEED, **self.train}

    def compress_config(self) -> dict[str, Any]:
        """CompressSpec of the FORMS stage."""
        return {**FORMS_COMPRESSION, "schedule": self.schedule, **self.compress_data}


@dataclass(frozen=True)
class Mode:
    """How activations meet the input width: ``forms simulate`` options and what they mean."""

    name: str
    options: tuple[str, ...]
    meaning: str


CIFAR_SHAPE = {"pad_to": 32, "channels": 3, "channels_last": True}
NETWORKS = (
    Network(
        "lenet5",
        "mnist",
        {"epochs": 3},
        {"admm_rounds": 1, "round_epochs": 1, "retrain_epochs": 1},
        {},
        "all 60,000 MNIST training images; 3 float epochs (the demo's budget); compression 1 ADMM round x 1 "
        "epoch + 1 retraining epoch (Adam; the demo runs 3 + 2 and prunes half the filters)",
        300,
    ),
    Network(
        "resnet20",
        "fashion-mnist",
        {"epochs": 3, "pad_to": 32, "train_subset": 6000, "test_subset": 1000, "channels_last": True},
        {"admm_rounds": 0, "retrain_epochs": 1, "optimizer": "sgd", "retrain_lr": 0.01},
        {"train_subset": 6000, "test_subset": 1000, "channels_last": True},
        "first 6,000 of 60,000 Fashion-MNIST training images (padded to 32x32); 3 float epochs; compression "
        "without ADMM (one hard projection to polarized R = 8 fragments and 8-bit weights, BatchNorm "
        "re-estimated) + 1 masked retraining epoch (SGD) on the same subset, sized for 2 shared CPU cores "
        "without a GPU",
        300,
    ),
    *(
        Network(
            model,
            "fashion-mnist",
            {"epochs": 2, "train_subset": 3000, "test_subset": 500, **train, **CIFAR_SHAPE},
            {
                "admm_rounds": 0,
                "retrain_epochs": 1,
                "optimizer": "sgd",
                "retrain_lr": 0.01,
                "bn_recalibration_batches": 10,
            },
            {"train_subset": 3000, "test_subset": 500, "channels_last": True},
            f"first 3,000 of 60,000 Fashion-MNIST training images (padded to 32x32, 3 channels); 2 float "
            f"epochs ({schedule}); compression without ADMM (one hard projection to polarized R = 8 "
            "fragments and 8-bit weights, BatchNorm re-estimated on 1,280 training images) + 1 masked "
            "retraining epoch (SGD) on the same subset, sized for 2 shared CPU cores without a GPU",
            100,
        )
        for model, train, schedule in (
            ("resnet18", {}, "SGD, batch 128, peak lr 0.05"),
            ("vgg16", {"batch_size": 64, "lr": 0.01}, "SGD, batch 64, peak lr 0.01: lr 0.05 diverged"),
        )
    ),
)
MODES = (
    Mode(
        "in16-calibrated",
        ("--input-bits", "16"),
        "16-bit inputs, each layer's scale calibrated to its activation range (maximum |x| over 256 "
        "training images mapped to the largest code)",
    ),
    Mode(
        "in16-8bit",
        ("--input-bits", "16", "--input-significant-bits", "8"),
        "16-bit datapath holding activations quantized to 8 significant bits (the upper 8 bits zero)",
    ),
    Mode("in8", ("--input-bits", "8"), "8-bit inputs, each layer's scale calibrated as for in16-calibrated"),
)


def activity_path(network: Network, mode: Mode) -> Path:
    """The packaged activity file of ``network`` in ``mode``."""
    return ACTIVITY_DIR / f"{network.name}-{mode.name}.json"


def run(command: list[str]) -> None:
    """Run a forms command with one torch thread; stop the script if it fails."""
    print("$", shlex.join(command), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    if subprocess.run(command, env=env, check=False).returncode != 0:
        sys.exit(f"command failed: {shlex.join(command)}")


def stage_command(
    step: str, config: Path, out: Path, checkpoint: Path | None, resume: bool = False
) -> list[str]:
    """The ``forms train`` or ``forms compress`` command of one stage (``--resume`` continues one)."""
    command = [FORMS, step, "--config", str(config), "--out", str(out), "--quiet"]
    if checkpoint is not None:
        command[2:2] = ["--checkpoint", str(checkpoint)]
    if step == "train":
        command += ["--threads", "1"]
    return [*command, "--resume"] if resume else command


def run_stage(step: str, config: dict[str, Any], folder: Path, checkpoint: Path | None) -> None:
    """Train or compress into ``folder/step`` unless its metrics.json exists."""
    out = folder / step
    if (out / "metrics.json").exists():
        print(f"done: {out}", flush=True)
        return
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / f"{step}.yaml"
    write_text_atomic(yaml.safe_dump(config, sort_keys=False), config_file)
    run(stage_command(step, config_file, out, checkpoint, resume=(out / "checkpoint.pt").exists()))


def simulate_command(network: Network, mode: Mode, folder: Path) -> list[str]:
    """The ``forms simulate`` command of one mode."""
    return [
        FORMS, "simulate", "--checkpoint", str(folder / "compress" / "checkpoint.pt"),
        "--out", str(folder / f"sim-{mode.name}"), *mode.options, "--limit", str(network.images),
        "--seed", str(SEED), "--device", "cpu", "--quiet",
    ]  # fmt: skip


def has_new_fields(metrics_file: Path) -> bool:
    """Whether a simulation's metrics.json exists and carries the read-cycle and row-driver counts."""
    if not metrics_file.exists():
        return False
    layers = read_json(metrics_file, "simulation metrics")["zero_skip"].values()
    return all(key in layer for layer in layers for key in NEW_FIELDS)


def simulate(network: Network, mode: Mode, folder: Path) -> None:
    """Simulate one mode unless a complete simulation of it, newer than the compressed checkpoint, exists."""
    out = folder / f"sim-{mode.name}"
    metrics_file = out / "metrics.json"
    checkpoint = folder / "compress" / "checkpoint.pt"
    if has_new_fields(metrics_file) and metrics_file.stat().st_mtime >= checkpoint.stat().st_mtime:
        print(f"done: {out}", flush=True)
        return
    run(simulate_command(network, mode, folder))


def git_state() -> dict[str, Any]:
    """The commit the tree is at and whether it has uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout

    return {
        "git_commit": git("rev-parse", "HEAD").strip(),
        "git_dirty": bool(git("status", "--porcelain").strip()),
    }


def provenance(network: Network, mode: Mode, folder: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """How one activity file was produced (module docstring)."""
    compress_metrics = read_json(folder / "compress" / "metrics.json", "compression metrics")
    train_cmd = stage_command("train", folder / "train.yaml", folder / "train", None)
    compress_cmd = stage_command(
        "compress", folder / "compress.yaml", folder / "compress", folder / "train" / "checkpoint.pt"
    )
    return {
        "model": network.model,
        "dataset": network.dataset,
        "input_shape": list(input_shape_of(network)),
        "mode": mode.name,
        "mode_meaning": mode.meaning,
        "script": "scripts/measure_activity.py",
        "commands": [
            shlex.join(["forms", *c[1:]])
            for c in (train_cmd, compress_cmd, simulate_command(network, mode, folder))
        ],
        "train_config": yaml.safe_load((folder / "train.yaml").read_text()),
        "compress_config": yaml.safe_load((folder / "compress.yaml").read_text()),
        "training_subset": network.subset,
        "float_checkpoint_digest": checkpoint_content_key(folder / "train" / "checkpoint.pt"),
        "checkpoint_digest": checkpoint_content_key(folder / "compress" / "checkpoint.pt"),
        "float_accuracy": compress_metrics["accuracy_before"],
        "compressed_accuracy": compress_metrics["accuracy_after"],
        "images": metrics["images"],
        "test_images": f"the first {metrics['images']} test images",
        "seed": SEED,
        "sim_spec": metrics["spec"],
        **git_state(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def input_shape_of(network: Network) -> tuple[int, int, int]:
    """(C, H, W) of the network's inputs."""
    from forms.nn.data import input_shape

    return input_shape(network.dataset, network.train.get("pad_to"), network.train.get("channels"))


def package(network: Network, mode: Mode, folder: Path) -> None:
    """Write the activity file of one simulation (atomically)."""
    metrics_file = folder / f"sim-{mode.name}" / "metrics.json"
    if not has_new_fields(metrics_file):
        sys.exit(f"{metrics_file} lacks {', '.join(NEW_FIELDS)}: simulate with the current simulator first")
    metrics = read_json(metrics_file, "simulation metrics")
    activity = {
        "provenance": provenance(network, mode, folder, metrics),
        "accuracy": metrics["accuracy"],
        "zero_skip": metrics["zero_skip"],
        "zero_skip_totals": metrics["zero_skip_totals"],
    }
    print(f"wrote {write_json_atomic(activity, activity_path(network, mode))}", flush=True)


def measure(network: Network, runs: Path, until: str) -> None:
    """Run the steps of one network up to and including ``until``."""
    folder = runs / network.name
    steps = STEPS[: STEPS.index(until) + 1]
    if "train" in steps:
        run_stage("train", network.train_config(), folder, None)
    if "compress" in steps:
        run_stage("compress", network.compress_config(), folder, folder / "train" / "checkpoint.pt")
    for mode in MODES:
        if "simulate" in steps:
            simulate(network, mode, folder)
        if "package" in steps:
            package(network, mode, folder)


def skip_fractions(activity: dict[str, Any]) -> dict[str, float]:
    """Network-wide fractions: conversions and reads skipped (leading, bitplane) and row-driver activity."""
    layers = activity["zero_skip"].values()

    def total(key: str) -> int:
        return sum(layer[key] for layer in layers)

    return {
        "conversions leading": total("conversions_skipped_leading") / total("conversions_total"),
        "conversions bitplane": total("conversions_skipped_bitplane") / total("conversions_total"),
        "reads leading": total("reads_skipped_leading") / total("reads_total"),
        "reads bitplane": total("reads_skipped_bitplane") / total("reads_total"),
        "driver activity": total("input_digits_nonzero") / total("input_digits_total"),
    }


def table() -> str:
    """Markdown table of :func:`skip_fractions` for every packaged activity file."""
    keys = (
        "conversions leading",
        "conversions bitplane",
        "reads leading",
        "reads bitplane",
        "driver activity",
    )
    lines = ["| network | mode | accuracy | " + " | ".join(keys) + " |", "|---|---|---|" + "---|" * len(keys)]
    for network in NETWORKS:
        for mode in MODES:
            path = activity_path(network, mode)
            if path.exists():
                activity = read_json(path, "activity file")
                fractions = skip_fractions(activity)
                cells = " | ".join(f"{fractions[k]:.3f}" for k in keys)
                lines.append(f"| {network.name} | {mode.name} | {activity['accuracy']:.3f} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    """Parse the options and run the measurements (or print the table)."""
    names = [n.name for n in NETWORKS]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, default=Path("/tmp/activity-runs"), help="Run folders' root.")
    parser.add_argument("--network", action="append", choices=names, help="Only these networks (repeatable).")
    parser.add_argument("--until", choices=STEPS, default="package", help="Last step to run.")
    parser.add_argument(
        "--table", action="store_true", help="Print the skip fractions of the packaged files."
    )
    args = parser.parse_args()
    if args.table:
        print(table())
        return
    for network in NETWORKS:
        if args.network is None or network.name in args.network:
            measure(network, args.runs, args.until)


if __name__ == "__main__":
    main()
