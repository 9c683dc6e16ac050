"""Estimate: area, power, energy, FPS, latency and efficiency of one network on one architecture.

Form (docs/design.md, "Cost model"): the per-layer costs (:mod:`forms.cost.layer_cost`) are balanced
into a pipeline (:mod:`forms.cost.pipeline`); area and peak power sum the chip inventory
(:mod:`forms.cost.inventory`); energy per inference charges the counted actions and static power
(:mod:`forms.cost.energy`). :class:`Estimate` is estimate.json, and reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from forms.cost.activity import SkipFractions
from forms.cost.arch import ArchSpec
from forms.cost.components import PricedAdc
from forms.cost.energy import EnergyAccount, account_energy
from forms.cost.fragment_use import storage_notes
from forms.cost.inventory import InventoryItem, chip_inventory, sum_by_role
from forms.cost.layer_cost import LayerCost, PricedArch, layer_cost, record_fields
from forms.cost.layer_shapes import Workload
from forms.cost.pipeline import Pipeline, balance_pipeline

OPS_NOTE = (
    "a MAC is 2 ops; gops_per_s_mm2 / gops_per_w count the dense network's ops (dense-equivalent), "
    "*_executed count the ops the mapped (pruned) network performs; peak figures assume every "
    "crossbar busy on dense weights without zero-skipping"
)
"""The ``ops_note`` of estimate.json: which ops each efficiency figure counts."""


@dataclass
class Estimate:
    """Every figure of one (architecture, network) pair; :meth:`to_dict` is estimate.json."""

    arch: str
    model: str
    input_shape: list[int]
    chip_area_mm2: float
    chip_power_w: float
    chips: int
    fps: float
    latency_s: float
    energy_per_inference_j: float
    average_power_w: float
    gops_per_s_mm2: float
    gops_per_w: float
    gops_per_s_mm2_executed: float
    gops_per_w_executed: float
    peak_gops_per_s_mm2: float
    peak_gops_per_w: float
    dense_ops: int
    executed_ops: int
    crossbars_needed: int
    crossbars_used: int
    crossbars_per_chip: int
    adc: dict[str, Any]
    breakdown: dict[str, dict[str, float]]
    layers: list[LayerCost]
    assumptions: list[str]

    def to_dict(self, with_layers: bool = True) -> dict[str, Any]:
        """Plain-dict form (estimate.json); without ``layers`` when ``with_layers`` is False."""
        if with_layers:
            d = asdict(self)
        else:  # the other fields hold only plain values: no deep copy needed
            d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "layers"}
        d["ops_note"] = OPS_NOTE
        return d

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Estimate:
        """Read an estimate.json (the form :meth:`to_dict` writes) back into an Estimate."""
        values = record_fields(cls, record)
        values["layers"] = [LayerCost.from_dict(layer) for layer in values["layers"]]
        return cls(**values)


def peak_ops_per_s(arch: PricedArch) -> float:
    """Dense ops per second of one chip with every crossbar full and busy, no zero-skipping.

    Weights per crossbar follow the mapping's packing (:meth:`forms.encoding.Encoding.tile_counts`): a
    weight's slices sit in adjacent columns and may straddle two crossbars, so a crossbar holds
    cols / slices weights per row (25.6 for 5 slices on 128 columns), not the whole weights that fit.
    """
    spec, xb = arch.spec, arch.spec.crossbar
    weights = xb.rows * xb.cols / spec.slices / spec.sets
    step = max(arch.step_times_s(arch.busiest_conversions(xb.rows, xb.cols), 0.0))
    return spec.organization.crossbars * 2 * weights / (spec.input_steps * step)


def _breakdown(inventory: Sequence[InventoryItem], energy: EnergyAccount) -> dict[str, dict[str, float]]:
    """Area, power, energy and actions by component role."""
    return {
        "area_mm2": sum_by_role(inventory, lambda i: i.area_mm2),
        "power_w": sum_by_role(inventory, lambda i: i.power_mw * 1e-3),
        "energy_j": energy.energy_by_role_j,
        "actions": energy.actions,
    }


def _assumptions(
    spec: ArchSpec, adc: PricedAdc, costs: Sequence[LayerCost], notes: Sequence[str], pipeline: Pipeline
) -> list[str]:
    """Every assumption behind an estimate: the arch's notes, the model's, the workload's."""
    skip_sources = sorted({c.skip_source for c in costs})
    assumptions = [
        *spec.notes,
        f"ADC: {adc.bits}-bit, {spec.adc.per_crossbar:g} per crossbar, {adc.rate_hz / 1e9:g} GS/s, "
        f"{adc.energy_pj:.4g} pJ/conversion, priced by: {adc.rule}",
        f"zero-skip ({spec.zero_skip.rule}): " + "; ".join(skip_sources),
        "ops: a MAC is 2 ops; achieved GOPs use dense-equivalent ops, *_executed the mapped network's ops",
        "chip_power_w is every component at its full Table I rate (peak); energy counts actions, plus "
        "static power for 1/FPS per image, so achieved GOPs/W can exceed peak GOPs/W (peak ops / "
        "chip_power_w, ISAAC's convention) when tile components are busy less than every cycle",
        "latency: layers one after another (no inter-layer overlap for one image) plus "
        f"{spec.digital_cycles_per_layer} digital cycles per layer",
        *notes,
    ]
    if pipeline.chips > 1:
        assumptions.append(
            f"the network needs {pipeline.crossbars_needed} crossbars > {pipeline.crossbars_per_chip} "
            f"per chip: spread over {pipeline.chips} chips"
        )
    return assumptions


