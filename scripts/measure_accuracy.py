"""Measure the accuracy of each crossbar design point with the bit-accurate simulator and package it.

``forms optimize --max-accuracy-drop`` (:mod:`forms.cost.measured_accuracy`) refuses a design point whose
(encoding, fragment size R, ADC bits, flipping) has no measured accuracy or one too far below the float
model. This script makes that measurement for LeNet-5/MNIST, through the ``forms`` CLI:

1. ``forms compress`` the float LeNet-5 (``--float-checkpoint``; by default the one
   ``scripts/measure_activity.py`` trained, all 60,000 MNIST images, 3 epochs) once per fragment size
   (:data:`FRAGMENT_SIZES`) with the FORMS settings of ``scripts/measure_activity.py`` (polarized, 8-bit
   weights, no pruning) and the compression schedule ``--schedule`` (ScheduleSpec fields; by default
   none: ``forms compress``'s default schedule, 4 ADMM rounds + 3 retraining epochs);
2. evaluates the float model on the same first ``--limit`` test images (the reference of the drop);
3. ``forms simulate`` each compressed model at 16-bit inputs (the presets' width) for every ADC width the
   optimizer may choose (:func:`grid`): polarized at each R, lossless and the FORMS presets' published 4
   bits, flipped and not; offset (ISAAC) and differential (PRIME) on the R = 8 model (the presets' "same
   compressed model as FORMS", 128 rows per conversion), lossless and ISAAC's 8 bits, flipped and not;
4. packages ``src/forms/presets/accuracy/lenet5-mnist.json``: conditions, float accuracy, one point per
   simulation (accuracy, reference accuracy, clip rate, command) and provenance (commands, configs,
   checkpoint digests, images, git commit, date).

Resumable: a stage whose output exists is skipped (a compressed model made with another configuration
stops the script). Every command runs with one torch thread.

    .venv/bin/python scripts/measure_accuracy.py --runs /tmp/accuracy-runs/lenet5-mnist-default --limit 10000
    .venv/bin/python scripts/measure_accuracy.py --schedule '{admm_rounds: 1, retrain_epochs: 1}' --limit 2000
    .venv/bin/python scripts/measure_accuracy.py --table      # the packaged points, markdown
"""

from __future__ import annotations

import argparse
import datetime
import shlex
from pathlib import Path
from typing import Any

import yaml
from measure_activity import (
    FORMS,
    FORMS_COMPRESSION,
    NETWORKS,
    REPO,
    SEED,
    git_state,
    run,
    run_stage,
    stage_command,
)

from forms.compress.spec import ScheduleSpec
from forms.encoding import Encoding, lossless_adc_bits
from forms.io import read_json, write_json_atomic
from forms.nn.fingerprint import checkpoint_content_key

ACCURACY_DIR = REPO / "src" / "forms" / "presets" / "accuracy"
NETWORK = next(n for n in NETWORKS if n.name == "lenet5-mnist")
"""The measured network (its float model is the one its activity measurement trained)."""
FRAGMENT_SIZES = (4, 8, 16, 32, 128)
"""Fragment sizes compressed and simulated as polarized (the optimizer searches 4-32)."""
BASELINE_R = 8
"""The compressed model offset (ISAAC) and differential (PRIME) run: FORMS' preset R, as isaac-opt says."""
CONDITIONS = {"rows": 128, "cols": 128, "cell_bits": 2, "dac_bits": 1, "input_bits": 16, "weight_bits": 8}
"""Crossbar, DAC, input and weight widths of every simulation: those of every preset."""
CLIPPING_BITS = {Encoding.POLARIZED: 4, Encoding.OFFSET: 8, Encoding.DIFFERENTIAL: 8}
"""The presets' published ADC widths (FORMS' 4-bit fragment ADC, ISAAC's 8-bit ADC), measured flipped and
unflipped besides the lossless widths: what ``forms optimize --allow-clipping`` may choose."""


def lossless_bits(rows: int, flipped: bool) -> int:
    """Lossless ADC width for ``rows`` rows per conversion under :data:`CONDITIONS`."""
    return lossless_adc_bits(rows, CONDITIONS["cell_bits"], CONDITIONS["dac_bits"], flipped)


