"""Architecture specs (ISAAC, PRIME, FORMS and users' own) and preset loading.

An :class:`ArchSpec` is a YAML file users can write: the sign encoding, precisions, crossbar
geometry, ADC (priced from a published anchor by :func:`forms.cost.components.adc_cost`), chip
organization, zero-skip logic, the components it uses from the component table, and a ``notes``
list of every assumption not in the paper. Presets live in ``forms/presets/arch/*.yaml``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from forms.config import CrossbarSpec, Spec, load_yaml_mapping
from forms.cost.components import TRANSFER_ROLES, PricedAdc, adc_cost, load_library
from forms.encoding import MAX_WEIGHT_BITS, Encoding
from forms.errors import ConfigError

ISAAC = "ISAAC (Shafiee et al., ISCA 2016)"
"""Citation of the paper the published spec defaults below come from."""

DEFAULT_COMPONENTS: tuple[str, ...] = (
    "isaac-crossbar",
    "isaac-dac-1b",
    "isaac-sample-hold",
    "adc-input-mux",
    "isaac-ima-shift-add",
    "isaac-input-register",
    "isaac-output-register",
    "isaac-edram",
    "isaac-edram-bus",
    "isaac-router",
    "isaac-sigmoid",
    "isaac-tile-shift-add",
    "isaac-max-pool",
    "isaac-tile-output-register",
    "isaac-hypertransport",
)
"""ISAAC's Table I components (all but the ADC, which each architecture prices itself), and the ADC input
multiplexers Table I does not list (an assumed component row)."""


class AdcSpec(Spec):
    """The ADCs of each crossbar: which published ADC prices them, their resolution, count and rate."""

    anchor: str = Field(description="ADC anchor in the component table that the scaling rule starts from.")
    bits: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Resolution; null = lossless: ceil(log2(R(2^w-1)(2^v-1)+1)), one less with flip.",
    )
    flip: bool = Field(False, description="ISAAC's column flipping (saves one bit of resolution).")
    allow_clipping: bool = Field(
        False, description="Accept a resolution below the lossless one (the simulator measures the clipping)."
    )
    per_crossbar: float = Field(
        1.0,
        gt=0,
        description=f"ADCs serving one crossbar. Default 1: {ISAAC} Table I, 8 ADCs per IMA of 8 crossbars. "
        "FORMS: unknown, an assumption (each preset's notes say which), a parameter that "
        "benchmarks/bench_perf.py sweeps from 1 to 16.",
    )
    rate_hz: float | None = Field(
        None, gt=0, description="Conversions per second of one ADC; null = the anchor's published rate."
    )


class OrganizationSpec(Spec):
    """How crossbars group into IMAs (compute units), tiles and a chip."""

    tiles: int = Field(
        168, ge=1, description=f"Tiles per chip. Default 168: {ISAAC} Table I, 14 x 12 = 168 tiles."
    )
    imas_per_tile: int = Field(
        12, ge=1, description=f"IMAs (compute units) per tile. Default 12: {ISAAC} Table I."
    )
    crossbars_per_ima: int = Field(
        8, ge=1, description=f"Crossbars per IMA. Default 8: {ISAAC} Table I, 8 arrays of 128x128."
    )
    hypertransport: bool = Field(True, description="Include ISAAC's off-chip HyperTransport links.")

    @property
    def crossbars(self) -> int:
        """Crossbars per chip."""
        return self.tiles * self.imas_per_tile * self.crossbars_per_ima


Saving = Literal["conversions", "reads", "drivers"]
"""What a zero-skip can save: ADC conversions, crossbar read cycles, row-driver (DAC) activations."""

SAVINGS: tuple[Saving, ...] = ("conversions", "reads", "drivers")
"""Every saving, in the order the cost model applies them."""


class ZeroSkipSpec(Spec):
    """Input zero-skipping (FORMS): which rule, what its logic costs, what to assume without measurements."""

    rule: Literal["none", "leading", "bitplane"] = Field(
        "none",
        description="Skip rule: none, leading (trailing all-zero bits) or bitplane (any all-zero bit).",
    )
    logic_power_mw_per_crossbar: float = Field(
        0.0,
        ge=0,
        description="Static power of the skip logic per crossbar, mW. Unknown, FORMS publishes no figure: "
        "an assumption (each preset's notes say which); default 0 = no logic.",
    )
    logic_area_mm2_per_crossbar: float = Field(
        0.0,
        ge=0,
        description="Area of the skip logic per crossbar, mm^2. Unknown, FORMS publishes no figure: "
        "an assumption (each preset's notes say which); default 0 = no logic.",
    )
    saves: list[Saving] = Field(
        default_factory=lambda: list[Saving](["conversions"]),
        description="What a skip saves in this design's hardware: 'conversions' (an idle fragment is not "
        "converted), 'reads' (a crossbar whose every fragment is idle at an input step is not read: no "
        "read cycle, no crossbar, input- or output-register energy), 'drivers' (a zero input digit "
        "leaves its row driver idle: DAC energy scales with the non-zero digits). Default "
        "['conversions']: FORMS' published mechanism; each preset's notes say which it takes and why.",
    )
    default_skip_fraction: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Fraction of conversions skipped when no measured activity is given. Unknown without "
        "a simulation: an assumption, a parameter that benchmarks/bench_perf.py sweeps from 0 to 0.8; "
        "default 0 = nothing skipped.",
    )
    default_read_skip_fraction: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Fraction of crossbar read cycles skipped (every fragment of the crossbar idle) when no "
        "measured activity is given; used only when 'reads' is saved, and a skipped read skips all its "
        "conversions. Unknown without a simulation: an assumption; default 0 = every read happens.",
    )


@lru_cache(maxsize=64)
def _check_components(names: tuple[str, ...]) -> None:
    """ValueError unless every name is a row of the component table and each data-moving role's rows
    agree on width_bits (cached: a sweep validates thousands of specs with the same components)."""
    lib = load_library()
    known = {c.name for c in lib.components}
    unknown = [c for c in names if c not in known]
    if unknown:
        raise ValueError(f"components {unknown} are not in the component table; known: {sorted(known)}")
    rows = [lib.component(name) for name in names]
    for role in sorted(TRANSFER_ROLES):
        widths = sorted({row.width_bits for row in rows if row.role == role and row.width_bits})
        if len(widths) > 1:
            raise ValueError(f"the '{role}' components disagree on width_bits: {widths}")


class ArchSpec(Spec):
    """One accelerator architecture, as a user-writable, validated YAML preset."""

    name: str = Field(description="Short name, e.g. 'forms-8'.")
    description: str = Field("", description="One line on what this architecture is.")
    encoding: Encoding = Field(
        description="Sign encoding: polarized (FORMS), offset (ISAAC), differential (PRIME)."
    )
    weight_bits: int = Field(
        ge=1, le=MAX_WEIGHT_BITS, description="Weight magnitude bits (the sign is separate)."
    )
    input_bits: int = Field(
        16,
        ge=1,
        le=32,
        description=f"Input bits, applied one DAC step at a time. Default 16: {ISAAC} Secs. 3-4, "
        "16-bit fixed-point inputs.",
    )
    dac_bits: int = Field(
        1,
        ge=1,
        le=8,
        description=f"Bits per DAC step (input bits per crossbar read). Default 1: {ISAAC} Table I, "
        "1-bit DACs.",
    )
    crossbar: CrossbarSpec = Field(
        description="Crossbar geometry; fragment_size = rows for offset/differential."
    )
    read_time_ns: float = Field(
        100.0,
        gt=0,
        description=f"One crossbar read (one input-bit step), ns. Default 100: {ISAAC} Secs. 3-4, "
        "a 100 ns crossbar read.",
    )
    adc: AdcSpec = Field(description="ADCs per crossbar and how they are priced.")
    organization: OrganizationSpec = Field(
        default_factory=lambda: OrganizationSpec.model_validate({}),
        description="IMAs, tiles and crossbars per chip.",
    )
    zero_skip: ZeroSkipSpec = Field(
        default_factory=lambda: ZeroSkipSpec.model_validate({}), description="Input zero-skipping."
    )
    digital_cycles_per_layer: int = Field(
        6,
        ge=0,
        description=f"Extra read-time cycles per layer in the single-image latency. Default 6: {ISAAC}'s "
        "pipeline of 22 cycles per layer for a 16-bit input, 16 of them crossbar reads (22 - 16 = 6).",
    )
    tile_clock_hz: float = Field(
        1.2e9, gt=0, description=f"Digital tile clock, Hz. Default 1.2 GHz: {ISAAC} Table I."
    )
    components: list[str] = Field(
        default_factory=lambda: list(DEFAULT_COMPONENTS),
        description="Component-table rows this architecture holds, besides its ADCs.",
    )
    notes: list[str] = Field(default_factory=list, description="Every assumption that is not in the paper.")

    @model_validator(mode="after")
    def _consistent(self) -> ArchSpec:
        xb = self.crossbar
        self.encoding.check_widths(self.weight_bits, xb.cell_bits)
        if not self.encoding.signs_per_fragment and xb.fragment_size != xb.rows:
            raise ValueError(
                f"crossbar.fragment_size must equal crossbar.rows ({xb.rows}) for the {self.encoding} "
                f"encoding (a whole column converts at once); got {xb.fragment_size}"
            )
        if self.input_bits % self.dac_bits != 0:
            raise ValueError(
                f"input_bits ({self.input_bits}) must be a multiple of dac_bits ({self.dac_bits})"
            )
        lossless = self.lossless_adc_bits
        if self.adc.bits is not None and self.adc.bits < lossless and not self.adc.allow_clipping:
            raise ValueError(
                f"adc.bits = {self.adc.bits} is below the lossless {lossless} bits for fragments of "
                f"{xb.fragment_size} rows of {xb.cell_bits}-bit cells (flip={self.adc.flip}); raise it, "
                "set it to null, or set adc.allow_clipping: true"
            )
        load_library().adc_anchor(self.adc.anchor)
        _check_components(tuple(self.components))
        return self

    def transfer_widths(self) -> dict[str, int]:
        """Bits one action moves, per data-moving role (edram, bus, router) among this arch's components."""
        lib = load_library()
        rows = [lib.component(name) for name in self.components]
        return {row.role: row.width_bits for row in rows if row.width_bits is not None}

    @property
    def lossless_adc_bits(self) -> int:
        """Resolution that converts any fragment sum exactly."""
        return self.encoding.lossless_adc_bits(self.crossbar, self.dac_bits, self.adc.flip)

    @property
    def adc_bits(self) -> int:
        """The ADC resolution in use (lossless when ``adc.bits`` is null)."""
        return self.adc.bits if self.adc.bits is not None else self.lossless_adc_bits

    def priced_adc(self) -> PricedAdc:
        """The ADC priced at :attr:`adc_bits` by the single scaling rule."""
        return adc_cost(self.adc_bits, self.adc.anchor, self.adc.rate_hz)

    @property
    def outputs_per_column(self) -> int:
        """Outputs one crossbar column holds for its ADCs: rows / R for fragments of R rows, else 1."""
        xb = self.crossbar
        return math.ceil(xb.rows / self.encoding.rows_per_conversion(xb.rows, xb.fragment_size))

    @property
    def slices(self) -> int:
        """Cells (adjacent columns) per weight on one crossbar set."""
        return self.encoding.slices(self.weight_bits, self.crossbar.cell_bits)

    @property
    def sets(self) -> int:
        """Crossbar sets per layer (2 for differential)."""
        return self.encoding.crossbar_sets

    @property
    def input_steps(self) -> int:
        """Crossbar reads per MVM: input_bits / dac_bits."""
        return self.input_bits // self.dac_bits


def preset_dir() -> Path:
    """Folder of the packaged architecture presets."""
    return Path(str(resources.files("forms") / "presets" / "arch"))


def list_presets() -> list[str]:
    """Names of the packaged architecture presets."""
    return sorted(p.stem for p in preset_dir().glob("*.yaml"))


def load_arch(name_or_path: str | Path) -> ArchSpec:
    """Load a packaged preset by name (``forms-8``) or a user's YAML file; ConfigError when invalid."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return ArchSpec.from_dict(load_yaml_mapping(path), source=str(path))
    preset = preset_dir() / f"{text}.yaml"
    if not preset.is_file():
        raise ConfigError(
            f"unknown architecture '{text}'; give a YAML file or one of the presets: "
            f"{', '.join(list_presets())}"
        )
    return ArchSpec.from_dict(load_yaml_mapping(preset), source=str(preset))
