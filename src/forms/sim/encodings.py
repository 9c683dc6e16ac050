"""How the same signed integer weights become cell levels under FORMS, ISAAC and PRIME encodings.

Layout of an encoded layer (``G`` groups, ``F`` row groups of ``Rg`` rows, ``C`` weight columns,
``Q`` physical columns per weight column):

- ``cells`` (G, F, Rg, C, Q) int64 levels in [0, 2^cell_bits - 1]; the physical columns of weight
  column ``c`` are ordered (crossbar set, slice), slice ``k`` holding bits [k*cell_bits, (k+1)*cell_bits).
- ``signed_place_value`` (G, F, C, Q): the digital weight of each converted column in the shift-and-add:
  2^(k*cell_bits), times the FRAGMENT SIGN (polarized: this is where the sign bit of each fragment is
  applied), the set sign (differential: - for the negative crossbar) and -1 for a flipped column.
- ``flip_correction`` (G, F, C): coefficient of U, the sum of the step's input digits over the group's
  rows, added back for flipped columns: sum over flipped columns of M * (their place value before the
  flip: 2^(k*cell_bits) times the fragment or set sign), because a flipped column reads
  sum_r d_r (M - c_r) = M*U - sum_r d_r c_r.
- ``input_sum_coefficient``: -2^weight_bits for offset (ISAAC's unit column removes the bias
  2^weight_bits times the sum of the inputs), 0 otherwise.

A row group is what one ADC conversion sums: a fragment of R rows for polarized (FORMS converts each
fragment on its own), a whole row tile of ``rows`` rows for offset and differential (ISAAC and PRIME
convert full crossbar columns). The last group of a matrix may be short; it is padded with zero rows.

Flipping (ISAAC's trick, Shafiee et al., ISCA 2016, Sec. 4, applied here to every encoding): a converted
column whose cells sum above half of ``Rg * M`` stores ``M - c`` instead, so no partial sum exceeds
half the range and the lossless ADC is one bit narrower; the digital shift-and-add subtracts its
reading and adds ``M * U`` back through ``flip_correction``. The same rule holds for every encoding
because each converted column holds plain magnitudes with one digital coefficient (the offset value,
the fragment sign or the crossbar set's sign): only that coefficient changes sign.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from forms.config import CrossbarSpec
from forms.encoding import Encoding
from forms.errors import ConfigError
from forms.geometry import fragment_signs, fragment_view
from forms.sim.boundary import check_fragments, integer_weights


@dataclass(frozen=True)
class EncodedLayer:
    """Cell levels and digital shift-and-add coefficients of one layer under one encoding."""

    encoding: Encoding
    cells: Tensor
    signed_place_value: Tensor
    flip_correction: Tensor | None
    flipped: Tensor | None
    """(G, F, C, Q) bool: which physical columns are stored flipped (None without flipping)."""
    input_sum_coefficient: float
    group_rows: int
    rows: int
    cell_bits: int
    weight_bits: int
    slices: int
    sets: int
    name: str
    """The layer's name (error messages name it)."""
    crossbar_rows: int
    """Rows per crossbar."""
    fragment_size: int
    """R: rows per fragment (the polarized encoding's sign groups; zero-skip sub-arrays)."""
    crossbar_cols: int
    """Columns (bit lines) per crossbar."""

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

    @property
    def crossbars_per_row_tile(self) -> int:
        """Crossbars one row tile of a matrix spans: column tiles x crossbar sets (each reads the tile's
        input digits at once)."""
        crossbar = CrossbarSpec(
            rows=self.crossbar_rows,
            cols=self.crossbar_cols,
            cell_bits=self.cell_bits,
            fragment_size=self.fragment_size,
        )
        column_tiles = self.encoding.tile_counts(self.rows, self.columns, self.weight_bits, crossbar)[1]
        return column_tiles * self.sets

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


@dataclass(frozen=True)
class _Layout:
    """How one encoding lays magnitudes into cells: slices per weight, rows per conversion, cell width."""

    slices: int
    group_rows: int
    cell_bits: int

    def levels(self, values: Tensor) -> Tensor:
        """Non-negative integers (G, rows, C) -> cell levels (G, F, Rg, C, slices), zero-padded rows."""
        return _slice_levels(fragment_view(values, self.group_rows), self.slices, self.cell_bits)

    def place_values(self, device: torch.device) -> Tensor:
        """(slices,) float64: 2^(k*cell_bits), the shift-and-add weight of slice k."""
        return torch.tensor(
            [float(1 << (k * self.cell_bits)) for k in range(self.slices)], dtype=torch.float64, device=device
        )


@dataclass(frozen=True)
class _Cells:
    """One encoding's cells and shift-and-add coefficients (the fields of :class:`EncodedLayer`)."""

    cells: Tensor
    signed_place_value: Tensor
    flip_correction: Tensor | None = None
    flipped: Tensor | None = None
    input_sum_coefficient: float = 0.0