def grid() -> list[tuple[Encoding, int, int, bool]]:
    """Every simulated (encoding, rows per conversion, ADC bits, flipped), lossless widths first."""
    points: list[tuple[Encoding, int, int, bool]] = []
    groups = [(Encoding.POLARIZED, r) for r in FRAGMENT_SIZES]
    groups += [(e, CONDITIONS["rows"]) for e in (Encoding.OFFSET, Encoding.DIFFERENTIAL)]
    for encoding, rows in groups:
        for flipped in (False, True):
            lossless = lossless_bits(rows, flipped)
            for bits in dict.fromkeys((lossless, CLIPPING_BITS[encoding])):
                if bits <= lossless:  # a wider ADC than lossless converts exactly the same
                    points.append((encoding, rows, bits, flipped))
    return points


def model_fragment(encoding: Encoding, rows: int) -> int:
    """The fragment size of the compressed model a point runs."""
    return rows if encoding is Encoding.POLARIZED else BASELINE_R


def compress_config(fragment: int, schedule: dict[str, Any]) -> dict[str, Any]:
    """CompressSpec of the model at ``fragment``: the FORMS settings of measure_activity with R changed,
    ``schedule`` (ScheduleSpec fields; empty: ``forms compress``'s defaults) and the network's data."""
    crossbar = {**FORMS_COMPRESSION["crossbar"], "fragment_size": fragment}
    return {**FORMS_COMPRESSION, "crossbar": crossbar, **({"schedule": schedule} if schedule else {})}


def compress(fragment: int, schedule: dict[str, Any], runs: Path, float_checkpoint: Path) -> None:
    """Compress the model at ``fragment`` unless done; SystemExit when a finished one used another config."""
    folder, config = runs / f"R{fragment}", compress_config(fragment, schedule)
    made = folder / "compress.yaml"
    if (folder / "compress" / "metrics.json").exists() and yaml.safe_load(made.read_text()) != config:
        raise SystemExit(f"{folder} was compressed with another configuration ({made}): use another --runs")
    run_stage("compress", config, folder, float_checkpoint)


def sim_name(point: tuple[Encoding, int, int, bool]) -> str:
    """Run folder of one simulation."""
    encoding, rows, bits, flipped = point
    return f"sim-{encoding.value}-R{rows}-adc{bits}{'-flip' if flipped else ''}"


def simulate_command(point: tuple[Encoding, int, int, bool], runs: Path, limit: int) -> list[str]:
    """The ``forms simulate`` command of one point."""
    encoding, rows, bits, flipped = point
    checkpoint = runs / f"R{model_fragment(encoding, rows)}" / "compress" / "checkpoint.pt"
    return [
        FORMS, "simulate", "--checkpoint", str(checkpoint), "--out", str(runs / sim_name(point)),
        "--encoding", encoding.value, "--adc-bits", str(bits), "--flipped" if flipped else "--no-flipped",
        "--input-bits", str(CONDITIONS["input_bits"]), "--limit", str(limit), "--seed", str(SEED),
        "--device", "cpu", "--quiet",
    ]  # fmt: skip


def float_accuracy(checkpoint: Path, limit: int) -> float:
    """Accuracy of the float (uncompressed) model on the first ``limit`` test images."""
    from torch.utils.data import TensorDataset

    from forms.nn.checkpoint import load_checkpoint, model_from_checkpoint
    from forms.nn.data import load_dataset
    from forms.nn.epoch import evaluate

    x, y = load_dataset(NETWORK.dataset, "test").tensors
    model = model_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint))
    return evaluate(model, TensorDataset(x[:limit], y[:limit]))


def point_record(point: tuple[Encoding, int, int, bool], runs: Path, limit: int) -> dict[str, Any]:
    """One packaged point from its simulation's metrics.json."""
    encoding, rows, bits, flipped = point
    metrics = read_json(runs / sim_name(point) / "metrics.json", "simulation metrics")
    if metrics["images"] != limit:
        raise SystemExit(f"{sim_name(point)} ran {metrics['images']} images, not {limit}: delete it, rerun")
    return {
        "encoding": encoding.value,
        "fragment_size": rows,
        "adc_bits": bits,
        "flipped": flipped,
        "lossless_adc_bits": lossless_bits(rows, flipped),
        "model_fragment_size": model_fragment(encoding, rows),
        "accuracy": metrics["accuracy"],
        "reference_accuracy": metrics["reference_accuracy"],
        "dequantized_accuracy": metrics["float_accuracy"],
        "clip_rate": metrics["adc_clip_rate"]["overall"],
        "command": shlex.join(["forms", *simulate_command(point, runs, limit)[1:]]),
    }


def compress_command(folder: Path, float_checkpoint: Path) -> list[str]:
    """The ``forms compress`` command that made ``folder/compress`` (as run_stage runs it)."""
    return stage_command("compress", folder / "compress.yaml", folder / "compress", float_checkpoint)


