"""Settings of a design-space sweep: the grid, the optional simulation, and one resolved point.

See :mod:`forms.experiments.sweep` for how a sweep runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from forms.config import Spec
from forms.encoding import Encoding


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
        None, description="A simulate metrics.json whose zero-skip counts give the skip fractions."
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

    @property
    def id(self) -> str:
        """A readable, file-name-safe, unique id."""
        base = Path(self.arch).stem if self.arch.endswith((".yaml", ".yml")) else self.arch
        return (
            f"{base}_{self.model}_{self.encoding}_R{self.fragment_size}_adc{self.adc_bits}"
            f"_c{self.cell_bits}_x{self.crossbar_size}_w{self.weight_bits}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return asdict(self)


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


CSV_FIELDS: tuple[str, ...] = ("id", *Point.__dataclass_fields__, *RESULT_FIELDS, "accuracy", "adc_clip_rate")


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep YAML file (unknown keys are refused with their name)."""
    return SweepSpec.from_yaml(path)
