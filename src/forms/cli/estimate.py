"""`forms estimate` and `forms compare`: the architecture cost model (forms.cost) on a zoo or user network."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from forms.cli.app import app
from forms.errors import ConfigError
from forms.io import check_output_folder

if TYPE_CHECKING:
    from collections.abc import Iterable

    from forms.cost.activity import SkipFractions
    from forms.cost.layer_shapes import Workload

_out = Console()

ARCH_HELP = "Preset name (isaac-ce, isaac-opt, prime, forms-4/8/16/32) or an architecture YAML file."
MODEL_HELP = "Zoo model name (see forms.nn.models) or package.module:factory returning an nn.Module."
SHAPE_HELP = "Input C,H,W (default: 1,28,28 for lenet5/mlp, 3,224,224 for *-imagenet/resnet50, else 3,32,32)."


# Options shared by `estimate` and `compare`.
INPUT_SHAPE_OPTION = typer.Option(None, "--input-shape", help=SHAPE_HELP)
NUM_CLASSES_OPTION = typer.Option(None, "--num-classes", help="Classes (default 1000 at 224x224, else 10).")
CHECKPOINT_OPTION = typer.Option(None, "--checkpoint", help="Compressed checkpoint: cost its pruned shapes.")
ACTIVITY_OPTION = typer.Option(
    None,
    "--activity",
    help="Zero-skip activity: a metrics.json of `forms simulate`, or measured[:MODE] for the packaged "
    "measurement of the model (MODE in16-calibrated (default), in16-8bit or in8; networks without one, "
    "e.g. ImageNet shapes, use their nearest measured network's network-wide figures).",
)
SKIP_FRACTION_OPTION = typer.Option(
    None, "--skip-fraction", help="Skipped conversions assumed for layers without measured activity."
)
SKIP_RULE_OPTION = typer.Option(None, "--skip-rule", help="leading or bitplane (default: leading).")
DATASET_OPTION = typer.Option(
    None,
    "--dataset",
    help="The data set the network is meant for (e.g. fashion-mnist; a --checkpoint records its own): a "
    "packaged measurement (--activity measured, the accuracy floor) taken on other data is labelled "
    "borrowed; without it, the model's own measurement is labelled 'data set unknown'.",
)


def workload_from_options(
    model: str | None,
    input_shape: str | None,
    num_classes: int | None,
    checkpoint: Path | None,
    fragment_sizes: Iterable[int] = (),
) -> Workload:
    """The network ``--model``/``--input-shape``/``--num-classes``/``--checkpoint`` name (shared options);
    a checkpoint's polarized rows are counted at ``fragment_sizes`` too (the R of the archs costed)."""
    from forms.cost.layer_shapes import parse_input_shape, zoo_workload

    shape = parse_input_shape(input_shape) if input_shape else None
    return zoo_workload(model, shape, num_classes, str(checkpoint) if checkpoint else None, fragment_sizes)


def skip_figures(
    activity: str | None,
    rule: str | None,
    arch_rule: str,
    model: str,
    default: float | None,
    dataset: str | None = None,
) -> SkipFractions:
    """The skip figures ``--activity``, ``--skip-rule`` and ``--skip-fraction`` ask for (the rule
    defaults to the arch's, else leading), for ``model`` on ``dataset`` (None: not known; see
    :func:`forms.cost.measured_activity.costed_dataset`)."""
    from forms.cost.measured_activity import skip_from_option

    chosen = rule or (arch_rule if arch_rule != "none" else "leading")
    return skip_from_option(activity, model, chosen, default, dataset)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


