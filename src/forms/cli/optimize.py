"""`forms optimize`: each architecture at its own optimum (forms.cost.optimize) on one network."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from forms.cli.app import app
from forms.cli.estimate import (
    ACTIVITY_OPTION,
    CHECKPOINT_OPTION,
    DATASET_OPTION,
    INPUT_SHAPE_OPTION,
    MODEL_HELP,
    NUM_CLASSES_OPTION,
    SKIP_FRACTION_OPTION,
    SKIP_RULE_OPTION,
    skip_figures,
    workload_from_options,
)
from forms.errors import ConfigError
from forms.io import check_output_folder

if TYPE_CHECKING:
    from forms.cost.optimize import Optimum

_out = Console()


@app.command("optimize")
def optimize(
    out: Path = typer.Option(..., "--out", help="Folder for optimize.json and optimize.csv."),
    archs: str = typer.Option(
        "isaac-opt,prime,forms-8", "--archs", help="Comma-separated presets or YAML files to optimize."
    ),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    objective: str = typer.Option(
        "gops_per_s_mm2", "--objective", help="What to maximize: gops_per_s_mm2, gops_per_w or fps."
    ),
    constraint: str = typer.Option(
        "area", "--constraint", help="Bound one chip's area or (peak) power: area, power or none."
    ),
    limit: str = typer.Option(
        "isaac-ce", "--limit", help="The bound: a preset whose chip sets it (default isaac-ce) or a number."
    ),
    adc_anchor: str | None = typer.Option(
        None, "--adc-anchor", help="Price every ADC from this one anchor (e.g. isaac-adc-8b)."
    ),
    allow_clipping: bool = typer.Option(
        False, "--allow-clipping", help="Also try each preset's own clipping ADC width (else lossless only)."
    ),
    hold: list[str] = typer.Option(
        [],
        "--hold",
        help="Fix a free parameter at one value, PATH=VALUE (repeatable), e.g. crossbar.fragment_size=8 to "
        "search FORMS at the fragment size whose accuracy was measured; ignored by designs without it.",
    ),
    max_accuracy_drop: float | None = typer.Option(
        None,
        "--max-accuracy-drop",
        help="Accuracy floor: refuse points measured more than this many percentage points below the float "
        "model (src/forms/presets/accuracy); unmeasured points are refused too.",
    ),
    accuracy_from: str | None = typer.Option(
        None,
        "--accuracy-from",
        help="Judge the floor by this measured network's accuracy (e.g. lenet5-mnist), labelled borrowed.",
    ),
    dataset: str | None = DATASET_OPTION,
    input_shape: str | None = INPUT_SHAPE_OPTION,
    num_classes: int | None = NUM_CLASSES_OPTION,
    checkpoint: Path | None = CHECKPOINT_OPTION,
    activity: str | None = ACTIVITY_OPTION,
    skip_rule: str | None = SKIP_RULE_OPTION,
    skip_fraction: float | None = SKIP_FRACTION_OPTION,
) -> None:
    """Choose each architecture's free parameters (ADCs per crossbar, ADC width and flipping, fragment
    size, crossbars per IMA) to maximize an objective under a chip area or power bound and, with
    --max-accuracy-drop, the simulator's measured accuracy floor."""
    check_output_folder(out, "--out folder")
    from forms.cost.arch import load_arch
    from forms.cost.files import save_optima
    from forms.cost.measured_accuracy import floor_from_options
    from forms.cost.measured_activity import costed_dataset
    from forms.cost.optimize import Constraint, held_grid
    from forms.cost.optimize import optimize as run_optimize

    names = [a.strip() for a in archs.split(",") if a.strip()]
    if not names:
        raise ConfigError("--archs needs at least one architecture, e.g. isaac-opt,prime,forms-8")
    specs = [load_arch(n) for n in names]
    bound = Constraint.against(constraint, limit, adc_anchor)
    sizes = [s.crossbar.fragment_size for s in specs]
    workload = workload_from_options(model, input_shape, num_classes, checkpoint, sizes)
    costed = costed_dataset(dataset, checkpoint)
    skip = skip_figures(activity, skip_rule, "leading", workload.name, skip_fraction, costed)
    held = parse_held(hold)
    floor = floor_from_options(workload.name, max_accuracy_drop, accuracy_from, costed)
    optima = [
        run_optimize(
            spec,
            workload,
            objective,
            bound,
            skip,
            grid=held_grid(spec, held, allow_clipping),
            adc_anchor=adc_anchor,
            allow_clipping=allow_clipping,
            accuracy_floor=floor,
        )
        for spec in specs
    ]
    paths = save_optima(optima, out)
    title = f"{workload.name}: max {objective} with {bound.describe()}"
    _out.print(_optima_table(optima, title if floor is None else f"{title}, {floor.describe()}"))
    _out.print(f"wrote {paths['json']} and {paths['csv']}")


def _optima_table(optima: list[Optimum], title: str) -> Table:
    """The optima as a table: preset and optimum objective, gain, choice and (with a floor) accuracy."""
    floored = any(o.accuracy_floor is not None for o in optima)
    table = Table(title=title)
    columns = ("arch", "preset", "optimum", "gain", "choice", *(("accuracy",) if floored else ()))
    for column in columns:
        table.add_column(column, justify="left" if column in ("arch", "choice") else "right")
    for o in optima:
        shown = {k.rsplit(".", 1)[-1]: "lossless" if v is None else v for k, v in o.choice.items()}
        choice = ", ".join(f"{k}={v}" for k, v in shown.items()) + f" ({o.adc_bits}-bit ADC)"
        gain = o.value / o.preset_value if o.preset_value else float("nan")
        preset = f"{o.preset_value:.4g}" + ("" if o.preset_feasible else " (infeasible)")
        row = [o.arch, preset, f"{o.value:.4g}", f"{gain:.2f}x", choice]
        if o.accuracy is not None and o.accuracy_floor is not None:
            label = o.accuracy_floor.source.label
            source = o.accuracy_floor.measured.name + (f", {label}" if label else "")
            row.append(
                f"{o.accuracy.accuracy:.4f} ({source}; {o.below_floor} below, {o.unmeasured} unmeasured)"
            )
        table.add_row(*row)
    return table


def parse_held(items: list[str]) -> dict[str, object]:
    """``--hold PATH=VALUE`` options as a dict; each VALUE read as a YAML scalar (8, 2.0, true, null)."""
    import yaml

    held: dict[str, object] = {}
    for item in items:
        path, sep, value = item.partition("=")
        if not sep or not path.strip() or not value.strip():
            raise ConfigError(f"--hold takes PATH=VALUE, e.g. crossbar.fragment_size=8; got '{item}'")
        held[path.strip()] = yaml.safe_load(value)
    return held
