"""Component library of the cost model: per-unit power, area, rate and energy per action, with sources.

The table itself is data (``forms/presets/components.yaml``); this module validates it and holds the
ONE rule that prices an ADC of any resolution (:func:`adc_cost`). Energy per action is derived from
power and rate, never stored twice: ``(power_mw - static_power_mw) / rate_hz``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from forms.config import Spec, load_yaml_mapping
from forms.errors import ConfigError

Per = Literal["crossbar_row", "crossbar_col", "crossbar_output", "crossbar", "adc", "ima", "tile", "chip"]

TRANSFER_ROLES: frozenset[str] = frozenset({"edram", "bus", "router"})
"""Roles that move data: their action count is the bits moved / the row's ``width_bits``."""


class ComponentSpec(Spec):
    """One component row: per-unit figures, how many units an architecture holds, and where they come from."""

    name: str = Field(description="Unique component name, e.g. 'isaac-edram'.")
    role: str = Field(description="What the component does in the model (crossbar, dac, edram, router, ...).")
    level: Literal["ima", "tile", "chip"] = Field(description="Level of the hierarchy the component sits at.")
    per: Per = Field(
        description="What `count` is counted per (a crossbar row, a crossbar, an ADC, a tile...); "
        "crossbar_output: a crossbar output the ADCs convert (rows / R per column for fragments of R rows)."
    )
    count: float = Field(gt=0, description="Units per `per` (0.25 per tile: one router shared by 4 tiles).")
    power_mw: float = Field(ge=0, description="Power of one unit at its full action rate, mW.")
    area_mm2: float = Field(ge=0, description="Area of one unit, mm^2.")
    static_power_mw: float = Field(
        0.0, ge=0, description="Part of power_mw drawn whether or not it acts, mW."
    )
    action: str = Field(description="The action whose count the model charges energy for.")
    rate_hz: float = Field(gt=0, description="Actions per second of one unit at power_mw.")
    width_bits: int | None = Field(
        None,
        ge=1,
        description="Bits one action moves, as published (eDRAM access, bus transfer, router flit); "
        "required for the data-moving roles (edram, bus, router), null for every other role.",
    )
    size: str = Field("", description="Resolution, capacity or geometry, as published.")
    source: str = Field(description="Citation of the publication the figures come from.")
    published: str = Field("", description="The published figure for the group, quoted.")
    arithmetic: str = Field(description="How the per-unit figures and the energy per action follow from it.")

    @model_validator(mode="after")
    def _consistent(self) -> ComponentSpec:
        if self.static_power_mw > self.power_mw:
            raise ValueError(f"static_power_mw {self.static_power_mw} exceeds power_mw {self.power_mw}")
        moves_data = self.role in TRANSFER_ROLES
        if moves_data and self.width_bits is None:
            raise ValueError(f"a '{self.role}' component needs width_bits (the bits one action moves)")
        if not moves_data and self.width_bits is not None:
            raise ValueError(
                f"width_bits applies only to the roles {sorted(TRANSFER_ROLES)}, not to '{self.role}'"
            )
        return self

    @property
    def energy_pj(self) -> float:
        """Dynamic energy per action, pJ: (power - static) / rate."""
        return (self.power_mw - self.static_power_mw) * 1e-3 / self.rate_hz * 1e12


class AdcAnchor(Spec):
    """A published ADC that the scaling rule starts from."""

    name: str = Field(description="Anchor name an architecture refers to.")
    bits: int = Field(ge=1, le=16, description="Resolution of the published ADC.")
    energy_pj: float = Field(gt=0, description="Energy per conversion, pJ.")
    area_mm2: float = Field(gt=0, description="Area of one ADC, mm^2.")
    rate_hz: float = Field(gt=0, description="Conversions per second of one ADC.")
    source: str = Field(description="Citation.")
    published: str = Field("", description="The published figure, quoted.")
    arithmetic: str = Field(description="How the per-ADC numbers follow from the published figure.")


class AdcScalePoint(Spec):
    """One row of the ADC scaling table."""

    energy_pj: float = Field(gt=0, description="Energy per conversion at this resolution, pJ.")
    area_um2: float = Field(gt=0, description="Area at this resolution, um^2.")


class AdcScaling(Spec):
    """Relative ADC cost per resolution; only ratios between rows are used."""

    source: str = Field(description="Citation of the scaling table.")
    note: str = Field("", description="How the table is applied.")
    table: dict[int, AdcScalePoint] = Field(description="Resolution (bits) -> cost; at least two rows.")

    @model_validator(mode="after")
    def _two_rows(self) -> AdcScaling:
        if len(self.table) < 2:
            raise ValueError("the ADC scaling table needs at least two resolutions")
        return self


