"""Typed specification of one simulation: crossbar, converters, inputs, devices, Monte Carlo.

Every field is validated on load (see :class:`forms.config.Spec`); combinations that cannot work
(an ADC narrower than 1 bit, more significant input bits than the input width, cells wider than the
weights they hold) are refused here, before any run starts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from forms.config import CrossbarSpec, Spec, check_fragment_size
from forms.encoding import Encoding
from forms.sim.adc import check_adc_bits


class DeviceSpec(Spec):
    """ReRAM cell non-idealities; every one is off by default and every random draw is seeded.

    Conductances are expressed in units of one cell level, (G_on - G_off) / (2^cell_bits - 1), so an
    ideal cell storing level c conducts c + g_min with g_min = (2^cell_bits - 1) / (on_off_ratio - 1).
    """

    variation: float = Field(
        0.0,
        ge=0.0,
        le=2.0,
        description="Sigma of the log-normal programming variation: G = G_target * exp(N(0, sigma)), drawn "
        "once per programmed chip (FORMS' study uses 0.1).",
    )
    read_noise: float = Field(
        0.0,
        ge=0.0,
        le=2.0,
        description="Relative sigma of the per-read conductance fluctuation of each cell (drawn anew at "
        "every analog step); a column's sum then has sigma read_noise * sqrt(sum_i d_i^2 G_i^2).",
    )
    stuck_at_0: float = Field(
        0.0, ge=0.0, le=1.0, description="Fraction of cells stuck at the lowest conductance (level 0)."
    )
    stuck_at_1: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of cells stuck at the highest conductance (level 2^cell_bits - 1).",
    )
    on_off_ratio: float | None = Field(
        None,
        gt=1.0,
        description="G_on / G_off; None means an ideal off state (G_off = 0). The off current is removed "
        "by the usual reference column (G_off on every row), so it only matters combined with variation "
        "or noise.",
    )

    @model_validator(mode="after")
    def _rates(self) -> DeviceSpec:
        if self.stuck_at_0 + self.stuck_at_1 > 1.0:
            raise ValueError(
                f"stuck_at_0 + stuck_at_1 = {self.stuck_at_0 + self.stuck_at_1} exceeds 1 (they are "
                "fractions of the same cells)"
            )
        return self

    @property
    def ideal(self) -> bool:
        """True when no non-ideality is switched on (the on/off ratio alone is corrected exactly)."""
        return self.variation == 0 and self.read_noise == 0 and self.stuck_at_0 == 0 and self.stuck_at_1 == 0


class SimSpec(Spec):
    """Everything that defines one bit-accurate run of a compressed network on crossbars."""

    encoding: Encoding = Field(
        Encoding.POLARIZED,
        description="Sign encoding: polarized (FORMS, one sign per fragment), offset (ISAAC, w + 2^bits "
        "with a unit column), differential (PRIME, positive and negative crossbars).",
    )
    rows: int = Field(128, ge=1, le=4096, description="Word lines (inputs) per crossbar.")
    cols: int = Field(128, ge=1, le=4096, description="Bit lines (outputs) per crossbar.")
    cell_bits: int = Field(2, ge=1, le=8, description="Bits stored per ReRAM cell.")
    fragment_size: int | None = Field(
        None,
        ge=1,
        description="R, rows per fragment (sign group and zero-skip sub-array); None uses each layer's R "
        "from the checkpoint. Must divide rows.",
    )
    input_bits: int = Field(
        16, ge=1, le=24, description="Activation bits streamed bit-serially (16 in ISAAC and FORMS)."
    )
    input_significant_bits: int | None = Field(
        None,
        ge=1,
        le=24,
        description="Bits the activations are quantized to, held in the low bits of the input_bits-wide "
        "datapath (the upper bits zero, or the two's-complement sign extension of a signed layer), as when "
        "an 8-bit-accurate network runs on a 16-bit datapath; None = input_bits.",
    )
    dac_bits: int = Field(1, ge=1, le=8, description="Input bits applied per analog step (1 = bit-serial).")
    adc_bits: int | None = Field(
        None,
        description="ADC resolution; None is the lossless width for the fragment size, encoding, cell and "
        "DAC bits. Narrower ADCs clip partial sums to [0, 2^adc_bits - 1] (times adc_step).",
    )
    adc_step: float | None = Field(
        None,
        gt=0.0,
        allow_inf_nan=False,
        description="Partial-sum units per ADC code (quantization step); None is 1 (one code per level).",
    )
    flipped: bool = Field(
        False,
        description="ISAAC's flipped columns (any encoding): a converted column whose cells sum above half "
        "the range stores 2^cell_bits - 1 - c and is corrected digitally, saving one ADC bit.",
    )
    bit_level: bool = Field(
        False,
        description="Force the per-(bit, slice, fragment) path even when the fast exact path applies.",
    )
    input_percentile: float = Field(
        100.0,
        gt=0.0,
        le=100.0,
        description="Percentile of |activation| (per layer, over the calibration images) mapped to the "
        "largest input code; larger activations clip. 100 = the maximum.",
    )
    calibration_images: int = Field(
        256, ge=1, description="Images used to calibrate each layer's activation scale."
    )
    calibration_split: Literal["train", "test"] = Field(
        "train", description="Dataset split the calibration images come from."
    )
    batch_size: int = Field(256, ge=1, description="Images per evaluation batch.")
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N test images.")
    chunk_elements: int = Field(
        1 << 21,
        ge=1 << 10,
        description="Bound on partial sums held at once by the bit-level path (memory vs overhead): per "
        "intra-op thread on the signed-slice path and the table engine (forms.sim.workspace."
        "vectors_per_chunk), per call on the every-conversion path.",
    )
    devices: DeviceSpec = Field(
        default_factory=lambda: DeviceSpec.model_validate({}), description="Cell non-idealities."
    )
    runs: int = Field(1, ge=1, description="Monte Carlo chips (each programmed with its own seed).")
    seed: int = Field(0, description="Seed of every random draw (chip n uses seed + n).")

    @model_validator(mode="after")
    def _combinations(self) -> SimSpec:
        if self.adc_bits is not None:
            check_adc_bits(self.adc_bits)
        if self.input_significant_bits is not None and self.input_significant_bits > self.input_bits:
            raise ValueError(
                f"input_significant_bits={self.input_significant_bits} exceeds input_bits={self.input_bits}: "
                "the significant bits are held in the input datapath; lower it or widen input_bits"
            )
        if self.fragment_size is not None:
            check_fragment_size(self.fragment_size, self.rows)
        return self

    def crossbar(self, fragment_size: int) -> CrossbarSpec:
        """This spec's crossbar geometry with fragments of ``fragment_size`` rows."""
        return CrossbarSpec(
            rows=self.rows, cols=self.cols, cell_bits=self.cell_bits, fragment_size=fragment_size
        )
