"""Performance model: area, power, energy, FPS, latency and efficiency of a network on an architecture.

Form (docs/design.md, "Cost model"): per layer, the crossbars it needs
(:meth:`forms.encoding.Encoding.crossbar_count`), MVMs per image (output positions x row tiles),
conversions per input-bit step after zero-skipping, and the step time max(crossbar read, busiest crossbar's
conversions / its ADC throughput). Layers are pipelined across tiles and replicated (as ISAAC does) to
balance stages within the chip's crossbars; FPS = 1 / slowest stage. Area and peak power sum the
component table; energy per inference sums per-action energies over counted actions, plus static
power for the time an image occupies the chip (1 / FPS).

Entry points: :func:`estimate` and :func:`compare`.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from forms.cost.arch import ArchSpec, load_arch
from forms.cost.components import PricedAdc, load_library
from forms.cost.layer_shapes import LayerShape, ModelShapes, layer_shapes
from forms.errors import ConfigError
from forms.io import write_csv_atomic, write_json_atomic

# --------------------------------------------------------------------------- chip inventory


@dataclass(frozen=True)
class InventoryItem:
    """Units of one component on one chip, with their per-unit figures."""

    name: str
    role: str
    level: str
    units: float
    unit_power_mw: float
    unit_area_mm2: float
    unit_static_mw: float
    energy_pj: float
    """Dynamic energy per action."""
    source: str

    @property
    def power_mw(self) -> float:
        """Power of all units, mW."""
        return self.units * self.unit_power_mw

    @property
    def area_mm2(self) -> float:
        """Area of all units, mm^2."""
        return self.units * self.unit_area_mm2

    @property
    def static_mw(self) -> float:
        """Static power of all units, mW."""
        return self.units * self.unit_static_mw


def chip_inventory(arch: ArchSpec, adc: PricedAdc | None = None) -> list[InventoryItem]:
    """Every component of one chip of ``arch``: ISAAC-style rows from the table, its ADCs, zero-skip logic."""
    lib = load_library()
    org = arch.organization
    xbars = org.crossbars
    adcs = xbars * arch.adc.per_crossbar
    imas = org.tiles * org.imas_per_tile
    per_units = {
        "crossbar_row": xbars * arch.crossbar.rows,
        "crossbar_col": xbars * arch.crossbar.cols,
        "crossbar": xbars,
        "adc": adcs,
        "ima": imas,
        "tile": org.tiles,
        "chip": 1,
    }
    items = []
    for name in arch.components:
        c = lib.component(name)
        if c.role == "hypertransport" and not org.hypertransport:
            continue
        items.append(
            InventoryItem(
                c.name,
                c.role,
                c.level,
                c.count * per_units[c.per],
                c.power_mw,
                c.area_mm2,
                c.static_power_mw,
                c.energy_pj,
                c.source,
            )
        )
    adc = adc or arch.priced_adc()
    items.append(
        InventoryItem(
            f"adc-{adc.bits}b", "adc", "ima", adcs, adc.power_mw, adc.area_mm2, 0.0, adc.energy_pj, adc.rule
        )
    )
    zs = arch.zero_skip
    if zs.rule != "none" and (zs.logic_power_mw_per_crossbar > 0 or zs.logic_area_mm2_per_crossbar > 0):
        items.append(
            InventoryItem(
                "zero-skip-logic",
                "zero_skip_logic",
                "ima",
                xbars,
                zs.logic_power_mw_per_crossbar,
                zs.logic_area_mm2_per_crossbar,
                zs.logic_power_mw_per_crossbar,
                0.0,
                f"arch {arch.name} zero_skip parameters (assumption)",
            )
        )
    return items


# --------------------------------------------------------------------------- activity


@dataclass(frozen=True)
class Activity:
    """Measured zero-skip activity: fraction of conversions skipped per layer, and where it came from."""

    skip_fraction: Mapping[str, float]
    rule: str
    source: str


def activity_from_metrics(metrics: Mapping[str, Any], rule: str, source: str = "metrics") -> Activity:
    """Skip fractions per layer from a ``forms simulate`` metrics dict (``metrics["zero_skip"]``)."""
    if rule not in ("leading", "bitplane"):
        raise ConfigError(f"zero-skip rule must be 'leading' or 'bitplane', got '{rule}'")
    zs = metrics.get("zero_skip")
    if not isinstance(zs, Mapping) or not zs:
        raise ConfigError(f"{source} has no 'zero_skip' statistics; produce it with `forms simulate`")
    fractions = {}
    for layer, stats in zs.items():
        try:
            total = float(stats["conversions_total"])
            skipped = float(stats[f"conversions_skipped_{rule}"])
        except (KeyError, TypeError):
            raise ConfigError(
                f"{source}: zero_skip['{layer}'] lacks conversions_total or conversions_skipped_{rule}"
            ) from None
        if total < 0 or skipped < 0 or skipped > total:
            raise ConfigError(f"{source}: zero_skip['{layer}'] skips {skipped} of {total} conversions")
        fractions[layer] = skipped / total if total else 0.0
    return Activity(fractions, rule, source)


def load_activity(path: str | Path, rule: str) -> Activity:
    """Read a simulate ``metrics.json`` into an :class:`Activity` for ``rule``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"activity file {p} does not exist; give the metrics.json written by `forms simulate`"
        )
    try:
        metrics = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"activity file {p} is not valid JSON: {exc}") from None
    return activity_from_metrics(metrics, rule, str(p))


