"""Per-layer cost: crossbars, MVMs, conversions, step time and action counts of one layer on one architecture.

Per layer (docs/design.md, "Cost model"): the crossbars it needs
(:meth:`forms.encoding.Encoding.crossbar_count`), MVMs per image (output positions x row tiles),
conversions per input-bit step after zero-skipping, and the step time max((1 - read skip) x crossbar
read, (1 - conversion skip) x busiest crossbar's conversions / its ADC throughput), averaged over the
input steps of an MVM. Actions count what each component role does per image (crossbar reads and their
registers scaled by the reads that happen, row drives by the driver activity);
data movement (eDRAM accesses, bus transfers, router flits) is the bits moved divided by the width of
the architecture's component of that role (``width_bits`` in the component table).

Each layer is costed on the rows the architecture keeps and the crossbar sets it stores
(:meth:`forms.cost.layer_shapes.LayerShape.stored`): a compressed layer's non-zero rows for offset and
differential designs, its whole fragments for a polarized one (or two single-signed sets when its
fragments mix signs at the architecture's R); conversions follow the architecture's hardware (R rows per
conversion for a polarized design, its unit column for offset).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from forms.cost.activity import LayerSkip
from forms.cost.arch import ArchSpec
from forms.cost.components import PricedAdc
from forms.cost.fragment_use import StoredLayer
from forms.cost.layer_shapes import LayerShape
from forms.errors import ConfigError


def record_fields(cls: type, record: Mapping[str, Any]) -> dict[str, Any]:
    """Dataclass ``cls``'s fields read from ``record`` (a JSON object); ConfigError naming any missing."""
    names = [f.name for f in fields(cls)]
    missing = [n for n in names if n not in record]
    if missing:
        raise ConfigError(f"{cls.__name__} record lacks {', '.join(missing)}")
    return {n: record[n] for n in names}


@dataclass
class LayerCost:
    """Mapping, timing, work and energy of one layer on one architecture."""

    name: str
    kind: str
    groups: int
    rows: int
    cols: int
    rows_used: int
    """Rows of each group the architecture keeps (whole fragments on a polarized design)."""
    cols_used: int
    """Columns of each group holding a non-zero weight."""
    positions: int
    row_tiles: int
    col_tiles: int
    crossbars: int
    replication: int
    mvms: int
    """MVMs per image: output positions x row tiles x groups x crossbar sets."""
    conversions: float
    """ADC conversions per image after zero-skipping."""
    skip_fraction: float
    """Fraction of conversions skipped."""
    read_skip_fraction: float
    """Fraction of crossbar read cycles skipped (every fragment of the crossbar idle)."""
    driver_activity: float
    """Fraction of row-driver activations that happen (non-zero digits, when drivers are saved)."""
    skip_source: str
    step_time_ns: float
    bound: str
    """'read' or 'adc': what limits the layer's input-bit steps."""
    layer_time_s: float
    """Time of one image on one copy of the layer."""
    stage_time_s: float
    """Time of one image on the busiest copy: ceil(positions / replication) positions."""
    dense_ops: int
    executed_ops: int
    actions: dict[str, float] = field(default_factory=dict)
    energy_j: float = 0.0

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> LayerCost:
        """Read one entry of estimate.json's ``layers`` back into a LayerCost."""
        values = record_fields(cls, record)
        values["actions"] = dict(values["actions"])
        return cls(**values)


@dataclass(frozen=True)
class PricedArch:
    """An architecture with what every layer's cost needs priced once: its ADC and data-movement widths."""

    spec: ArchSpec
    adc: PricedAdc
    transfer_widths: Mapping[str, int]
    """Bits per action of each data-moving role (edram, bus, router) the architecture holds."""

    @classmethod
    def of(cls, spec: ArchSpec) -> PricedArch:
        """Price ``spec``'s ADC and read its components' transfer widths."""
        return cls(spec, spec.priced_adc(), spec.transfer_widths())

    def busiest_conversions(self, rows: int, cells: int) -> int:
        """Conversions per step of the busiest crossbar holding ``rows`` rows and ``cells`` cell columns."""
        spec, xb = self.spec, self.spec.crossbar
        group_rows = spec.encoding.rows_per_conversion(xb.rows, xb.fragment_size)
        unit = int(spec.encoding.has_unit_column)
        return math.ceil(min(rows, xb.rows) / group_rows) * (min(cells, xb.cols) + unit)

    def step_times_s(self, busiest: int, skip: float, read_skip: float = 0.0) -> tuple[float, float]:
        """(crossbar read, ADC time) of an average input-bit step: ``busiest`` conversions of which
        ``skip`` are skipped, ``read_skip`` of the read cycles skipped."""
        read_s = (1.0 - read_skip) * self.spec.read_time_ns * 1e-9
        adc_s = (1.0 - skip) * busiest / (self.spec.adc.per_crossbar * self.adc.rate_hz)
        return read_s, adc_s


