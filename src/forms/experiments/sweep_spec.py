"""Settings of a design-space sweep: the grid, the optional simulation, and one resolved point.

See :mod:`forms.experiments.sweep` for how a sweep runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from forms.config import Spec
from forms.encoding import Encoding


def arch_field_path_error(path: str) -> str | None:
    """Why ``path`` (dotted, e.g. ``adc.per_crossbar``) names no ArchSpec field, or None when it does.

    Every segment must be a field of the spec the previous one names (ArchSpec, then its nested
    specs: adc, crossbar, organization, zero_skip); the last may be any field.
    """
    from forms.cost.arch import ArchSpec

    model: type[BaseModel] = ArchSpec
    parts = path.split(".")
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        where = ".".join(parts[:depth]) or "an architecture"
        if field is None:
            return f"'{part}' is not a field of {where}; its fields: {', '.join(model.model_fields)}"
        inner = field.annotation
        if depth < len(parts) - 1:
            if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
                return f"'{'.'.join(parts[: depth + 1])}' is a value, not a group of fields"
            model = inner
    return None


def set_arch_field(data: dict[str, Any], path: str, value: Any) -> None:
    """Set the dotted ``path`` of an ArchSpec's plain-dict form ``data`` to ``value``."""
    *groups, last = path.split(".")
    for part in groups:
        data = data[part]
    data[last] = value


