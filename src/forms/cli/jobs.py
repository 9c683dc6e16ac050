"""`forms demo`, `forms reproduce`, `forms sweep`: the end-to-end jobs (logic in forms.experiments)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from forms.cli.app import app

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
    from forms.experiments.sweep import load_sweep_spec, run_sweep

    result = run_sweep(load_sweep_spec(config), out, jobs=jobs, progress=not quiet)
    out_console.print(
        f"{result.points} points ({result.computed} computed, {result.reused} reused) -> "
        f"{out / 'results.csv'}, {result.report.html}"
    )
