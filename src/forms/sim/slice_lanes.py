"""The bit-level GEMM engine's path for chips whose every conversion is provably the identity.

With integral cell levels, no read noise and step-1 ADCs that no partial sum can clip (every converted
column's level sum times the largest DAC digit fits its ADC), each conversion returns its partial sum
unchanged, so the shift-and-add is linear in the partial sums. The sums it adds with one place value
``2^(k * cell_bits)`` can then be added before the conversion, by the GEMM itself:

- the row groups of a column (ISAAC/PRIME row tiles, FORMS fragments: each converts on its own, and
  the shift-and-add adds their converted sums) form one column over all rows, with no padding rows;
- the crossbar sets of a differential pair (and flipped columns) enter with their signs: one *signed
  slice* ``W+_s - W-_s``, since ``ADC(P+) - ADC(P-) = P+ - P- = X_t @ (W+_s - W-_s)`` when both
  conversions are the identity.

Each input step ``t`` and place value then costs one GEMM column per weight column: the
``steps x slices`` GEMMs of X @ W's shape that a bit-level simulation must at least compute (issue
20's floor), fewer where several signed slices share a float32 column as packed fields
(:mod:`forms.sim.packed_fields`, fields wide enough for a whole column's signed sum). Flipped columns'
``M * U`` terms come from row-group indicator columns in the same GEMM (``U``: a row group's digit sum).
The result equals the per-(step, row group, set, slice) computation bit for bit; wherever a conversion
can clip or round (narrow ADC, read noise, variation) the GEMM engine converts every partial sum on
its own instead (:mod:`forms.sim.gemm_engine`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from forms.sim.adc import Adc
from forms.sim.bitplanes import digit_planes
from forms.sim.column_split import BitLevelColumns
from forms.sim.encodings import EncodedLayer
from forms.sim.integer_gemm import exact_float_dtype
from forms.sim.packed_fields import PackedColumns, pack_columns
from forms.sim.quant_inputs import DigitPlan
from forms.sim.workspace import Workspace, vectors_per_chunk


def conversions_are_identity(
    columns: BitLevelColumns, plan: DigitPlan, adc: Adc, integral: bool, read_noise: float
) -> bool:
    """True when every conversion of ``columns`` returns its partial sum: integral levels, no read
    noise, ADC step 1 and every column's level sum times the largest digit within the ADC's range."""
    if read_noise > 0 or not integral or adc.step != 1.0 or not columns.count:
        return False
    return float(columns.cells.sum(1).max()) * plan.max_digit <= adc.max_code


@dataclass(frozen=True)
class SliceLanes:
    """A chip's signed slices over all rows, packed for one GEMM per input step (module docstring)."""

    levels: Tensor
    """(G, rows, J) GEMM operand: packed signed slices (and row-group indicators), or unpacked."""
    packed: PackedColumns | None
    """The packing of ``levels``, or None when they are the signed slices themselves."""
    places: Tensor
    """(P,) float64 place values, the P signed slices of each weight column in order."""
    flips: Tensor | None
    """(G, F, C) coefficient of each row group's digit sum U (flipped columns), or None."""
    columns: int
    """C: weight columns."""
    reduce_dtype: torch.dtype
    """Dtype exact for one step's sum over place values (and U terms)."""

    def run(self, codes: Tensor, plan: DigitPlan, chunk_elements: int) -> Tensor:
        """Sums (V, G, C) float64 of checked integer ``codes`` (V, G, rows), chunked over vectors
        (``chunk_elements`` digits and GEMM results per intra-op thread: :func:`vectors_per_chunk`)."""
        g, rows, j = self.levels.shape
        lanes = self.packed.columns if self.packed is not None else j
        chunk = vectors_per_chunk(chunk_elements, plan.steps * g * (rows + 2 * lanes))
        ws = Workspace()
        out = torch.empty(codes.shape[0], g, self.columns, dtype=torch.float64, device=codes.device)
        for s in range(0, codes.shape[0], chunk):
            self._chunk(codes[s : s + chunk], plan, ws, out[s : s + chunk].transpose(0, 1))
        return out

    def _chunk(self, codes: Tensor, plan: DigitPlan, ws: Workspace, out: Tensor) -> None:
        """Sums of one chunk into ``out`` (G, V, C) float64: per step and signed slice one GEMM
        column, then the place values and the digit weights."""
        g, rows, j = self.levels.shape
        v, c, p = codes.shape[0], self.columns, self.places.numel()
        digits = digit_planes(codes, plan, rows, self.levels.dtype, ws)  # (G, steps*V, rows)
        product = ws.take("lanes", (g, digits.shape[1], j), self.levels.dtype, codes.device)
        torch.bmm(digits, self.levels, out=product)
        fields = self.packed.unpack(product, ws) if self.packed is not None else product
        n = digits.shape[1]
        by_place = fields[..., : p * c].view(g, n, p, c)
        step_sums = ws.take("step_sums", (g, n, c), self.reduce_dtype, codes.device)
        step_sums.zero_()
        for k in range(p):  # a handful of place values
            step_sums.add_(by_place[:, :, k], alpha=float(self.places[k]))
        if self.flips is not None:
            u = fields[..., p * c : p * c + self.flips.shape[1]].to(self.reduce_dtype)
            step_sums.add_(torch.bmm(u, self.flips.to(self.reduce_dtype)))
        per_step = step_sums.view(g, plan.steps, v, c)
        weights = plan.digit_weights().tolist()
        out.copy_(per_step[:, 0]).mul_(weights[0])  # float64: exact
        for t in range(1, plan.steps):
            out.add_(per_step[:, t], alpha=weights[t])