def provenance(runs: Path, float_checkpoint: Path, limit: int, schedule: dict[str, Any]) -> dict[str, Any]:
    """How the file was produced (module docstring)."""
    compress = {
        f"R{r}": {
            "command": shlex.join(["forms", *compress_command(runs / f"R{r}", float_checkpoint)[1:]]),
            "checkpoint_digest": checkpoint_content_key(runs / f"R{r}" / "compress" / "checkpoint.pt"),
            "compressed_accuracy_full_test_set": read_json(
                runs / f"R{r}" / "compress" / "metrics.json", "compression metrics"
            )["accuracy_after"],
        }
        for r in FRAGMENT_SIZES
    }
    return {
        "script": "scripts/measure_accuracy.py",
        "float_checkpoint": str(float_checkpoint),
        "float_checkpoint_digest": checkpoint_content_key(float_checkpoint),
        "training": "the float LeNet-5 of scripts/measure_activity.py: all 60,000 MNIST training images, "
        "3 epochs",
        "compress_config": {
            k: v for k, v in compress_config(BASELINE_R, schedule).items() if k != "crossbar"
        },
        "compression_schedule": ScheduleSpec(**schedule).model_dump(mode="json"),
        "compression_schedule_overrides": schedule or "none: forms compress's default schedule",
        "compression_data": "all 60,000 MNIST training images, Adam (forms compress's defaults)",
        "compressed": compress,
        "test_images": f"the first {limit} MNIST test images",
        "seed": SEED,
        "baseline_model": f"offset and differential run the R = {BASELINE_R} compressed model",
        **git_state(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def measure(runs: Path, float_checkpoint: Path, limit: int, schedule: dict[str, Any]) -> Path:
    """Compress, simulate and package (each step skipped when its output exists)."""
    for r in FRAGMENT_SIZES:
        compress(r, schedule, runs, float_checkpoint)
    for point in grid():
        if not (runs / sim_name(point) / "metrics.json").exists():
            run(simulate_command(point, runs, limit))
    data = {
        "model": NETWORK.model,
        "dataset": NETWORK.dataset,
        "images": limit,
        "float_accuracy": float_accuracy(float_checkpoint, limit),
        "conditions": CONDITIONS,
        "points": [point_record(p, runs, limit) for p in grid()],
        "provenance": provenance(runs, float_checkpoint, limit, schedule),
    }
    return write_json_atomic(data, ACCURACY_DIR / f"{NETWORK.name}.json")


def table() -> str:
    """Markdown table of the packaged points."""
    data = read_json(ACCURACY_DIR / f"{NETWORK.name}.json", "accuracy file")
    lines = [
        f"float accuracy {data['float_accuracy']:.4f} on {data['images']} images",
        "| encoding | R | ADC bits | flipped | lossless bits | accuracy | reference | clip rate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in data["points"]:
        lines.append(
            f"| {p['encoding']} | {p['fragment_size']} | {p['adc_bits']} | {p['flipped']} | "
            f"{p['lossless_adc_bits']} | {p['accuracy']:.4f} | {p['reference_accuracy']:.4f} | "
            f"{p['clip_rate']:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse the options and measure (or print the table)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=Path, default=Path("/tmp/accuracy-runs/lenet5-mnist"), help="Run folder."
    )
    parser.add_argument(
        "--float-checkpoint",
        type=Path,
        default=Path("/tmp/activity-runs/lenet5-mnist/train/checkpoint.pt"),
        help="Float LeNet-5/MNIST checkpoint (forms train).",
    )
    parser.add_argument("--limit", type=int, default=10000, help="First N test images simulated.")
    parser.add_argument(
        "--schedule",
        type=yaml.safe_load,
        default={},
        help="Compression schedule overrides, a YAML mapping of ScheduleSpec fields (default: none, "
        "forms compress's default schedule), e.g. '{admm_rounds: 1, retrain_epochs: 1}'.",
    )
    parser.add_argument("--table", action="store_true", help="Print the packaged points.")
    args = parser.parse_args()
    if args.table:
        print(table())
        return
    if not isinstance(args.schedule, dict):
        parser.error(f"--schedule must be a YAML mapping of schedule fields, got {args.schedule!r}")
    ScheduleSpec(**args.schedule)  # refuse an unknown field before any run
    print(f"wrote {measure(args.runs, args.float_checkpoint, args.limit, args.schedule)}")


if __name__ == "__main__":
    main()