# --------------------------------------------------------------------------- per-layer model


@dataclass
class LayerCost:
    """Mapping, timing, work and energy of one layer on one architecture."""

    name: str
    kind: str
    groups: int
    rows: int
    cols: int
    rows_used: int
    cols_used: int
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
    skip_source: str
    step_time_ns: float
    bound: str
    """'read' or 'adc': what limits one input-bit step."""
    layer_time_s: float
    """Time of one image on one copy of the layer."""
    stage_time_s: float
    """layer_time_s / replication."""
    dense_ops: int
    executed_ops: int
    actions: dict[str, float] = field(default_factory=dict)
    energy_j: float = 0.0


def _layer_cost(
    arch: ArchSpec, layer: LayerShape, skip: float, skip_source: str, adc: PricedAdc
) -> LayerCost:
    xb = arch.crossbar
    g = layer.geometry
    rows, cols, groups = layer.rows_used, layer.cols_used, g.groups
    slices, sets = arch.slices, arch.sets
    unit = int(arch.encoding.has_unit_column)
    group_rows = arch.encoding.rows_per_conversion(xb.rows, xb.fragment_size)
    crossbars = arch.encoding.crossbar_count(rows, cols, groups, arch.weight_bits, xb)
    row_tiles, col_tiles = arch.encoding.tile_counts(rows, cols, arch.weight_bits, xb)
    groups_per_col = math.ceil(rows / group_rows)  # conversions per column per step
    conv_per_step = groups * sets * (groups_per_col * cols * slices + unit * row_tiles * col_tiles)
    busiest = math.ceil(min(rows, xb.rows) / group_rows) * (min(cols * slices, xb.cols) + unit)
    read_s = arch.read_time_ns * 1e-9
    adc_s = (1.0 - skip) * busiest / (arch.adc.per_crossbar * adc.rate_hz)
    step_s = max(read_s, adc_s)
    steps = layer.positions * arch.input_steps
    reads = crossbars * steps
    conversions = conv_per_step * steps * (1.0 - skip)
    in_bits = layer.positions * groups * rows * arch.input_bits
    out_bits = layer.out_activations * arch.input_bits
    actions = {
        "crossbar": float(reads),
        "dac": float(steps * groups * sets * col_tiles * rows),
        "sample_hold": conversions,
        "adc": conversions,
        "ima_shift_add": conversions,
        "input_register": float(reads),
        "output_register": float(reads),
        "edram": (in_bits + out_bits) / 256.0,
        "bus": in_bits / 384.0,
        "router": out_bits / 32.0,
        "activation": float(layer.out_activations),
        "tile_shift_add": float(layer.positions * groups * cols * row_tiles * sets),
        "tile_output_register": float(layer.out_activations),
    }
    return LayerCost(
        name=layer.name,
        kind=g.kind,
        groups=groups,
        rows=g.rows,
        cols=g.cols,
        rows_used=rows,
        cols_used=cols,
        positions=layer.positions,
        row_tiles=row_tiles,
        col_tiles=col_tiles,
        crossbars=crossbars,
        replication=1,
        mvms=layer.positions * row_tiles * groups * sets,
        conversions=conversions,
        skip_fraction=skip,
        skip_source=skip_source,
        step_time_ns=step_s * 1e9,
        bound="adc" if adc_s > read_s else "read",
        layer_time_s=steps * step_s,
        stage_time_s=steps * step_s,
        dense_ops=2 * layer.dense_macs,
        executed_ops=2 * layer.mapped_macs,
        actions=actions,
    )


