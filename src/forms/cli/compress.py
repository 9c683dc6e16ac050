"""`forms compress`, `forms export`, `forms check`: ADMM compression and the integer-weight file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from forms.cli.app import NPROC_OPTION, app
from forms.config import load_yaml_mapping
from forms.io import check_input_file, check_output_file, check_output_folder

if TYPE_CHECKING:
    from forms.compress.result import CompressResult, RetrainSummary


@app.command("compress")
def compress_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Float checkpoint (forms train)."),
    out: Path = typer.Option(..., "--out", help="Run directory (checkpoint.pt, metrics.json)."),
    fragment: int | None = typer.Option(None, "--fragment", help="R: rows per single-signed fragment (8)."),
    weight_bits: int | None = typer.Option(None, "--weight-bits", help="Magnitude bits of the weights (8)."),
    prune: float | None = typer.Option(None, "--prune", help="Structured pruning ratio in [0, 1) (0)."),
    prune_granularity: str | None = typer.Option(
        None, "--prune-granularity", help="filter, channel or fragment (filter)."
    ),
    prune_scope: str | None = typer.Option(None, "--prune-scope", help="layer or global (layer)."),
    no_polarize: bool = typer.Option(False, "--no-polarize", help="Do not polarize (quantize/prune only)."),
    admm_rounds: int | None = typer.Option(None, "--admm-rounds", help="ADMM rounds."),
    round_epochs: int | None = typer.Option(None, "--round-epochs", help="W-step epochs per ADMM round."),
    retrain_epochs: int | None = typer.Option(None, "--retrain-epochs", help="Masked retraining epochs."),
    rho: float | None = typer.Option(None, "--rho", help="Initial ADMM penalty rho."),
    rho_growth: float | None = typer.Option(None, "--rho-growth", help="rho multiplier per round."),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate of the ADMM W-step."),
    retrain_lr: float | None = typer.Option(None, "--retrain-lr", help="Initial retraining learning rate."),
    validation_images: int | None = typer.Option(
        None,
        "--validation-images",
        help="Training images held out to choose the retraining epoch by validation accuracy (0).",
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the data order and the hold-out."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Data root (default $FORMS_DATA)."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu or cuda."),
    channels_last: bool | None = typer.Option(
        None, "--channels-last/--no-channels-last", help="Channels-last (NHWC) memory order."
    ),
    config: Path | None = typer.Option(None, "--config", help="YAML CompressSpec; options override it."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    nproc: int = NPROC_OPTION,
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Compress a float model: polarized fragments, quantized, optionally pruned (ADMM + retraining)."""
    check_output_folder(out, "--out folder")
    values = load_yaml_mapping(config) if config is not None else {}
    from forms.compress.pipeline import compress
    from forms.compress.spec import CompressSpec
    from forms.nn import distributed
    from forms.nn.device import resolve_device

    base = CompressSpec.from_dict(values, source=str(config) if config else "defaults")
    overrides: dict[str, Any] = {
        "crossbar.fragment_size": fragment,
        "quant.weight_bits": weight_bits,
        "prune.ratio": prune,
        "prune.granularity": prune_granularity,
        "prune.scope": prune_scope,
        "polarize.enabled": False if no_polarize else None,
        "schedule.admm_rounds": admm_rounds,
        "schedule.round_epochs": round_epochs,
        "schedule.retrain_epochs": retrain_epochs,
        "schedule.rho": rho,
        "schedule.rho_growth": rho_growth,
        "schedule.lr": lr,
        "schedule.retrain_lr": retrain_lr,
        "validation_images": validation_images,
        "seed": seed,
        "data_dir": data_dir,
        "device": device,
        "channels_last": channels_last,
    }
    spec = base.with_overrides(overrides)
    resolve_device(spec.device)
    if nproc > 1 and distributed.env_world_size() == 1:
        raise typer.Exit(distributed.launch(nproc, distributed.strip_nproc(sys.argv[1:])))
    m = compress(spec, checkpoint, out, resume=resume, progress=not quiet)
    if distributed.is_main():
        Console().print(_summary(m, out), highlight=False)


def _summary(m: CompressResult, out: Path) -> str:
    """One line: accuracies, mixed-sign fragments, sparsity and both crossbar reductions of a compression."""
    f = m.crossbars["factors"]
    w = m.reduction.per_weight
    return (
        f"{m.model} R={m.fragment_size} {m.weight_bits}-bit: accuracy "
        f"{m.accuracy_before:.4f} -> {m.accuracy_after:.4f} (ADMM {m.accuracy_admm:.4f}, "
        f"projected {m.accuracy_projected:.4f}{_kept_epoch(m.retrain)}); "
        f"mixed-sign fragments {m.fragments_mixed_sign}/{m.fragments_total}, sparsity "
        f"{m.sparsity:.3f}; crossbars {m.crossbars['dense_32bit']} -> "
        f"{m.crossbars['final']['polarized']} (x{f['total']:.2f} = pruning {f['pruning']:.2f} x "
        f"quantization {f['quantization']:.2f} x polarization {f['polarization']:.2f}); "
        f"per weight x{w.total:.2f} = pruning {w.pruning:.2f} x quantization {w.quantization:.2f} x "
        f"polarization {w.polarization:.2f}, area of {w.area_equivalent:.2f} crossbars; "
        f"results in {out}/metrics.json"
    )


def _kept_epoch(retrain: RetrainSummary) -> str:
    """', retraining epoch e of K kept by validation accuracy' when a validation set chose it."""
    if not retrain.validation_images:
        return ""
    return f", retraining epoch {retrain.selected_epoch} of {retrain.epochs} kept by validation accuracy"


@app.command("export")
def export_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Compressed checkpoint (forms compress)."),
    out: Path = typer.Option(..., "--out", help="Output .npz file."),
) -> None:
    """Write the integer crossbar matrices, scales and metadata of a compressed model to .npz."""
    check_output_file(out, "--out file")
    from forms.compress.export import export_npz

    summary = export_npz(checkpoint, out)
    Console().print(
        f"wrote {summary['path']}: {len(summary['layers'])} layers, R={summary['fragment_size']}, "
        f"{summary['weight_bits']}-bit, crossbars {summary['crossbar_rows']}x{summary['crossbar_cols']}",
        highlight=False,
    )


@app.command("check")
def check_cmd(
    npz: Path = typer.Argument(..., help="File written by forms export."),
) -> None:
    """Verify polarization, weight range and metadata of an exported .npz; exit 1 on any violation."""
    check_input_file(npz, "exported file")
    from forms.compress.export import check_npz

    report = check_npz(npz)
    console = Console()
    for layer in report.layers:
        console.print(
            f"{layer['name']}: shape {layer['shape']}, R={layer['fragment_size']}, mixed-sign fragments "
            f"{layer['mixed_sign_fragments']}, out of range {layer['over_range']}",
            highlight=False,
        )
    if not report.ok:
        for v in report.violations:
            Console(stderr=True).print(f"[bold red]violation:[/] {v}", highlight=False)
        raise typer.Exit(1)
    console.print(f"OK: {npz} satisfies every constraint", highlight=False)