@app.command()
def estimate(
    arch: str = typer.Option(..., "--arch", help=ARCH_HELP),
    out: Path = typer.Option(..., "--out", help="Folder for estimate.json and estimate.csv."),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    input_shape: str | None = INPUT_SHAPE_OPTION,
    num_classes: int | None = NUM_CLASSES_OPTION,
    checkpoint: Path | None = CHECKPOINT_OPTION,
    activity: str | None = ACTIVITY_OPTION,
    skip_rule: str | None = typer.Option(
        None, "--skip-rule", help="leading or bitplane (default: the arch's)."
    ),
    skip_fraction: float | None = SKIP_FRACTION_OPTION,
    dataset: str | None = DATASET_OPTION,
) -> None:
    """Area, power, energy, FPS, latency and GOPs/(s*mm2), GOPs/W of one network on one architecture."""
    check_output_folder(out, "--out folder")
    from forms.cost.arch import load_arch
    from forms.cost.estimate import estimate as run_estimate
    from forms.cost.files import save_estimate
    from forms.cost.measured_activity import costed_dataset

    spec = load_arch(arch)
    workload = workload_from_options(
        model, input_shape, num_classes, checkpoint, [spec.crossbar.fragment_size]
    )
    costed = costed_dataset(dataset, checkpoint)
    skip = skip_figures(activity, skip_rule, spec.zero_skip.rule, workload.name, skip_fraction, costed)
    est = run_estimate(spec, workload, skip)
    paths = save_estimate(est, out)
    table = Table(title=f"{est.arch} running {est.model} ({'x'.join(map(str, est.input_shape))})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in (
        "chip_area_mm2",
        "chip_power_w",
        "chips",
        "crossbars_needed",
        "crossbars_used",
        "fps",
        "latency_s",
        "energy_per_inference_j",
        "gops_per_s_mm2",
        "gops_per_w",
        "peak_gops_per_s_mm2",
        "peak_gops_per_w",
    ):
        table.add_row(key, _fmt(getattr(est, key)))
    _out.print(table)
    for line in est.assumptions:
        _out.print(f"  - {line}", highlight=False)
    _out.print(f"wrote {paths['json']} and {paths['csv']}")


@app.command()
def compare(
    archs: str = typer.Option(
        ..., "--archs", help="Comma-separated presets or YAML files; ratios are to the first."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for compare.json and compare.csv."),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    input_shape: str | None = INPUT_SHAPE_OPTION,
    num_classes: int | None = NUM_CLASSES_OPTION,
    checkpoint: Path | None = CHECKPOINT_OPTION,
    activity: str | None = ACTIVITY_OPTION,
    skip_rule: str | None = SKIP_RULE_OPTION,
    skip_fraction: float | None = SKIP_FRACTION_OPTION,
    dataset: str | None = DATASET_OPTION,
) -> None:
    """Several architectures side by side on one network, with ratios to the first."""
    check_output_folder(out, "--out folder")
    from forms.cost.arch import load_arch
    from forms.cost.compare import COMPARE_FIELDS
    from forms.cost.compare import compare as run_compare
    from forms.cost.files import save_comparison
    from forms.cost.measured_activity import costed_dataset

    names = [a.strip() for a in archs.split(",") if a.strip()]
    if not names:
        raise ConfigError("--archs needs at least one architecture, e.g. isaac-opt,prime,forms-8")
    specs = [load_arch(n) for n in names]
    sizes = [s.crossbar.fragment_size for s in specs]
    workload = workload_from_options(model, input_shape, num_classes, checkpoint, sizes)
    costed = costed_dataset(dataset, checkpoint)
    cmp = run_compare(
        specs, workload, skip_figures(activity, skip_rule, "leading", workload.name, skip_fraction, costed)
    )
    paths = save_comparison(cmp, out)
    table = Table(title=f"{workload.name}: ratios to {specs[0].name}")
    table.add_column("figure")
    for spec in specs:
        table.add_column(spec.name, justify="right")
    rows = cmp.rows()
    for f in COMPARE_FIELDS:
        table.add_row(f, *[f"{_fmt(r[f])} ({r[f + '_ratio']:.2f}x)" for r in rows])
    _out.print(table)
    for est in cmp.estimates:
        _out.print(f"[bold]{est.arch}[/] assumptions:")
        for line in est.assumptions:
            _out.print(f"  - {line}", highlight=False)
    _out.print(f"wrote {paths['json']} and {paths['csv']}")