class ComponentLibrary(Spec):
    """The whole component table: components, ADC anchors and the ADC scaling rule."""

    components: list[ComponentSpec] = Field(description="Component rows.")
    adcs: list[AdcAnchor] = Field(description="Published ADCs an architecture can price its ADC from.")
    adc_scaling: AdcScaling = Field(description="The single ADC resolution scaling rule.")

    @model_validator(mode="after")
    def _unique_names(self) -> ComponentLibrary:
        names = [c.name for c in self.components] + [a.name for a in self.adcs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate component names: {', '.join(dupes)}")
        return self

    def component(self, name: str) -> ComponentSpec:
        """The component row called ``name``; ConfigError listing the known names otherwise."""
        for comp in self.components:
            if comp.name == name:
                return comp
        known = ", ".join(c.name for c in self.components)
        raise ConfigError(f"unknown component '{name}'; the library has: {known}")

    def adc_anchor(self, name: str) -> AdcAnchor:
        """The ADC anchor called ``name``; ConfigError listing the known anchors otherwise."""
        for adc in self.adcs:
            if adc.name == name:
                return adc
        raise ConfigError(f"unknown ADC '{name}'; choose one of {', '.join(a.name for a in self.adcs)}")


@lru_cache(maxsize=1)
def _default_library_path() -> Path:
    """The packaged ``presets/components.yaml`` (resolved once: every ArchSpec validation asks for it)."""
    return Path(str(resources.files("forms") / "presets" / "components.yaml"))


@lru_cache(maxsize=8)
def _load_cached(path: str) -> ComponentLibrary:
    return ComponentLibrary.from_dict(load_yaml_mapping(path), source=path)


def load_library(path: str | Path | None = None) -> ComponentLibrary:
    """Load and validate a component table (default: the packaged ``presets/components.yaml``)."""
    return _load_cached(str(path) if path is not None else str(_default_library_path()))


def _scale_value(table: dict[int, AdcScalePoint], bits: int, key: str) -> float:
    """Table value at ``bits``; outside the table, extend the ratio of the two nearest rows geometrically."""
    if bits in table:
        return float(getattr(table[bits], key))
    keys = sorted(table)
    lo, hi = (keys[0], keys[1]) if bits < keys[0] else (keys[-2], keys[-1])
    v_lo, v_hi = float(getattr(table[lo], key)), float(getattr(table[hi], key))
    per_bit = (v_hi / v_lo) ** (1.0 / (hi - lo))
    ref = lo if bits < keys[0] else hi
    return float(getattr(table[ref], key)) * per_bit ** (bits - ref)


@dataclass(frozen=True)
class PricedAdc:
    """An ADC priced at the resolution an architecture needs, and the rule that priced it."""

    anchor: str
    bits: int
    energy_pj: float
    area_mm2: float
    rate_hz: float
    rule: str

    @property
    def power_mw(self) -> float:
        """Power at full rate, mW: energy per conversion x conversions per second."""
        return self.energy_pj * 1e-12 * self.rate_hz * 1e3

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, with power."""
        return {**asdict(self), "power_mw": self.power_mw}


def adc_cost(
    bits: int, anchor: str, rate_hz: float | None = None, library: ComponentLibrary | None = None
) -> PricedAdc:
    """Price a ``bits``-bit ADC from a published anchor: THE ADC scaling rule of the cost model.

    energy(bits) = anchor energy x table_energy(bits) / table_energy(anchor bits), and the same for
    area, with the CiMLoop/Saberi table of ``components.yaml`` (extended geometrically outside it).
    At the anchor's own resolution the anchor is returned unchanged. ``rate_hz`` defaults to the
    anchor's rate (an assumption: a SAR ADC of a different width may not keep it).
    """
    if bits < 1:
        raise ConfigError(f"ADC resolution must be at least 1 bit, got {bits}")
    lib = library or load_library()
    base = lib.adc_anchor(anchor)
    table = lib.adc_scaling.table
    e_ratio = _scale_value(table, bits, "energy_pj") / _scale_value(table, base.bits, "energy_pj")
    a_ratio = _scale_value(table, bits, "area_um2") / _scale_value(table, base.bits, "area_um2")
    if bits == base.bits:
        rule = f"published {anchor} ({base.source})"
    else:
        rule = (
            f"{anchor} ({base.bits}-bit, {base.source}) scaled to {bits} bits by the adc_scaling "
            f"table ratios (energy x{e_ratio:.3f}, area x{a_ratio:.3f})"
        )
    return PricedAdc(
        anchor=anchor,
        bits=bits,
        energy_pj=base.energy_pj * e_ratio,
        area_mm2=base.area_mm2 * a_ratio,
        rate_hz=rate_hz if rate_hz is not None else base.rate_hz,
        rule=rule,
    )
