"""`forms train`: train a zoo or user model on built-in or user data, resumable, on one or more processes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from forms.cli.app import NPROC_OPTION, app, relaunch_for_nproc
from forms.config import load_yaml_mapping
from forms.errors import ConfigError
from forms.io import check_output_folder

if TYPE_CHECKING:
    from forms.nn.train_result import TrainResult

MODEL_HELP = "Zoo model (default lenet5) or package.module:factory returning an nn.Module."
DATASET_HELP = (
    "Dataset (default mnist), or your own: a folder with train/<class>/ and test/<class>/ images, "
    "or a .npz/.pt of train_images, train_labels, test_images, test_labels."
)


@app.command("train")
def train_cmd(
    out: Path = typer.Option(..., "--out", help="Run directory (checkpoint.pt, metrics.json)."),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    dataset: str | None = typer.Option(None, "--dataset", help=DATASET_HELP),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs (default 10)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Global batch size (default 128)."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate (default 0.05)."),
    optimizer: str | None = typer.Option(None, "--optimizer", help="sgd or adam."),
    schedule: str | None = typer.Option(None, "--schedule", help="onecycle, cosine or constant."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of weights, data order, augmentation."),
    flip: bool | None = typer.Option(None, "--flip/--no-flip", help="Random horizontal flips."),
    pad_to: int | None = typer.Option(None, "--pad-to", help="Zero-pad images to this side (e.g. 32)."),
    channels: int | None = typer.Option(None, "--channels", help="Repeat grey images to N channels."),
    shift: int | None = typer.Option(None, "--shift", help="Random-shift augmentation, max pixels."),
    validation_images: int | None = typer.Option(
        None,
        "--validation-images",
        help="Training images held out (drawn with --seed): the epoch of best validation accuracy is "
        "kept, and forms compress validates on the same images (0).",
    ),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Data root (default $FORMS_DATA)."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu or cuda."),
    channels_last: bool | None = typer.Option(
        None, "--channels-last/--no-channels-last", help="Channels-last (NHWC) memory order."
    ),
    config: Path | None = typer.Option(None, "--config", help="YAML TrainSpec; options override it."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out>/checkpoint.pt if present."),
    nproc: int = NPROC_OPTION,
    threads: int | None = typer.Option(
        None, "--threads", help="Torch CPU threads per process (default: torch's choice, the core count)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train a model; checkpoint every epoch; print the test accuracy."""
    check_output_folder(out, "--out folder")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    values: dict[str, Any] = load_yaml_mapping(config) if config is not None else {}
    import torch

    from forms.nn import distributed
    from forms.nn.checkpoint import load_checkpoint
    from forms.nn.device import resolve_device
    from forms.nn.train import CHECKPOINT_NAME, TrainSpec, train

    saved = out / CHECKPOINT_NAME
    if resume and config is None and saved.is_file():
        values = dict(load_checkpoint(saved)["config"])  # `--resume` alone continues with the saved config
    overrides = {
        "model": model,
        "dataset": dataset,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "optimizer": optimizer,
        "schedule": schedule,
        "seed": seed,
        "pad_to": pad_to,
        "channels": channels,
        "shift": shift,
        "validation_images": validation_images,
        "flip": flip,
        "data_dir": data_dir,
        "device": device,
        "channels_last": channels_last,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    spec = TrainSpec.from_dict(values, source=str(config) if config else "command line")
    resolve_device(spec.device)
    relaunch_for_nproc(nproc)
    if threads is not None:
        torch.set_num_threads(threads)
    result = train(spec, out, resume=resume, progress=not quiet)
    if distributed.is_main():
        Console().print(
            f"{spec.model} on {spec.dataset}: test accuracy {result.test_accuracy:.4f} after "
            f"{result.epochs} epochs{_kept(result)} ({result.mean_epoch_seconds:.1f} s/epoch); "
            f"results in {out}/metrics.json",
            highlight=False,
        )
    distributed.cleanup()


def _kept(result: TrainResult) -> str:
    """', epoch e kept (validation accuracy v)' when a hold-out chose the kept epoch."""
    if result.validation_accuracy is None:
        return ""
    return f", epoch {result.selected_epoch} kept (validation accuracy {result.validation_accuracy:.4f})"