def _signed_slices(encoded: EncodedLayer, columns: BitLevelColumns) -> tuple[Tensor, Tensor]:
    """(G, rows, P*C) float64 levels of the signed slices (column ``k*C + c``: place value ``k`` of
    weight column ``c``, every row group and set with its sign) and the (P,) place values."""
    g, f, rg, c = encoded.groups, encoded.row_groups, encoded.group_rows, encoded.columns
    mult = columns.signed_place_value.to(torch.float64)  # (G, F, Q, C)
    places = torch.unique(mult.abs()[mult != 0])
    onehot = (mult.abs().unsqueeze(-1) == places) * mult.sign().unsqueeze(-1)  # (G, F, Q, C, P)
    cells = columns.cells.to(torch.float64).view(g, f, rg, -1, c)
    slices = torch.einsum("gfrqc,gfqcp->gfrpc", cells, onehot)
    return slices.reshape(g, f * rg, -1)[:, : encoded.rows], places


def _row_group_indicators(encoded: EncodedLayer, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(G, rows, F): 1 where a row belongs to a row group (the GEMM column of its digit sum U)."""
    group = torch.arange(encoded.rows, device=device) // encoded.group_rows
    one_hot = torch.nn.functional.one_hot(group, encoded.row_groups).to(dtype)
    return one_hot.unsqueeze(0).expand(encoded.groups, -1, -1)


def slice_lanes(
    encoded: EncodedLayer,
    plan: DigitPlan,
    columns: BitLevelColumns,
    adc: Adc,
    integral: bool,
    read_noise: float,
) -> SliceLanes | None:
    """The signed-slice GEMM of ``columns`` (module docstring), or None unless every column is converted
    (dense layout) and every conversion is provably the identity (:func:`conversions_are_identity`)."""
    if not columns.dense or not conversions_are_identity(columns, plan, adc, integral, read_noise):
        return None
    slices, places = _signed_slices(encoded, columns)
    flips = columns.flip_correction.to(torch.float64)
    has_flips = bool(flips.any())
    if has_flips:
        slices = torch.cat([slices, _row_group_indicators(encoded, slices.dtype, slices.device)], -1)
    column_sums = slices.abs().sum(1) * plan.max_digit  # (G, P*C [+ F]): bounds of each GEMM column
    packed = pack_columns(slices, plan.max_digit)
    if packed is not None:
        levels = packed.levels
    else:
        levels = slices.to(exact_float_dtype(float(column_sums.max()) if column_sums.numel() else 0.0))
    g, c, p = encoded.groups, encoded.columns, places.numel()
    bound = (column_sums[:, : p * c].view(g, p, c) * places.view(1, p, 1)).sum(1)  # (G, C)
    if has_flips:
        bound = bound + torch.bmm(column_sums[:, p * c :].unsqueeze(1), flips.abs()).squeeze(1)
    reduce_dtype = torch.promote_types(
        levels.dtype, exact_float_dtype(float(bound.max()) if bound.numel() else 0.0)
    )
    return SliceLanes(levels.contiguous(), packed, places, flips if has_flips else None, c, reduce_dtype)
