"""THE sign encodings and every rule that depends on one (docs/design.md, "The three encodings").

The same signed integer weights (``|w| <= 2^weight_bits - 1``) are laid on crossbars three ways:

- ``polarized`` (FORMS): magnitudes in the cells, one sign bit per fragment of R rows, held
  digitally; every fragment converts on its own, so one conversion sums R rows.
- ``offset`` (ISAAC): ``w + 2^weight_bits`` in ``weight_bits + 1`` bits of cells; a unit column per
  crossbar measures the bias to subtract; a whole column (the crossbar's rows) converts at once.
- ``differential`` (PRIME): the positive and the negative parts on two crossbar sets; a whole column
  converts at once.

Under every encoding a converted column may be stored *flipped* (ISAAC's trick, Shafiee et al., ISCA
2016, Sec. 4) to save one ADC bit: its cells store 2^cell_bits - 1 - c to keep its sum in the lower
half, the reading corrected digitally through the step's input digit sum. Each converted column holds
magnitudes under one digital coefficient (the offset place value, the polarized fragment sign, the
differential set sign), so the same rule serves all three, in the simulator and the cost model
(``adc.flip``) alike.

Mapping, simulator, cost model, sweep and reports ask :class:`Encoding` (cells per weight, crossbar
sets, crossbar counts, rows per conversion, lossless ADC width, width and flipping rules) instead of
comparing strings, so each rule is written once, here.
"""

from __future__ import annotations

import math
from enum import StrEnum

from forms.config import CrossbarSpec
from forms.errors import ConfigError

MAX_WEIGHT_BITS = 16
"""Widest integer weight we accept: 16 magnitude bits (ISAAC's 16-bit fixed-point weights,
Shafiee et al., ISCA 2016, Sec. 3)."""


def max_partial_sum(group_rows: int, cell_bits: int, dac_bits: int) -> int:
    """Largest analog partial sum of ``group_rows`` cells: R * (2^cell_bits - 1) * (2^dac_bits - 1)."""
    return group_rows * ((1 << cell_bits) - 1) * ((1 << dac_bits) - 1)


def lossless_adc_bits(group_rows: int, cell_bits: int, dac_bits: int, flipped: bool = False) -> int:
    """Bits converting every partial sum exactly: ceil(log2(R (2^w - 1)(2^v - 1) + 1)); one less flipped.

    ISAAC (Shafiee et al., ISCA 2016, Sec. 4) gives the same count, log2(R) + v + w (- 1 when v or w is 1),
    for power-of-two R; a flipped column never sums above half the range, so it needs one bit less
    (for R = 128, w = 2, v = 1: 9 bits, 8 flipped).
    """
    full = max_partial_sum(group_rows, cell_bits, dac_bits)
    return max(1, (full // 2).bit_length()) if flipped else max(1, full.bit_length())


class Encoding(StrEnum):
    """A sign encoding; its value is the name used in specs, files and on the command line."""

    POLARIZED = "polarized"
    OFFSET = "offset"
    DIFFERENTIAL = "differential"

    @classmethod
    def parse(cls, name: str) -> Encoding:
        """The encoding called ``name``; ConfigError listing the choices for any other name."""
        try:
            return cls(name)
        except ValueError:
            raise ConfigError(f"unknown encoding '{name}'; choose one of {', '.join(cls)}") from None

    @property
    def crossbar_sets(self) -> int:
        """Crossbar sets a layer occupies: 2 for differential (positive and negative), else 1."""
        return 2 if self is Encoding.DIFFERENTIAL else 1

    @property
    def has_unit_column(self) -> bool:
        """Offset only: a unit column per crossbar beside the data columns, converted every read."""
        return self is Encoding.OFFSET

    @property
    def signs_per_fragment(self) -> bool:
        """Polarized only: one sign per fragment of R rows, so every fragment converts on its own."""
        return self is Encoding.POLARIZED

    def stored_bits(self, weight_bits: int) -> int:
        """Bits of cells one weight needs on one crossbar set.

        polarized: ``weight_bits`` (the sign is one bit per fragment, held digitally);
        offset: ``weight_bits + 1`` (w + 2^weight_bits lies in [1, 2^(weight_bits+1) - 1]);
        differential: ``weight_bits`` on each of the two crossbar sets.
        """
        return weight_bits + 1 if self is Encoding.OFFSET else weight_bits

    def slices(self, weight_bits: int, cell_bits: int) -> int:
        """Cells (adjacent columns) per weight on one crossbar set: ceil(stored bits / cell_bits)."""
        return math.ceil(self.stored_bits(weight_bits) / cell_bits)

    def rows_per_conversion(self, crossbar_rows: int, fragment_size: int) -> int:
        """Rows one ADC conversion sums: R for polarized, the whole column (crossbar rows) otherwise."""
        return fragment_size if self.signs_per_fragment else crossbar_rows

    def lossless_adc_bits(self, crossbar: CrossbarSpec, dac_bits: int, flipped: bool = False) -> int:
        """ADC width that converts every partial sum of this encoding on ``crossbar`` exactly."""
        group = self.rows_per_conversion(crossbar.rows, crossbar.fragment_size)
        return lossless_adc_bits(group, crossbar.cell_bits, dac_bits, flipped)

    def tile_counts(self, rows: int, cols: int, weight_bits: int, crossbar: CrossbarSpec) -> tuple[int, int]:
        """Row and column tiles of one group's (rows, cols) matrix on one crossbar set.

        ceil(rows / crossbar rows) row tiles; ceil(cols * slices / crossbar cols) column tiles, a weight's
        slices sitting in adjacent columns. ISAAC's unit column sits beside the data columns (as in ISAAC's
        design), so it takes no data column here.
        """
        slices = self.slices(weight_bits, crossbar.cell_bits)
        return math.ceil(rows / crossbar.rows), math.ceil(cols * slices / crossbar.cols)

    def crossbar_count(
        self, rows: int, cols: int, groups: int, weight_bits: int, crossbar: CrossbarSpec
    ) -> int:
        """Crossbars holding one layer's (groups, rows, cols) matrices: groups x sets x row x column tiles."""
        if rows == 0 or cols == 0:
            return 0
        row_tiles, col_tiles = self.tile_counts(rows, cols, weight_bits, crossbar)
        return groups * self.crossbar_sets * row_tiles * col_tiles

    def check_widths(self, weight_bits: int, cell_bits: int) -> None:
        """Refuse weight/cell widths that cannot be laid out (ConfigError naming the fix).

        The one width rule every entry point (architecture specs, simulation specs, sweeps, the encoder)
        applies: 1..16 magnitude bits, 1..8-bit cells, and no cell wider than the bits a weight stores.
        """
        if not 1 <= weight_bits <= MAX_WEIGHT_BITS:
            raise ConfigError(f"weight_bits={weight_bits}: use 1..{MAX_WEIGHT_BITS} magnitude bits")
        if not 1 <= cell_bits <= 8:
            raise ConfigError(f"cell_bits={cell_bits}: ReRAM cells hold 1..8 bits")
        stored = self.stored_bits(weight_bits)
        if cell_bits > stored:
            raise ConfigError(
                f"cell_bits={cell_bits} is wider than the {stored} bits a weight needs under '{self}' "
                f"(weight_bits={weight_bits}); one cell would hold less than a weight: "
                f"use cell_bits <= {stored}"
            )


ENCODINGS: tuple[Encoding, ...] = tuple(Encoding)
"""Every encoding, in the order reports list them."""
