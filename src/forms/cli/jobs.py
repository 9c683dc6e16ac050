"""`forms demo`, `forms reproduce`, `forms sweep`: the end-to-end jobs (logic in forms.experiments)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer
from rich.console import Console

from forms.cli.app import app
from forms.io import check_output_folder

out_console = Console()


@app.command("sweep")
def sweep_cmd(
    config: Path = typer.Option(..., "--config", help="Sweep YAML (grid, workload, optional simulation)."),
    out: Path = typer.Option(
        Path("runs/sweep"), "--out", help="Output folder (points/, results.csv, report)."
    ),
    jobs: int | None = typer.Option(
        None, "--jobs", min=1, help="Parallel worker processes (default: the file's)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Run a design-space sweep; finished points are kept, so a rerun resumes an interrupted sweep."""
    check_output_folder(out, "--out folder")
    from forms.experiments.sweep import run_sweep
    from forms.experiments.sweep_spec import load_sweep_spec

    result = run_sweep(load_sweep_spec(config), out, jobs=jobs, progress=not quiet)
    out_console.print(
        f"{result.points} points ({result.computed} computed, {result.reused} reused) -> "
        f"{out / 'results.csv'}, {result.report.html}"
    )


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Output folder (one subfolder per stage)."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Data root (default $FORMS_DATA)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """LeNet-5 on MNIST: train, compress (ADMM), simulate, estimate, report. Resumes where it stopped."""
    check_output_folder(out, "--out folder")
    from forms.experiments.demo import DemoSpec, run_demo

    result = run_demo(out, DemoSpec.from_dict({"data_dir": data_dir}), progress=not quiet)
    out_console.print(f"demo finished in {result.seconds:.0f} s; report: {result.report.html}")


@app.command("reproduce")
def reproduce_cmd(
    out: Path = typer.Option(Path("runs/reproduce"), "--out", help="Output folder."),
    quick: bool = typer.Option(
        False, "--quick", help="Shrink epochs, images and runs to finish in minutes (CI)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML ReproduceSpec (e.g. configs/reproduce-cpu.yaml); not with --quick."
    ),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Data root (default $FORMS_DATA)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """The paper-style experiments (a)-(d), each a table and a plot in one report."""
    check_output_folder(out, "--out folder")
    from forms.errors import ConfigError
    from forms.experiments.reproduce import run_reproduce
    from forms.experiments.reproduce_spec import ReproduceSpec

    if quick and config is not None:
        raise ConfigError("--quick and --config exclude each other; drop one")
    if quick:
        spec = ReproduceSpec.quick()
    else:
        spec = ReproduceSpec.from_yaml(config) if config else ReproduceSpec.from_dict({})
    if data_dir is not None:
        spec = spec.replace(data_dir=data_dir)
    result = run_reproduce(out, spec, progress=not quiet, command=shlex.join(["forms", *sys.argv[1:]]))
    out_console.print(f"reproduce finished in {result.seconds:.0f} s; report: {result.report.html}")
