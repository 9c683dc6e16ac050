"""`forms compress`, `forms export`, `forms check`: ADMM compression and the integer-weight file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from forms.cli.app import NPROC_OPTION, app, relaunch_for_nproc
from forms.config import load_yaml_mapping
from forms.io import check_input_file, check_output_file, check_output_folder

if TYPE_CHECKING:
    from forms.compress.result import CompressResult, RetrainSummary

PRUNE_OPTION = typer.Option(
    None,
    "--prune",
    help="Structured pruning ratio in [0, 1) (0), applied to every mapped layer except the first and the "
    "last unless --prune-first-layer / --prune-last-layer are set.",
)
"""``--prune``: the ratio of every pruned layer."""
PRUNE_LAYER_OPTION = typer.Option(
    None,
    "--prune-layer",
    metavar="NAME=RATIO",
    help="Pruning ratio of one layer by module name (repeatable; overrides --prune for it): NAME=0.5, or one "
    "ratio per unit of a combined granularity, NAME=filter:0.9,channel:0.3 (a unit left out is not "
    "pruned). A ratio for the first or last mapped layer needs --prune-first-layer or --prune-last-layer.",
)
"""``--prune-layer NAME=RATIO`` or ``NAME=UNIT:RATIO,...``: per-layer ratios (``prune.layer_ratios``)."""
PRUNE_FIRST_LAYER_OPTION = typer.Option(
    None, "--prune-first-layer/--no-prune-first-layer", help="Prune the first mapped layer too (no)."
)
"""``--prune-first-layer``: ``prune.first_layer``."""
PRUNE_LAST_LAYER_OPTION = typer.Option(
    None, "--prune-last-layer/--no-prune-last-layer", help="Prune the last mapped layer (logits) too (no)."
)
"""``--prune-last-layer``: ``prune.last_layer``."""
PRUNE_GRANULARITY_OPTION = typer.Option(
    None,
    "--prune-granularity",
    help="filter, channel, fragment or rows (R fragment-aligned rows in every column); filter+channel, "
    "filter+fragment or filter+rows prune both (filter).",
)
"""``--prune-granularity``: ``prune.granularity``."""
PRUNE_PROPAGATE_OPTION = typer.Option(
    None,
    "--prune-propagate/--no-prune-propagate",
    help="Remove a pruned filter's rows of the next layer too (its constant output folded into that "
    "layer's bias), and a filter whose rows are all pruned, in sequential chains (no).",
)
"""``--prune-propagate``: ``prune.propagate``."""
PRUNE_TILES_OPTION = typer.Option(
    None,
    "--prune-round-to-tiles/--no-prune-round-to-tiles",
    help="Round each layer's kept filters and channels down to a crossbar tile boundary when they spill "
    "past one (saves a crossbar row or column; layer scope) (no).",
)
"""``--prune-round-to-tiles``: ``prune.round_to_tiles``."""


@app.command("compress")
def compress_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Float checkpoint (forms train)."),
    out: Path = typer.Option(..., "--out", help="Run directory (checkpoint.pt, metrics.json)."),
    fragment: int | None = typer.Option(None, "--fragment", help="R: rows per single-signed fragment (8)."),
    weight_bits: int | None = typer.Option(None, "--weight-bits", help="Magnitude bits of the weights (8)."),
    prune: float | None = PRUNE_OPTION,
    prune_layer: list[str] | None = PRUNE_LAYER_OPTION,
    prune_first_layer: bool | None = PRUNE_FIRST_LAYER_OPTION,
    prune_last_layer: bool | None = PRUNE_LAST_LAYER_OPTION,
    prune_granularity: str | None = PRUNE_GRANULARITY_OPTION,
    prune_propagate: bool | None = PRUNE_PROPAGATE_OPTION,
    prune_round_to_tiles: bool | None = PRUNE_TILES_OPTION,
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
        help="Training images held out to choose the retraining epoch by validation accuracy (default: "
        "the images the float model held out with forms train --validation-images, else 0). A hold-out "
        "with images the float model trained on is refused.",
    ),
    shift: int | None = typer.Option(
        None, "--shift", help="Random-shift augmentation of the W-step and retraining, max pixels (0)."
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
        "prune.layer_ratios": {**base.prune.layer_ratios, **layer_ratios(prune_layer)}
        if prune_layer
        else None,
        "prune.first_layer": prune_first_layer,
        "prune.last_layer": prune_last_layer,
        "prune.granularity": prune_granularity,
        "prune.propagate": prune_propagate,
        "prune.round_to_tiles": prune_round_to_tiles,
        "prune.scope": prune_scope,
        "polarize.enabled": False if no_polarize else None,
        "schedule.admm_rounds": admm_rounds,
        "schedule.round_epochs": round_epochs,
        "schedule.retrain_epochs": retrain_epochs,
        "schedule.rho": rho,
        "schedule.rho_growth": rho_growth,
        "schedule.lr": lr,
        "schedule.retrain_lr": retrain_lr,
        "schedule.shift": shift,
        "validation_images": validation_images,
        "seed": seed,
        "data_dir": data_dir,
        "device": device,
        "channels_last": channels_last,
    }
    spec = base.with_overrides(overrides)
    resolve_device(spec.device)
    relaunch_for_nproc(nproc)
    m = compress(spec, checkpoint, out, resume=resume, progress=not quiet)
    if distributed.is_main():
        Console().print(_summary(m, out), highlight=False)


def layer_ratios(options: list[str]) -> dict[str, str | dict[str, str]]:
    """``--prune-layer NAME=RATIO`` or ``NAME=UNIT:RATIO,UNIT:RATIO`` options as {name: ratio text} or
    {name: {unit: ratio text}}; the spec validates units and numbers.

    Raises :class:`forms.errors.ConfigError` for an option without '=', without a name, or with a
    unit ratio that is not UNIT:RATIO.
    """
    from forms.errors import ConfigError

    usage = "--prune-layer takes NAME=RATIO or NAME=UNIT:RATIO,UNIT:RATIO (e.g. features.3=0.5, "
    usage += "classifier.1=filter:0.9,channel:0.3)"
    ratios: dict[str, str | dict[str, str]] = {}
    for option in options:
        name, sep, ratio = option.rpartition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{usage}, got '{option}'")
        if ":" not in ratio:
            ratios[name.strip()] = ratio.strip()
            continue
        units = [part.partition(":") for part in ratio.split(",")]
        if any(not sep or not unit.strip() for unit, sep, _ in units):
            raise ConfigError(f"{usage}, got '{option}'")
        ratios[name.strip()] = {unit.strip(): value.strip() for unit, _, value in units}
    return ratios


def _summary(m: CompressResult, out: Path) -> str:
    """One line: accuracies, mixed-sign fragments, sparsity and both crossbar reductions of a compression
    (the final crossbars on the encoding the reductions count)."""
    from forms.compress.counting import final_crossbars

    f = m.crossbars["factors"]
    w = m.reduction.per_weight
    return (
        f"{m.model} R={m.fragment_size} {m.weight_bits}-bit: accuracy "
        f"{m.accuracy_before:.4f} -> {m.accuracy_after:.4f} (ADMM {m.accuracy_admm:.4f}, "
        f"projected {m.accuracy_projected:.4f}{_kept_epoch(m.retrain)}); "
        f"mixed-sign fragments {m.fragments_mixed_sign}/{m.fragments_total}, sparsity "
        f"{m.sparsity:.3f}; crossbars {m.crossbars['dense_32bit']} -> "
        f"{final_crossbars(m.crossbars)} {m.reduction.final_encoding} (x{f['total']:.2f} = pruning "
        f"{f['pruning']:.2f} x "
        f"quantization {f['quantization']:.2f} x polarization {f['polarization']:.2f}); "
        f"per weight x{w.total:.2f} = pruning {w.pruning:.2f} x quantization {w.quantization:.2f} x "
        f"polarization {w.polarization:.2f}, area of {w.area_equivalent:.2f} crossbars; "
        f"results in {out}/metrics.json"
    )


def _kept_epoch(retrain: RetrainSummary) -> str:
    """', retraining epoch e of K kept by validation accuracy' when a validation set chose it (saying
    so when the float model trained on those images)."""
    if not retrain.validation_images:
        return ""
    seen = " on images the float model trained on" if retrain.validation_seen_by_float_model else ""
    kept = f"retraining epoch {retrain.selected_epoch} of {retrain.epochs}"
    return f", {kept} kept by validation accuracy{seen}"


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