def _flip(cells: _Cells, layout: _Layout) -> _Cells:
    """``cells`` with every converted column whose levels sum above half of ``Rg * M`` stored flipped
    (M - c), its place value negated and M times its old place value added to the U coefficient."""
    m = (1 << layout.cell_bits) - 1
    flip = 2 * cells.cells.sum(2) > layout.group_rows * m  # (G, F, C, Q)
    levels = torch.where(flip.unsqueeze(2), m - cells.cells, cells.cells)
    place = cells.signed_place_value
    flip_correction = (flip.to(torch.float64) * place * m).sum(-1)  # (G, F, C)
    return _Cells(
        levels, torch.where(flip, -place, place), flip_correction, flip, cells.input_sum_coefficient
    )


def _polarized(w: Tensor, fragment_size: int, layout: _Layout, name: str) -> _Cells:
    """Magnitudes in the cells, the fragment sign on each converted column's place value."""
    fs = fragment_signs(w, fragment_size)
    mixed = int(fs.mixed.sum())
    if mixed:
        raise ConfigError(
            f"{name}: the polarized encoding the checkpoint cannot provide: {mixed} fragment(s) of "
            f"R={fragment_size} rows hold both signs; polarize with this R (forms compress) or simulate "
            "with --encoding offset or differential"
        )
    signs = fs.signs.to(torch.float64).unsqueeze(-1)  # (G, F, C, 1): the fragment sign
    return _Cells(layout.levels(w.abs()), signs * layout.place_values(w.device))


def _differential(w: Tensor, layout: _Layout) -> _Cells:
    """Positive parts on one crossbar set, negative parts on the other (subtracted)."""
    cells = torch.cat([layout.levels(w.clamp(min=0)), layout.levels((-w).clamp(min=0))], -1)
    g, f, _, c, _ = cells.shape
    sw = layout.place_values(w.device)
    return _Cells(cells, torch.cat([sw, -sw]).expand(g, f, c, 2 * layout.slices).clone())


def _offset(w: Tensor, weight_bits: int, layout: _Layout) -> _Cells:
    """``w + 2^weight_bits`` in the cells, the bias removed through the input sum."""
    real = fragment_view(torch.ones_like(w), layout.group_rows).bool()
    shifted = fragment_view(w + (1 << weight_bits), layout.group_rows)
    shifted = torch.where(real, shifted, torch.zeros_like(shifted))  # padding rows stay 0
    cells = _slice_levels(shifted, layout.slices, layout.cell_bits)  # (G, F, Rg, C, S)
    g, f, _, c, _ = cells.shape
    sw = layout.place_values(w.device)
    signed_place_value = sw.expand(g, f, c, layout.slices).clone()
    return _Cells(cells, signed_place_value, input_sum_coefficient=-float(1 << weight_bits))


def encode(
    weight_int: Tensor,
    encoding: Encoding | str,
    weight_bits: int,
    cell_bits: int,
    crossbar_rows: int,
    fragment_size: int,
    flipped: bool = False,
    name: str = "layer",
    crossbar_cols: int | None = None,
) -> EncodedLayer:
    """Encode signed integers (groups, rows, cols) with |w| <= 2^weight_bits - 1 into cell levels.

    Raises :class:`ConfigError` for impossible widths, for a fragment size that does not divide the
    crossbar rows, for weights that are not finite integers within the width or not a (groups, rows,
    cols) stack (:mod:`forms.sim.boundary`), and for a polarized encoding of integers whose fragments
    of ``fragment_size`` rows mix signs. ``flipped`` stores columns flipped (module docstring);
    ``crossbar_cols`` (None: square crossbars of ``crossbar_rows``) only sets how many crossbars a row
    tile spans (:attr:`EncodedLayer.crossbars_per_row_tile`).
    """
    encoding = Encoding.parse(encoding)
    encoding.check_widths(weight_bits, cell_bits)
    check_fragments(crossbar_rows, fragment_size, name)
    w = integer_weights(weight_int, weight_bits, name)
    layout = _Layout(
        encoding.slices(weight_bits, cell_bits),
        encoding.rows_per_conversion(crossbar_rows, fragment_size),
        cell_bits,
    )
    if encoding is Encoding.POLARIZED:
        coded = _polarized(w, fragment_size, layout, name)
    elif encoding is Encoding.DIFFERENTIAL:
        coded = _differential(w, layout)
    else:
        coded = _offset(w, weight_bits, layout)
    if flipped:
        coded = _flip(coded, layout)
    return EncodedLayer(
        encoding=encoding,
        cells=coded.cells.contiguous(),
        signed_place_value=coded.signed_place_value.to(torch.float64).contiguous(),
        flip_correction=coded.flip_correction,
        flipped=coded.flipped,
        input_sum_coefficient=coded.input_sum_coefficient,
        group_rows=layout.group_rows,
        rows=int(w.shape[1]),
        cell_bits=cell_bits,
        weight_bits=weight_bits,
        slices=layout.slices,
        sets=encoding.crossbar_sets,
        name=name,
        crossbar_rows=crossbar_rows,
        fragment_size=fragment_size,
        crossbar_cols=crossbar_rows if crossbar_cols is None else crossbar_cols,
    )
