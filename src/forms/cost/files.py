"""Files of the cost model: estimate, compare and optimize .json/.csv, written atomically (forms.io)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from forms.cost.compare import Comparison
from forms.cost.estimate import Estimate
from forms.cost.measured_activity import MeasurementSource
from forms.cost.optimize import Optimum
from forms.io import write_csv_atomic, write_json_atomic

LAYER_CSV_FIELDS: tuple[str, ...] = (
    "name",
    "kind",
    "groups",
    "rows",
    "cols",
    "rows_used",
    "cols_used",
    "positions",
    "row_tiles",
    "col_tiles",
    "crossbars",
    "replication",
    "mvms",
    "conversions",
    "skip_fraction",
    "read_skip_fraction",
    "driver_activity",
    "step_time_ns",
    "bound",
    "layer_time_s",
    "stage_time_s",
    "dense_ops",
    "executed_ops",
    "energy_j",
)
"""Columns of estimate.csv (one row per layer)."""


def save_estimate(est: Estimate, out_dir: str | Path) -> dict[str, Path]:
    """Write ``estimate.json`` (everything) and ``estimate.csv`` (per-layer rows) atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "estimate.json", "csv": out / "estimate.csv"}
    write_json_atomic(est.to_dict(), paths["json"])
    write_csv_atomic(LAYER_CSV_FIELDS, [asdict(c) for c in est.layers], paths["csv"])
    return paths


def save_comparison(cmp: Comparison, out_dir: str | Path) -> dict[str, Path]:
    """Write ``compare.json`` and ``compare.csv`` (one row per architecture, with ratios) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "compare.json", "csv": out / "compare.csv"}
    rows = cmp.rows()
    write_json_atomic(cmp.to_dict(), paths["json"])
    write_csv_atomic(list(rows[0]), rows, paths["csv"])
    return paths


ACCURACY_CSV_FIELDS: tuple[str, ...] = ("accuracy", "accuracy_floor", "float_accuracy", "accuracy_source")
"""Columns of optimize.csv on accuracy: the simulator's accuracy at the optimum, the floor it was held to,
the float model's accuracy and the measurement's source, saying when it is borrowed or the network's data
set is unknown (empty cells: searched without a floor)."""


def accuracy_cells(record: Mapping[str, Any] | None) -> dict[str, Any]:
    """The :data:`ACCURACY_CSV_FIELDS` of an optimum's ``accuracy`` record (``Optimum.to_dict()``)."""
    if record is None:
        return dict.fromkeys(ACCURACY_CSV_FIELDS)
    source = MeasurementSource(record["borrowed"], record["dataset_known"])
    note = source.note(record["network"], record["dataset"])
    whose = f", {note}" if note else ""
    return {
        "accuracy": record["accuracy"],
        "accuracy_floor": record["floor"],
        "float_accuracy": record["float_accuracy"],
        "accuracy_source": f"{record['measured_on']} ({record['images']} images{whose})",
    }


def save_optima(optima: Sequence[Optimum], out_dir: str | Path) -> dict[str, Path]:
    """Write ``optimize.json`` (every optimum in full) and ``optimize.csv`` (one row per architecture)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "optimize.json", "csv": out / "optimize.csv"}
    records = [o.to_dict() for o in optima]
    write_json_atomic({"optima": records}, paths["json"])
    rows = [
        {
            **{k: r[k] for k in ("arch", "model", "objective", "value", "preset_value", "gain_over_preset")},
            "constraint": r["constraint"]["text"],
            **r["choice"],
            "adc_bits": r["adc_bits"],
            **accuracy_cells(r["accuracy"]),
        }
        for r in records
    ]
    fields = list(dict.fromkeys(k for row in rows for k in row))
    write_csv_atomic(fields, rows, paths["csv"])
    return paths
