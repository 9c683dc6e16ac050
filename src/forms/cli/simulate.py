"""`forms simulate`: evaluate a compressed checkpoint on bit-accurately simulated crossbars."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from forms.cli.app import app
from forms.config import load_yaml_mapping
from forms.io import check_output_folder

if TYPE_CHECKING:
    from forms.sim.spec import SimSpec


@app.command("simulate")
def simulate_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Compressed checkpoint (forms compress)."),
    out: Path = typer.Option(..., "--out", help="Output directory (metrics.json, runs.json)."),
    encoding: str | None = typer.Option(None, "--encoding", help="polarized, offset or differential."),
    adc_bits: int | None = typer.Option(None, "--adc-bits", help="ADC bits (default: lossless width)."),
    adc_step: float | None = typer.Option(None, "--adc-step", help="Partial-sum units per ADC code."),
    flipped: bool | None = typer.Option(
        None, "--flipped/--no-flipped", help="Flipped columns (ISAAC's trick, any encoding)."
    ),
    cell_bits: int | None = typer.Option(None, "--cell-bits", help="Bits per cell (default 2)."),
    rows: int | None = typer.Option(None, "--rows", help="Crossbar rows (default 128)."),
    cols: int | None = typer.Option(None, "--cols", help="Crossbar columns (default 128)."),
    fragment_size: int | None = typer.Option(None, "--fragment-size", help="R (default: checkpoint's)."),
    input_bits: int | None = typer.Option(None, "--input-bits", help="Activation bits (default 16)."),
    input_significant_bits: int | None = typer.Option(
        None,
        "--input-significant-bits",
        help="Quantize activations to this many bits, held in the low bits of --input-bits "
        "(default: all of them).",
    ),
    dac_bits: int | None = typer.Option(None, "--dac-bits", help="Bits per analog step (default 1)."),
    variation: float | None = typer.Option(None, "--variation", help="Log-normal conductance sigma."),
    read_noise: float | None = typer.Option(None, "--read-noise", help="Relative per-read noise sigma."),
    stuck_at_0: float | None = typer.Option(None, "--stuck-at-0", help="Fraction of cells stuck low."),
    stuck_at_1: float | None = typer.Option(None, "--stuck-at-1", help="Fraction of cells stuck high."),
    on_off_ratio: float | None = typer.Option(None, "--on-off-ratio", help="G_on / G_off (default ideal)."),
    runs: int | None = typer.Option(None, "--runs", help="Monte Carlo chips (default 1)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of every random draw."),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N test images."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Images per batch (default 256)."),
    bit_level: bool = typer.Option(False, "--bit-level", help="Force the per-bit path (slow, same result)."),
    config: Path | None = typer.Option(None, "--config", help="YAML SimSpec; options override it."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Data root (default $FORMS_DATA)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    resume: bool = typer.Option(False, "--resume", help="Skip chips already recorded in <out>/runs.json."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Simulate a compressed network on crossbars and write <out>/metrics.json."""
    check_output_folder(out, "--out folder")
    from forms.nn.device import resolve_device
    from forms.sim.simulate import simulate

    fields = {
        "encoding": encoding,
        "adc_bits": adc_bits,
        "adc_step": adc_step,
        "flipped": flipped,
        "cell_bits": cell_bits,
        "rows": rows,
        "cols": cols,
        "fragment_size": fragment_size,
        "input_bits": input_bits,
        "input_significant_bits": input_significant_bits,
        "dac_bits": dac_bits,
        "runs": runs,
        "seed": seed,
        "limit": limit,
        "batch_size": batch_size,
    }
    devices = {
        "variation": variation,
        "read_noise": read_noise,
        "stuck_at_0": stuck_at_0,
        "stuck_at_1": stuck_at_1,
        "on_off_ratio": on_off_ratio,
    }
    spec = _sim_spec(config, fields, devices, bit_level)
    resolve_device(device)
    metrics = simulate(
        spec, checkpoint, out, resume=resume, data_dir=data_dir, device=device, progress=not quiet
    ).to_dict()
    console = Console()
    console.print(_result_line(metrics), highlight=False)
    console.print(f"wrote {out / 'metrics.json'}", highlight=False)


def _sim_spec(
    config: Path | None, fields: Mapping[str, Any], devices: Mapping[str, Any], bit_level: bool
) -> SimSpec:
    """The SimSpec of ``config`` (if any) with every option given on the command line (not None) on top.

    ``fields`` are top-level SimSpec fields, ``devices`` the fields of its ``devices`` block.
    """
    from forms.sim.spec import SimSpec

    values: dict[str, Any] = load_yaml_mapping(config) if config is not None else {}
    values.update({k: v for k, v in fields.items() if v is not None})
    if bit_level:
        values["bit_level"] = True
    merged = dict(values.get("devices") or {})
    merged.update({k: v for k, v in devices.items() if v is not None})
    if merged:
        values["devices"] = merged
    return SimSpec.from_dict(values, source=str(config) if config else "command line")


def _result_line(metrics: Mapping[str, Any]) -> str:
    """One line of a simulation's accuracy, agreement and ADC clip rate (and chip spread if several)."""
    line = (
        f"accuracy {metrics['accuracy']:.4f} (reference {metrics['reference_accuracy']:.4f}, "
        f"agreement {metrics['prediction_agreement']:.4f}), ADC clip rate "
        f"{metrics['adc_clip_rate']['overall']:.3g}"
    )
    if metrics["runs"]["count"] > 1:
        line += (
            f"; over {metrics['runs']['count']} chips "
            f"{metrics['accuracy_mean']:.4f} ± {metrics['accuracy_std']:.4f}"
        )
    return line