def balance_replication(
    times: Sequence[float], crossbars: Sequence[int], positions: Sequence[int], capacity: int
) -> list[int]:
    """Integer copies r_l >= 1 per layer minimizing max_l times_l / r_l with sum r_l crossbars_l <= capacity.

    A layer is never copied more often than it has output positions (copies split positions). The
    min-max optimum is found by bisection on the stage time; ``capacity`` must hold one copy of each.
    """
    t = np.asarray(times, dtype=float)
    c = np.asarray(crossbars, dtype=float)
    p = np.asarray(positions, dtype=float)
    if c.sum() > capacity:
        raise ValueError(f"{int(c.sum())} crossbars do not fit in {capacity}")
    if len(t) == 0:
        return []

    def copies(stage: float) -> np.ndarray:
        return np.minimum(np.ceil(t / stage - 1e-9), p).clip(min=1)

    lo, hi = float((t / p).max()), float(t.max())
    if (copies(lo) * c).sum() <= capacity:
        return [int(r) for r in copies(lo)]
    for _ in range(100):
        mid = math.sqrt(lo * hi) if lo > 0 else (lo + hi) / 2
        if (copies(mid) * c).sum() <= capacity:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-12 * hi:
            break
    return [int(r) for r in copies(hi)]


# --------------------------------------------------------------------------- estimate


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

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (estimate.json)."""
        d = asdict(self)
        d["ops_note"] = (
            "a MAC is 2 ops; gops_per_s_mm2 / gops_per_w count the dense network's ops (dense-equivalent), "
            "*_executed count the ops the mapped (pruned) network performs; peak figures assume every "
            "crossbar busy on dense weights without zero-skipping"
        )
        return d


def _skip_for(arch: ArchSpec, name: str, activity: Activity | None, default: float) -> tuple[float, str]:
    if arch.zero_skip.rule == "none":
        return 0.0, "no zero-skip logic"
    if activity is not None and name in activity.skip_fraction:
        return activity.skip_fraction[name], f"measured ({activity.rule}, {activity.source})"
    return default, f"assumed default {default:.3f}"


def peak_ops_per_s(arch: ArchSpec, adc: PricedAdc) -> float:
    """Dense ops per second of one chip with every crossbar full and busy, no zero-skipping."""
    xb = arch.crossbar
    weights = xb.rows * (xb.cols // arch.slices) / arch.sets
    group_rows = arch.encoding.rows_per_conversion(xb.rows, xb.fragment_size)
    busiest = (xb.rows // group_rows) * (xb.cols + int(arch.encoding.has_unit_column))
    step = max(arch.read_time_ns * 1e-9, busiest / (arch.adc.per_crossbar * adc.rate_hz))
    return arch.organization.crossbars * 2 * weights / (arch.input_steps * step)


def workload_shapes(
    workload: nn.Module | ModelShapes, input_shape: Sequence[int] | None, model_name: str = ""
) -> tuple[ModelShapes, str]:
    """Layer shapes of ``workload`` (a model needs ``input_shape`` (C, H, W)) and the name to report."""
    if not isinstance(workload, nn.Module):
        return workload, model_name
    if input_shape is None:
        raise ConfigError("a model workload needs input_shape (C,H,W)")
    return layer_shapes(workload, input_shape), model_name or type(workload).__name__


def estimate(
    arch: ArchSpec | str,
    workload: nn.Module | ModelShapes,
    input_shape: Sequence[int] | None = None,
    activity: Activity | None = None,
    default_skip_fraction: float | None = None,
    model_name: str = "",
    extra_assumptions: Sequence[str] = (),
) -> Estimate:
    """Cost ``workload`` (a model + ``input_shape``, or precomputed :class:`ModelShapes`) on ``arch``.

    ``activity`` gives measured per-layer skip fractions (layers it lacks, and all layers when it is
    None, use ``default_skip_fraction``, else the arch's ``zero_skip.default_skip_fraction``).
    Networks larger than one chip are spread over the fewest chips that hold one copy of each layer.
    """
    spec = load_arch(arch) if isinstance(arch, str) else arch
    shapes, model_name = workload_shapes(workload, input_shape, model_name)
    default = spec.zero_skip.default_skip_fraction if default_skip_fraction is None else default_skip_fraction
    if not 0.0 <= default < 1.0:
        raise ConfigError(f"default skip fraction must be in [0, 1), got {default}")
    adc = spec.priced_adc()
    inventory = chip_inventory(spec, adc)
    costs = [
        _layer_cost(spec, layer, *_skip_for(spec, layer.name, activity, default), adc)
        for layer in shapes.layers
    ]

    per_chip = spec.organization.crossbars
    needed = sum(c.crossbars for c in costs)
    chips = max(1, math.ceil(needed / per_chip))
    reps = balance_replication(
        [c.layer_time_s for c in costs],
        [c.crossbars for c in costs],
        [c.positions for c in costs],
        chips * per_chip,
    )
    for c, r in zip(costs, reps, strict=True):
        c.replication = r
        c.stage_time_s = c.layer_time_s / r
    slowest = max(c.stage_time_s for c in costs)
    fps = 1.0 / slowest
    digital_s = spec.digital_cycles_per_layer * spec.read_time_ns * 1e-9
    latency = sum(c.stage_time_s + digital_s for c in costs)

    area = sum(i.area_mm2 for i in inventory)
    power_w = sum(i.power_mw for i in inventory) * 1e-3
    # energy by role: per-action energies of the inventory (one row per role, except several sharing one)
    e_per_action: dict[str, float] = defaultdict(float)
    for item in inventory:
        e_per_action[item.role] += item.energy_pj * 1e-12
    actions = dict.fromkeys(e_per_action, 0.0)
    for c in costs:
        for role, n in c.actions.items():
            c.energy_j += n * e_per_action.get(role, 0.0)
            if role in actions:
                actions[role] += n
    actions["max_pool"] = float(shapes.pool_comparisons) if "max_pool" in e_per_action else 0.0
    energy_by_role = {role: actions.get(role, 0.0) * e for role, e in e_per_action.items()}
    for item in inventory:
        if item.static_mw > 0:
            energy_by_role[item.role] += item.static_mw * 1e-3 * chips / fps
    energy = sum(energy_by_role.values())

    dense_ops = sum(c.dense_ops for c in costs)
    executed_ops = sum(c.executed_ops for c in costs)
    total_area = area * chips
    peak = peak_ops_per_s(spec, adc)

    def by_role(values: Mapping[str, float]) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for k, v in values.items():
            out[k] += v
        return dict(out)

    breakdown = {
        "area_mm2": by_role({i.role: i.area_mm2 for i in inventory}),
        "power_w": by_role({i.role: i.power_mw * 1e-3 for i in inventory}),
        "energy_j": energy_by_role,
        "actions": actions,
    }
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
        *extra_assumptions,
    ]
    if chips > 1:
        assumptions.append(
            f"the network needs {needed} crossbars > {per_chip} per chip: spread over {chips} chips"
        )
    return Estimate(
        arch=spec.name,
        model=model_name,
        input_shape=list(shapes.input_shape),
        chip_area_mm2=area,
        chip_power_w=power_w,
        chips=chips,
        fps=fps,
        latency_s=latency,
        energy_per_inference_j=energy,
        average_power_w=energy * fps,
        gops_per_s_mm2=dense_ops * fps / 1e9 / total_area,
        gops_per_w=dense_ops / energy / 1e9,
        gops_per_s_mm2_executed=executed_ops * fps / 1e9 / total_area,
        gops_per_w_executed=executed_ops / energy / 1e9,
        peak_gops_per_s_mm2=peak / 1e9 / area,
        peak_gops_per_w=peak / 1e9 / power_w,
        dense_ops=dense_ops,
        executed_ops=executed_ops,
        crossbars_needed=needed,
        crossbars_used=sum(c.crossbars * c.replication for c in costs),
        crossbars_per_chip=per_chip,
        adc=adc.to_dict(),
        breakdown=breakdown,
        layers=costs,
        assumptions=assumptions,
    )


# --------------------------------------------------------------------------- compare

COMPARE_FIELDS: tuple[str, ...] = (
    "fps",
    "latency_s",
    "energy_per_inference_j",
    "chip_area_mm2",
    "chip_power_w",
    "chips",
    "crossbars_needed",
    "gops_per_s_mm2",
    "gops_per_w",
    "peak_gops_per_s_mm2",
    "peak_gops_per_w",
)
"""Figures set side by side by :func:`compare`."""


@dataclass
class Comparison:
    """Several estimates of one network, with each figure's ratio to the first architecture."""

    model: str
    estimates: list[Estimate]

    def rows(self) -> list[dict[str, Any]]:
        """One row per architecture: every compared figure and its ratio to the first."""
        base = self.estimates[0]
        rows = []
        for est in self.estimates:
            row: dict[str, Any] = {"arch": est.arch}
            for f in COMPARE_FIELDS:
                v, b = getattr(est, f), getattr(base, f)
                row[f] = v
                row[f"{f}_ratio"] = v / b if b else float("nan")
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (compare.json): the side-by-side rows and every full estimate."""
        return {
            "model": self.model,
            "baseline": self.estimates[0].arch,
            "rows": self.rows(),
            "estimates": [e.to_dict() for e in self.estimates],
        }


def compare(
    archs: Sequence[ArchSpec | str],
    workload: nn.Module | ModelShapes,
    input_shape: Sequence[int] | None = None,
    activity: Activity | None = None,
    default_skip_fraction: float | None = None,
    model_name: str = "",
    extra_assumptions: Sequence[str] = (),
) -> Comparison:
    """Estimate one network on several architectures (layer shapes computed once); ratios to the first."""
    if not archs:
        raise ConfigError("compare needs at least one architecture")
    shapes, model_name = workload_shapes(workload, input_shape, model_name)
    ests = [
        estimate(a, shapes, None, activity, default_skip_fraction, model_name, extra_assumptions)
        for a in archs
    ]
    return Comparison(model_name, ests)


# --------------------------------------------------------------------------- files

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