class GridSpec(Spec):
    """Values to sweep; every combination is one point. An omitted axis keeps each preset's value."""

    arch: list[str] = Field(
        default_factory=lambda: ["forms-8"],
        min_length=1,
        description="Base architectures (preset names or YAML files); the other axes override them.",
    )
    model: list[str] = Field(default_factory=lambda: ["lenet5"], min_length=1, description="Zoo models.")
    encoding: list[Encoding] | None = Field(None, min_length=1, description="Sign encodings to impose.")
    fragment_size: list[int] | None = Field(
        None, min_length=1, description="R for polarized points (offset/differential use the whole column)."
    )
    adc_bits: list[int | None] | None = Field(
        None, min_length=1, description="ADC resolutions (null = lossless for the point)."
    )
    cell_bits: list[int] | None = Field(None, min_length=1, description="Bits per ReRAM cell.")
    crossbar_size: list[int] | None = Field(
        None, min_length=1, description="Square crossbar side (rows = cols)."
    )
    weight_bits: list[int] | None = Field(None, min_length=1, description="Weight magnitude bits.")
    arch_fields: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Any other ArchSpec field by its dotted path (e.g. 'adc.per_crossbar', 'read_time_ns'), "
        "written in the grid beside the axes above (or under this key); an unknown path is refused.",
    )

    @model_validator(mode="before")
    @classmethod
    def _gather_arch_fields(cls, data: Any) -> Any:
        """Move grid keys that are ArchSpec field paths into ``arch_fields``; refuse unknown dotted paths."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        fields = dict(data.pop("arch_fields", None) or {})
        for key in [k for k in data if k not in cls.model_fields]:
            why = arch_field_path_error(str(key))
            if why is None:
                fields[str(key)] = data.pop(key)
            elif "." in str(key):
                raise ValueError(f"grid key '{key}' names no architecture field: {why}")
        for key in fields:
            why = arch_field_path_error(key)
            if why is not None:
                raise ValueError(f"grid key '{key}' names no architecture field: {why}")
        data["arch_fields"] = fields
        return data


class SweepSimSpec(Spec):
    """Simulate a compressed checkpoint at every point (accuracy, ADC clipping, measured zero-skip)."""

    checkpoint: str = Field(description="Compressed checkpoint (from `forms compress`) of the swept model.")
    limit: int | None = Field(1000, ge=1, description="Test images per point (null = the whole test set).")
    variation: float = Field(0.0, ge=0, le=2, description="Log-normal conductance variation sigma.")
    runs: int = Field(1, ge=1, description="Monte Carlo chips per point (with variation).")
    seed: int = Field(0, description="Seed of every random draw.")
    batch_size: int = Field(256, ge=1, description="Images per simulation batch.")


class SweepSpec(Spec):
    """A whole sweep: the grid, the workload, and what each point evaluates."""

    name: str = Field("sweep", description="Title of the sweep's report.")
    grid: GridSpec = Field(description="The axes and their values.")
    input_shape: list[int] | None = Field(
        None, min_length=3, max_length=3, description="Input (C, H, W); null = each model's usual shape."
    )
    allow_clipping: bool = Field(
        False, description="Accept ADCs narrower than lossless (otherwise such points are refused)."
    )
    activity: str | None = Field(
        None,
        description="Zero-skip activity: a simulate metrics.json whose zero-skip counts give the skip "
        "fractions, or measured[:mode] for the packaged measurement of each point's model (modes "
        "in16-calibrated (default), in16-8bit, in8; a model without one uses its nearest measured network).",
    )
    simulate: SweepSimSpec | None = Field(None, description="Also simulate a checkpoint at every point.")
    jobs: int = Field(1, ge=1, le=256, description="Points evaluated in parallel processes.")


@dataclass(frozen=True)
class Point:
    """One resolved design point (every axis has its value)."""

    arch: str
    model: str
    encoding: str
    fragment_size: int
    adc_bits: int
    cell_bits: int
    crossbar_size: int
    weight_bits: int
    arch_fields: tuple[tuple[str, Any], ...] = ()
    """The grid's ArchSpec field paths and their values at this point, in grid order."""

    @property
    def id(self) -> str:
        """A readable, file-name-safe, unique id."""
        base = Path(self.arch).stem if self.arch.endswith((".yaml", ".yml")) else self.arch
        fields = "".join(f"_{path}-{_id_text(value)}" for path, value in self.arch_fields)
        return (
            f"{base}_{self.model}_{self.encoding}_R{self.fragment_size}_adc{self.adc_bits}"
            f"_c{self.cell_bits}_x{self.crossbar_size}_w{self.weight_bits}{fields}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict (JSON) form: the axes, then ``arch_fields`` as a path -> value mapping."""
        return {**asdict(self), "arch_fields": dict(self.arch_fields)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Point:
        """The point :meth:`to_dict` wrote."""
        return cls(**{**data, "arch_fields": tuple(data.get("arch_fields", {}).items())})

    def row(self) -> dict[str, Any]:
        """The point's settings as results.csv columns: its id, the axes, then each field path."""
        axes = {k: v for k, v in asdict(self).items() if k != "arch_fields"}
        return {"id": self.id, **axes, **dict(self.arch_fields)}


def _id_text(value: Any) -> str:
    """``value`` as a file-name-safe id segment."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in text)


RESULT_FIELDS: tuple[str, ...] = (
    "chip_area_mm2",
    "chip_power_w",
    "chips",
    "fps",
    "latency_s",
    "energy_per_inference_j",
    "gops_per_s_mm2",
    "gops_per_w",
    "crossbars_needed",
)
"""estimate.json fields copied into each result row."""


POINT_AXES: tuple[str, ...] = tuple(name for name in Point.__dataclass_fields__ if name != "arch_fields")
"""The settings every point has (the grid's own axes, resolved)."""

CSV_FIELDS: tuple[str, ...] = ("id", *POINT_AXES, *RESULT_FIELDS, "accuracy", "adc_clip_rate")
"""results.csv columns of a sweep without ArchSpec field paths (see :func:`csv_fields`)."""


def csv_fields(spec: SweepSpec) -> tuple[str, ...]:
    """results.csv columns of ``spec``: id, the axes, each grid field path, then the figures."""
    return ("id", *POINT_AXES, *spec.grid.arch_fields, *RESULT_FIELDS, "accuracy", "adc_clip_rate")


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep YAML file (unknown keys are refused with their name)."""
    return SweepSpec.from_yaml(path)
