"""Chip inventory: every component of one chip of an architecture, with its per-unit figures.

Rows come from the component table (:mod:`forms.cost.components`), counted per crossbar row, crossbar,
ADC, IMA, tile or chip of the architecture's organization; the architecture's own ADCs (priced by
:func:`forms.cost.components.adc_cost`) and its zero-skip logic are added. Area and peak power of a
chip are the inventory's sums; energy per action is charged by role (:mod:`forms.cost.energy`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from forms.cost.arch import ArchSpec
from forms.cost.components import PricedAdc, load_library


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


def _table_items(arch: ArchSpec, adcs: float) -> list[InventoryItem]:
    """The component-table rows ``arch`` holds, each counted over one chip."""
    lib = load_library()
    org = arch.organization
    xbars = org.crossbars
    per_units = {
        "crossbar_row": xbars * arch.crossbar.rows,
        "crossbar_col": xbars * arch.crossbar.cols,
        "crossbar_output": xbars * arch.crossbar.cols * arch.outputs_per_column,
        "crossbar": xbars,
        "adc": adcs,
        "ima": org.tiles * org.imas_per_tile,
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
    return items


def chip_inventory(arch: ArchSpec, adc: PricedAdc | None = None) -> list[InventoryItem]:
    """Every component of one chip of ``arch``: ISAAC-style rows from the table, its ADCs, zero-skip logic."""
    xbars = arch.organization.crossbars
    adcs = xbars * arch.adc.per_crossbar
    items = _table_items(arch, adcs)
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


def sum_by_role(
    inventory: Sequence[InventoryItem], quantity: Callable[[InventoryItem], float]
) -> dict[str, float]:
    """``quantity`` of every item summed per role, roles in inventory order."""
    out: dict[str, float] = defaultdict(float)
    for item in inventory:
        out[item.role] += quantity(item)
    return dict(out)