def estimate(arch: ArchSpec, workload: Workload, skip: SkipFractions = SkipFractions()) -> Estimate:
    """Cost ``workload`` on ``arch``.

    ``skip.activity`` gives measured per-layer skip fractions (layers it lacks, and all layers when it
    is None, use ``skip.default``, else the arch's ``zero_skip.default_skip_fraction``). Networks larger
    than one chip are spread over the fewest chips that hold one copy of each layer. Each layer is costed
    on the rows ``arch`` keeps (:meth:`~forms.cost.layer_shapes.LayerShape.stored`); the assumptions name
    the layers a polarized ``arch`` stores on two sets because their fragments mix signs.
    """
    priced = PricedArch.of(arch)
    inventory = chip_inventory(arch, priced.adc)
    shapes = workload.shapes
    costs = [layer_cost(priced, layer, skip.for_layer(arch.zero_skip, layer.name)) for layer in shapes.layers]
    pipeline = balance_pipeline(arch, costs)
    energy = account_energy(inventory, costs, shapes.pool_comparisons, pipeline)
    stored = [layer.stored(arch.encoding, arch.crossbar.fragment_size) for layer in shapes.layers]
    names = [layer.name for layer in shapes.layers]
    notes = [*workload.notes, *storage_notes(arch.name, arch.crossbar.fragment_size, names, stored)]
    area = sum(i.area_mm2 for i in inventory)
    power_w = sum(i.power_mw for i in inventory) * 1e-3
    dense_ops = sum(c.dense_ops for c in costs)
    executed_ops = sum(c.executed_ops for c in costs)
    total_area = area * pipeline.chips
    peak = peak_ops_per_s(priced)
    fps, energy_j = pipeline.fps, energy.total_j
    return Estimate(
        arch=arch.name,
        model=workload.name,
        input_shape=list(shapes.input_shape),
        chip_area_mm2=area,
        chip_power_w=power_w,
        chips=pipeline.chips,
        fps=fps,
        latency_s=pipeline.latency_s,
        energy_per_inference_j=energy_j,
        average_power_w=energy_j * fps,
        gops_per_s_mm2=dense_ops * fps / 1e9 / total_area,
        gops_per_w=dense_ops / energy_j / 1e9,
        gops_per_s_mm2_executed=executed_ops * fps / 1e9 / total_area,
        gops_per_w_executed=executed_ops / energy_j / 1e9,
        peak_gops_per_s_mm2=peak / 1e9 / area,
        peak_gops_per_w=peak / 1e9 / power_w,
        dense_ops=dense_ops,
        executed_ops=executed_ops,
        crossbars_needed=pipeline.crossbars_needed,
        crossbars_used=sum(c.crossbars * c.replication for c in costs),
        crossbars_per_chip=pipeline.crossbars_per_chip,
        adc=priced.adc.to_dict(),
        breakdown=_breakdown(inventory, energy),
        layers=costs,
        assumptions=_assumptions(arch, priced.adc, costs, notes, pipeline),
    )
