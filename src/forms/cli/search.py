"""`forms search`: choose per-layer pruning ratios for an accuracy floor or a crossbar budget."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from forms.cli.app import app
from forms.config import load_yaml_mapping
from forms.io import check_output_folder

if TYPE_CHECKING:
    from forms.compress.search import SearchResult


@app.command("search")
def search_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Float checkpoint (forms train)."),
    out: Path = typer.Option(..., "--out", help="Search folder (search.json, scan, one run per trial)."),
    config: Path | None = typer.Option(
        None, "--config", help="YAML SearchSpec (compress: a CompressSpec; goal; scan ratios)."
    ),
    floor: float | None = typer.Option(
        None,
        "--floor",
        help="Lowest validation accuracy accepted (fraction, e.g. 0.99); replaces the config's floor.",
    ),
    max_drop: float | None = typer.Option(
        None,
        "--max-drop",
        help="Or: points of validation accuracy the float model may lose; replaces the config's floor.",
    ),
    budget: int | None = typer.Option(None, "--budget", help="Most polarized crossbars accepted."),
    max_trials: int | None = typer.Option(None, "--max-trials", help="Most compression runs (8)."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue a search in --out (no finished step reruns)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Search per-layer pruning ratios: sensitivity scan, then ADMM compressions bisecting the candidates."""
    check_output_folder(out, "--out folder")
    values: dict[str, Any] = load_yaml_mapping(config) if config is not None else {}
    from forms.compress.search import search
    from forms.compress.search_spec import SearchSpec

    given = {"accuracy_floor": floor, "max_drop_points": max_drop, "crossbar_budget": budget}
    given = {k: v for k, v in {**given, "max_trials": max_trials}.items() if v is not None}
    if floor is not None or max_drop is not None:  # one floor replaces the config's other one
        values = {k: v for k, v in values.items() if k not in ("accuracy_floor", "max_drop_points")}
    values = {**values, **given}
    spec = SearchSpec.from_dict(values, source=str(config) if config else "command-line options")
    console = Console(stderr=True, highlight=False)
    result = search(spec, checkpoint, out, resume=resume, progress=not quiet, log=console.print)
    Console().print(summary(result, out), highlight=False)


def summary(result: SearchResult, out: Path) -> str:
    """What the search chose (or that nothing met the goal), with the files to read."""
    best = result.best
    if best is None:
        return (
            f"no trial met the goal ({len(result.trials)} trials); every trial is listed in {out}/search.json"
        )
    ratios = result.candidates[best.candidate].ratios
    chosen = " ".join(f"{name}={r:g}" for name, r in ratios.items()) or "no pruning"
    return (
        f"chosen: {chosen}; validation {best.validation_accuracy:.4f}, test {best.test_accuracy:.4f}; "
        f"{best.crossbars} crossbars (x{best.physical_total:.2f}), x{best.per_weight_total:.1f} per weight; "
        f"model in {best.folder}/checkpoint.pt, search in {out}/search.json"
    )