@dataclass(frozen=True)
class _LayerWork:
    """What one layer does per image on one architecture, before timing: the action counts' inputs."""

    stored: StoredLayer
    """The rows and crossbar sets the architecture stores."""
    steps: int
    """Input-bit steps per image: output positions x input steps."""
    crossbars: int
    row_tiles: int
    col_tiles: int
    conversions: float
    reads: float
    """Crossbar read cycles per image that happen (after read skipping)."""
    driver_activity: float


def _action_counts(arch: PricedArch, layer: LayerShape, work: _LayerWork) -> dict[str, float]:
    """Actions of each component role per image of ``layer``."""
    spec = arch.spec
    rows, cols, groups = work.stored.rows, layer.cols_used, layer.geometry.groups
    sets = work.stored.encoding.crossbar_sets
    in_bits = layer.positions * groups * rows * spec.input_bits
    out_bits = layer.out_activations * spec.input_bits
    moved_bits = {"edram": in_bits + out_bits, "bus": in_bits, "router": out_bits}
    return {
        "crossbar": work.reads,
        "dac": work.steps * groups * sets * work.col_tiles * rows * work.driver_activity,
        "sample_hold": work.conversions,
        "adc_mux": work.conversions,
        "adc": work.conversions,
        "ima_shift_add": work.conversions,
        "input_register": work.reads,
        "output_register": work.reads,
        **{
            role: bits / arch.transfer_widths[role]
            for role, bits in moved_bits.items()
            if role in arch.transfer_widths
        },
        "activation": float(layer.out_activations),
        "tile_shift_add": float(layer.positions * groups * cols * work.row_tiles * sets),
        "tile_output_register": float(layer.out_activations),
    }


def _layer_work(arch: PricedArch, layer: LayerShape, skip: LayerSkip) -> _LayerWork:
    """Steps, crossbars, tiles, conversions and reads of ``layer`` per image after ``skip``."""
    spec, xb = arch.spec, arch.spec.crossbar
    stored = layer.stored(spec.encoding, xb.fragment_size)
    rows, cols, groups = stored.rows, layer.cols_used, layer.geometry.groups
    group_rows = spec.encoding.rows_per_conversion(xb.rows, xb.fragment_size)
    unit = int(spec.encoding.has_unit_column)
    sets, slices = stored.encoding.crossbar_sets, stored.encoding.slices(spec.weight_bits, xb.cell_bits)
    row_tiles, col_tiles = stored.encoding.tile_counts(rows, cols, spec.weight_bits, xb)
    groups_per_col = math.ceil(rows / group_rows)  # conversions per column per step
    conv_per_step = groups * sets * (groups_per_col * cols * slices + unit * row_tiles * col_tiles)
    steps = layer.positions * spec.input_steps
    crossbars = stored.encoding.crossbar_count(rows, cols, groups, spec.weight_bits, xb)
    return _LayerWork(
        stored=stored,
        steps=steps,
        crossbars=crossbars,
        row_tiles=row_tiles,
        col_tiles=col_tiles,
        conversions=conv_per_step * steps * (1.0 - skip.fraction),
        reads=crossbars * steps * (1.0 - skip.read_fraction),
        driver_activity=skip.driver_activity,
    )


def layer_cost(arch: PricedArch, layer: LayerShape, skip: LayerSkip) -> LayerCost:
    """Cost of one image of ``layer`` on ``arch`` after the savings ``skip`` (one copy)."""
    g = layer.geometry
    work = _layer_work(arch, layer, skip)
    busiest = arch.busiest_conversions(work.stored.rows, layer.cols_used * arch.spec.slices)
    read_s, adc_s = arch.step_times_s(busiest, skip.fraction, skip.read_fraction)
    step_s = max(read_s, adc_s)
    return LayerCost(
        name=layer.name,
        kind=g.kind,
        groups=g.groups,
        rows=g.rows,
        cols=g.cols,
        rows_used=work.stored.rows,
        cols_used=layer.cols_used,
        positions=layer.positions,
        row_tiles=work.row_tiles,
        col_tiles=work.col_tiles,
        crossbars=work.crossbars,
        replication=1,
        mvms=layer.positions * work.row_tiles * g.groups * work.stored.encoding.crossbar_sets,
        conversions=work.conversions,
        skip_fraction=skip.fraction,
        read_skip_fraction=skip.read_fraction,
        driver_activity=skip.driver_activity,
        skip_source=skip.source,
        step_time_ns=step_s * 1e9,
        bound="adc" if adc_s > read_s else "read",
        layer_time_s=work.steps * step_s,
        stage_time_s=work.steps * step_s,
        dense_ops=2 * layer.dense_macs,
        executed_ops=2 * layer.mapped_macs,
        actions=_action_counts(arch, layer, work),
    )
