"""How the same signed integer weights become cell levels under FORMS, ISAAC and PRIME encodings.

Layout of an encoded layer (``G`` groups, ``F`` row groups of ``Rg`` rows, ``C`` weight columns,
``Q`` physical columns per weight column):

- ``cells`` (G, F, Rg, C, Q) int64 levels in [0, 2^cell_bits - 1]; the physical columns of weight
  column ``c`` are ordered (crossbar set, slice), slice ``k`` holding bits [k*cell_bits, (k+1)*cell_bits).
- ``signed_place_value`` (G, F, C, Q): the digital weight of each converted column in the shift-and-add:
  2^(k*cell_bits), times the FRAGMENT SIGN (polarized: this is where the sign bit of each fragment is
  applied), the set sign (differential: - for the negative crossbar) and -1 for a flipped column
  (offset with flipping).
- ``flip_correction`` (G, F, C): coefficient of U, the sum of the step's input digits over the group's
  rows, added back for flipped columns: sum over flipped slices of (2^cell_bits - 1) * 2^(k*cell_bits),
  because a flipped column reads sum_r d_r (M - c_r) = M*U - sum_r d_r c_r.
- ``input_sum_coefficient``: -2^weight_bits for offset (ISAAC's unit column removes the bias
  2^weight_bits times the sum of the inputs), 0 otherwise.

A row group is what one ADC conversion sums: a fragment of R rows for polarized (FORMS converts each
fragment on its own), a whole row tile of ``rows`` rows for offset and differential (ISAAC and PRIME
convert full crossbar columns). The last group of a matrix may be short; it is padded with zero rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from forms.encoding import Encoding
from forms.errors import ConfigError
from forms.geometry import fragment_signs, fragment_view


@dataclass(frozen=True)
class EncodedLayer:
    """Cell levels and digital shift-and-add coefficients of one layer under one encoding."""

    encoding: Encoding
    cells: Tensor
    signed_place_value: Tensor
    flip_correction: Tensor | None
    flipped: Tensor | None
    """(G, F, C, Q) bool: which physical columns are stored flipped (offset with flipping only)."""
    input_sum_coefficient: float
    group_rows: int
    rows: int
    cell_bits: int
    weight_bits: int
    slices: int
    sets: int

    @property
    def cell_max(self) -> int:
        """Highest cell level M = 2^cell_bits - 1."""
        return (1 << self.cell_bits) - 1

    @property
    def groups(self) -> int:
        """Weight matrices (conv groups)."""
        return int(self.cells.shape[0])

    @property
    def row_groups(self) -> int:
        """Row groups F per matrix (fragments for polarized, row tiles otherwise)."""
        return int(self.cells.shape[1])

    @property
    def columns(self) -> int:
        """Weight columns C per matrix."""
        return int(self.cells.shape[3])

    @property
    def physical_columns(self) -> int:
        """Converted columns per weight column: slices x crossbar sets."""
        return int(self.cells.shape[4])

    def decoded_matrix(self) -> Tensor:
        """The signed integers the ideal cells represent (groups, rows, cols); equals the input integers."""
        g, f, rg, c, _ = self.cells.shape
        val = self.cells.to(torch.float64) * self.signed_place_value.to(torch.float64).unsqueeze(2)
        out = val.sum(-1)
        if self.flip_correction is not None:
            out = out + self.flip_correction.to(torch.float64).unsqueeze(2)
        out = out + self.input_sum_coefficient
        return out.reshape(g, f * rg, c)[:, : self.rows].round().to(torch.int64)


def _slice_levels(values: Tensor, slices: int, cell_bits: int) -> Tensor:
    """Non-negative integers (...) -> cell levels (..., slices), LSB slice first."""
    shifts = torch.arange(slices, device=values.device, dtype=torch.int64) * cell_bits
    return torch.bitwise_and(torch.bitwise_right_shift(values.unsqueeze(-1), shifts), (1 << cell_bits) - 1)


def _slice_weights(slices: int, cell_bits: int, device: torch.device) -> Tensor:
    return torch.tensor(
        [float(1 << (k * cell_bits)) for k in range(slices)], dtype=torch.float64, device=device
    )


def encode(
    weight_int: Tensor,
    encoding: Encoding | str,
    weight_bits: int,
    cell_bits: int,
    crossbar_rows: int,
    fragment_size: int,
    flipped: bool = False,
    name: str = "layer",
) -> EncodedLayer:
    """Encode signed integers (groups, rows, cols) with |w| <= 2^weight_bits - 1 into cell levels.

    Raises :class:`ConfigError` for impossible widths, for flipping outside the offset encoding, and
    for a polarized encoding of integers whose fragments of ``fragment_size`` rows mix signs.
    """
    encoding = Encoding.parse(encoding)
    encoding.check_widths(weight_bits, cell_bits)
    encoding.check_flipping(flipped)
    w = weight_int.to(torch.int64)
    groups, rows, cols = w.shape
    limit = (1 << weight_bits) - 1
    if w.numel() and int(w.abs().max()) > limit:
        raise ConfigError(f"{name}: integer weights exceed {limit} = 2^{weight_bits} - 1")
    slices = encoding.slices(weight_bits, cell_bits)
    group_rows = encoding.rows_per_conversion(crossbar_rows, fragment_size)
    sw = _slice_weights(slices, cell_bits, w.device)
    m = (1 << cell_bits) - 1
    flip_correction: Tensor | None = None
    flip: Tensor | None = None
    input_coef = 0.0
    if encoding is Encoding.POLARIZED:
        fs = fragment_signs(w, fragment_size)
        mixed = int(fs.mixed.sum())
        if mixed:
            raise ConfigError(
                f"{name}: the polarized encoding the checkpoint cannot provide: {mixed} fragment(s) of "
                f"R={fragment_size} rows hold both signs; polarize with this R (forms compress) or simulate "
                "with --encoding offset or differential"
            )
        frags = fragment_view(w.abs(), group_rows)  # (G, F, Rg, C)
        cells = _slice_levels(frags, slices, cell_bits)
        signed_place_value = fs.signs.to(torch.float64).unsqueeze(-1) * sw  # (G, F, C, S): the fragment sign
    elif encoding is Encoding.DIFFERENTIAL:
        pos = fragment_view(w.clamp(min=0), group_rows)
        neg = fragment_view((-w).clamp(min=0), group_rows)
        cells = torch.cat([_slice_levels(pos, slices, cell_bits), _slice_levels(neg, slices, cell_bits)], -1)
        f = cells.shape[1]
        signed_place_value = torch.cat([sw, -sw]).expand(groups, f, cols, 2 * slices).clone()
    else:
        shifted = fragment_view(w + (1 << weight_bits), group_rows)  # padding rows stay 0
        real = fragment_view(torch.ones_like(w), group_rows).bool()
        shifted = torch.where(real, shifted, torch.zeros_like(shifted))
        cells = _slice_levels(shifted, slices, cell_bits)  # (G, F, Rg, C, S)
        f = cells.shape[1]
        signed_place_value = sw.expand(groups, f, cols, slices).clone()
        input_coef = -float(1 << weight_bits)
        if flipped:
            col_sum = cells.sum(2)  # (G, F, C, S)
            flip = 2 * col_sum > group_rows * m
            cells = torch.where(flip.unsqueeze(2), m - cells, cells)
            signed_place_value = torch.where(flip, -signed_place_value, signed_place_value)
            flip_correction = (flip.to(torch.float64) * sw * m).sum(-1)  # (G, F, C)
    return EncodedLayer(
        encoding=encoding,
        cells=cells.contiguous(),
        signed_place_value=signed_place_value.to(torch.float64).contiguous(),
        flip_correction=flip_correction,
        flipped=flip,
        input_sum_coefficient=input_coef,
        group_rows=group_rows,
        rows=rows,
        cell_bits=cell_bits,
        weight_bits=weight_bits,
        slices=slices,
        sets=encoding.crossbar_sets,
    )


def row_groups(rows: int, group_rows: int) -> int:
    """Row groups of ``group_rows`` covering ``rows``."""
    return math.ceil(rows / group_rows)
