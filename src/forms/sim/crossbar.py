"""The bit-accurate crossbar engine of one mapped layer: integer codes in, exact integer sums out.

Input: integer activation codes ``x`` (vectors, groups, rows), output: ``y`` (vectors, groups, cols)
as float64 tensors holding integers. Three paths compute the same hardware:

- **Exact fast path.** When the cells are ideal and the ADC cannot clip any partial sum (every column's
  level sum times the largest DAC digit fits the ADC), the bit-serial pipeline equals one integer GEMM
  ``x @ W`` (DESIGN.md, "Making the simulator fast"). It runs in float32 when rows * max|x| * max|w|
  < 2^24 (exact), else float64 (exact to 2^53). Zero-skip statistics come from the OR of each
  sub-array's codes through lookup tables (:mod:`forms.sim.zeroskip`).
- **Table engine** (bit-level, deterministic cells: narrow ADC, faults, variation). Every conversion
  of a step is a function of the row group's digit pattern, so the ADC outputs and their
  shift-and-add are tabulated per pattern once per programmed chip and a vector costs one table row
  per (step, row group) (:mod:`forms.sim.lookup`, patterns from :mod:`forms.sim.bitplanes`). Applies
  when patterns have at most 16 bits (FORMS fragments; not ISAAC/PRIME's 128-row columns).
- **GEMM engine** (bit-level otherwise, and always with read noise). Input digits go into the batch
  dimension and cells are laid out as (groups x row groups, group rows, cols x physical columns), so
  one batched GEMM yields every (step, row group, column, slice) partial sum. Read noise is added, the
  ADC clips/quantizes elementwise, and the shift-and-add reduces with 2^(k*cell_bits),
  fragment/set/flip signs and the digit weights coef * 2^shift. The offset encoding subtracts
  2^weight_bits * sum(x); flipped columns add M * U back. Work is chunked over vectors so at most
  ``chunk_elements`` partial sums are held at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from forms.sim.adc import Adc
from forms.sim.bitplanes import (
    MAX_PATTERN_BITS,
    fragment_int_view,
    fragment_patterns,
    int_codes,
    pattern_bits,
)
from forms.sim.devices import ProgrammedCells, add_read_noise_, add_read_noise_sigma_, program_cells
from forms.sim.encodings import EncodedLayer
from forms.sim.lookup import FLOAT32_EXACT, PartialSumTables, PatternTable, table_size
from forms.sim.quant_inputs import DigitPlan
from forms.sim.spec import DeviceSpec
from forms.sim.zeroskip import ZeroSkipCounts, count_fragments, count_subarray_steps

DEFAULT_TABLE_LIMIT = 1 << 24
"""Largest per-pattern table (entries) the bit-level path builds per layer (float32: 64 MiB)."""


def integer_matmul(codes: Tensor, weight_int: Tensor, max_code: int | None = None) -> Tensor:
    """Exact ``codes @ W`` per group: codes (V, G, rows), W (G, rows, cols) -> (V, G, cols) float64.

    Uses float32 when every sum is provably below 2^24 (rows * max|x| * max|w|), float64 otherwise.
    ``max_code`` bounds |x| when known (saves a pass over the codes).
    """
    rows = weight_int.shape[1]
    max_x = float(max_code) if max_code is not None else float(codes.abs().max()) if codes.numel() else 0.0
    max_w = float(weight_int.abs().max()) if weight_int.numel() else 0.0
    dtype = torch.float32 if rows * max_x * max_w < FLOAT32_EXACT else torch.float64
    x = codes.to(dtype).transpose(0, 1)  # (G, V, rows)
    y = torch.bmm(x, weight_int.to(dtype))  # (G, V, cols)
    return y.transpose(0, 1).to(torch.float64)


@dataclass
class LayerStats:
    """Per-layer counters accumulated over every vector a layer converted."""

    conversions: int = 0
    """Partial sums converted (every step, row group and physical column; no skipping)."""
    clipped: int = 0
    """Conversions whose code exceeded the ADC's largest code."""
    columns: int = 0
    """Physical columns one sub-array round converts (weight columns x slices x sets, all groups)."""
    zero_skip: ZeroSkipCounts = field(default_factory=ZeroSkipCounts)
    bit_level_calls: int = 0
    fast_calls: int = 0

    def zero_skip_dict(self) -> dict[str, int]:
        """Conversions with and without skipping, per :mod:`forms.sim.zeroskip`."""
        z = self.zero_skip
        return {
            "conversions_total": z.rounds_total * self.columns,
            "conversions_skipped_leading": (z.rounds_total - z.rounds_needed_leading) * self.columns,
            "conversions_skipped_bitplane": (z.rounds_total - z.rounds_needed_bitplane) * self.columns,
        }


class CrossbarArray(nn.Module):
    """One layer's encoded weights on (simulated) crossbars, with its ADC, DAC plan and devices.

    After programming, the physical columns are split in two. A column is *exact* when its
    conversions provably equal its integer partial sums: integral cell levels (no variation), no read
    noise, ADC step 1, and its level sum times the largest DAC digit fits the ADC. Exact columns (and
    the offset encoding's bias removal, which is linear) fold into one integer matrix computed with a
    single GEMM. The other, *risky* columns go through the bit-level engine: all of them in the dense
    layout when every column is risky (noise, variation, or ``force_bit_level``), else a compacted
    (row group, risky column) layout padded to the largest risky count, scattered back to the output
    columns after the shift-and-add.
    """

    weight_int: Tensor
    ideal_cells: Tensor
    signed_place_value: Tensor
    flip_weight: Tensor
    cells: Tensor
    conductance_sq: Tensor
    exact_weight: Tensor
    risky_cells: Tensor
    risky_conductance_sq: Tensor
    risky_signed_place_value: Tensor
    risky_columns: Tensor
    risky_flip_correction: Tensor

    def __init__(
        self,
        weight_int: Tensor,
        encoded: EncodedLayer,
        adc: Adc,
        plan: DigitPlan,
        fragment_size: int,
        devices: DeviceSpec | None = None,
        chunk_elements: int = 1 << 21,
        force_bit_level: bool = False,
        table_limit: int = DEFAULT_TABLE_LIMIT,
    ) -> None:
        super().__init__()
        self.encoded = encoded
        self.adc = adc
        self.plan = plan
        self.fragment_size = fragment_size
        self.devices = devices or DeviceSpec.model_validate({})
        self.chunk_elements = chunk_elements
        self.force_bit_level = force_bit_level
        self.table_limit = table_limit
        self._table: PatternTable | None = None
        self._table_checked = False
        self._partials: PartialSumTables | None = None
        self.stats = LayerStats()
        g, f, _, c, q = encoded.cells.shape
        self.register_buffer("weight_int", weight_int.to(torch.int64))
        self.register_buffer("ideal_cells", encoded.cells.clone())
        # Engine layout: physical columns ordered (slice/set, weight column), so the shift-and-add
        # reduces over outer dimensions (contiguous inner runs of C columns).
        self.register_buffer(
            "signed_place_value", encoded.signed_place_value.permute(0, 1, 3, 2).contiguous()
        )
        flip = (
            encoded.flipped.permute(0, 1, 3, 2).to(torch.float64)
            if encoded.flipped is not None
            else torch.zeros(g, f, q, c, dtype=torch.float64)
        )
        # M * 2^(k*cell_bits) for a flipped column, 0 otherwise: its coefficient on U (encodings.py).
        self.register_buffer("flip_weight", flip * encoded.cell_max * self.signed_place_value.abs())
        self.register_buffer("cells", self._engine_layout(encoded.cells.to(torch.float32)))
        self.register_buffer("conductance_sq", torch.zeros(0))
        for name in ("exact_weight", "risky_cells", "risky_conductance_sq", "risky_signed_place_value"):
            self.register_buffer(name, torch.zeros(0))
        self.register_buffer("risky_columns", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("risky_flip_correction", torch.zeros(0))
        self.integral = True
        self.generator: torch.Generator | None = None
        col_sum_max = int(encoded.cells.sum(2).max()) if encoded.cells.numel() else 0
        self.max_partial = col_sum_max * plan.max_digit
        """Largest partial sum the ideal cells can produce for any input."""
        self.stats.columns = g * c * q
        self.max_code = 1 << plan.bits
        """Bound on |code| of this layer's inputs."""
        self.risky_count = 0
        self.dense = False
        self._split_columns()
        if not self.devices.ideal:
            self.program(0)  # a deterministic chip until program(seed) draws the one wanted

    @property
    def lossless(self) -> bool:
        """True when every conversion of this chip is exact (so one integer GEMM is the hardware)."""
        return self.risky_count == 0

    @property
    def engine(self) -> str:
        """Which path the last bit-level run took: ``exact`` (lossless chip), ``table`` or ``gemm``."""
        if self.lossless:
            return "exact"
        return "table" if self._table_checked and self._table is not None else "gemm"

    def program(self, seed: int | None) -> None:
        """Program a fresh chip: faults and variation drawn with ``seed`` (ideal when devices are ideal)."""
        device = self.ideal_cells.device
        self.generator = None
        if seed is not None:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(seed)
        prog: ProgrammedCells = program_cells(
            self.ideal_cells, self.encoded.cell_max, self.devices, self.generator
        )
        self.cells = self._engine_layout(prog.levels)
        self.conductance_sq = (
            self._engine_layout(prog.conductance_sq)
            if prog.conductance_sq is not None
            else torch.zeros(0, device=device)
        )
        self.integral = prog.integral
        self._table_checked = False
        self._partials = None
        self._split_columns()

    @staticmethod
    def _engine_layout(cells: Tensor) -> Tensor:
        """(G, F, Rg, C, Q) -> (G*F, Rg, Q*C) for the batched GEMM."""
        g, f, rg, c, q = cells.shape
        return cells.permute(0, 1, 2, 4, 3).reshape(g * f, rg, q * c).contiguous()

    def _split_columns(self) -> None:
        """Fold exact columns into ``exact_weight``; lay the risky ones out for the bit-level engine."""
        enc = self.encoded
        g, f, rg, c, q = enc.cells.shape
        levels = self.cells.view(g, f, rg, q, c)
        noisy = self.devices.read_noise > 0 or not self.integral or self.adc.step != 1.0
        if noisy or self.force_bit_level:
            risky = torch.ones(g, f, q, c, dtype=torch.bool, device=levels.device)
        else:
            risky = levels.sum(2) * self.plan.max_digit > self.adc.max_code
            most = int(risky.reshape(g, f, q * c).sum(-1).max()) if risky.numel() else 0
            if 2 * most > q * c:  # compacting would save little: run every column densely
                risky = torch.ones_like(risky)
        safe = (~risky).to(torch.float64)
        contrib = (levels.to(torch.float64) * (self.signed_place_value * safe).unsqueeze(2)).sum(
            3
        )  # (G,F,Rg,C)
        contrib = contrib + (self.flip_weight * safe).sum(2).unsqueeze(2)
        exact = contrib.reshape(g, f * rg, c)[:, : enc.rows] + enc.input_sum_coefficient
        self.exact_weight = exact
        per_group = risky.reshape(g, f, q * c).sum(-1)
        self.risky_count = int(per_group.max()) if per_group.numel() else 0
        self.dense = self.risky_count == q * c
        self.risky_flip_correction = (self.flip_weight * risky).sum(2)  # (G, F, C)
        if self.risky_count == 0 or self.dense:
            return
        k = self.risky_count
        flat = risky.reshape(g * f, q * c)
        # risky columns first (stable), then padding columns whose signed_place_value is zeroed
        order = torch.argsort((~flat).to(torch.int8), dim=-1, stable=True)[:, :k]
        valid = torch.gather(flat, 1, order)
        self.risky_cells = torch.gather(self.cells, 2, order.unsqueeze(1).expand(g * f, rg, k)).contiguous()
        if self.conductance_sq.numel():
            self.risky_conductance_sq = torch.gather(
                self.conductance_sq, 2, order.unsqueeze(1).expand(g * f, rg, k)
            ).contiguous()
        mult = torch.gather(self.signed_place_value.reshape(g * f, q * c), 1, order) * valid
        self.risky_signed_place_value = mult.reshape(g, f, k)
        self.risky_columns = (order % c).reshape(g, f, k)

    def reset_stats(self) -> None:
        """Zero the counters (columns are kept)."""
        self.stats = LayerStats(columns=self.stats.columns)

    def forward(self, codes: Tensor, collect: bool = True) -> Tensor:
        """Integer sums (V, G, cols) float64 of integer codes (V, G, rows) through the crossbars."""
        enc = self.encoded
        v = codes.shape[0]
        if collect:
            self.stats.conversions += (
                self.plan.steps * v * enc.groups * enc.row_groups * (enc.columns * enc.physical_columns)
            )
        if self.lossless:
            self.stats.fast_calls += 1
            if collect:
                self.stats.zero_skip.add(count_subarray_steps(codes, self.plan, self.fragment_size))
            return integer_matmul(codes, self.exact_weight, self.max_code)
        self.stats.bit_level_calls += 1
        table = self.pattern_table()
        if table is not None:
            return self._run_table(codes, table, collect)
        if collect:
            self.stats.zero_skip.add(count_subarray_steps(codes, self.plan, self.fragment_size))
        per_vector = self.plan.steps * enc.groups * (enc.row_groups * self.risky_count + enc.columns)
        chunk = max(1, self.chunk_elements // max(1, per_vector))
        outs = [self._bit_level(codes[s : s + chunk], collect) for s in range(0, v, chunk)]
        analog = (
            torch.cat(outs) if outs else codes.new_zeros((0, enc.groups, enc.columns), dtype=torch.float64)
        )
        if self.dense and not enc.input_sum_coefficient:
            return analog
        return analog + integer_matmul(codes, self.exact_weight, self.max_code)

    def set_table_limit(self, limit: int) -> None:
        """Allow per-pattern tables of at most ``limit`` entries (0: always use the GEMM engine)."""
        self.table_limit = limit
        self._table_checked = False
        self._table = None
        self._partials = None

    def pattern_table(self) -> PatternTable | None:
        """The chip's per-pattern tables (:mod:`forms.sim.lookup`), or None where they do not apply.

        They apply without read noise (every conversion is then a function of the step's digit
        pattern), for patterns of at most 16 bits, at most ``table_limit`` table entries, and integer
        ADC outputs (step 1). Built once per programmed chip.
        """
        enc = self.encoded
        if not self._table_checked:
            self._table_checked = True
            self._table = None
            if (
                self.devices.read_noise == 0
                and pattern_bits(self.plan, enc.group_rows) <= MAX_PATTERN_BITS
                and table_size(enc.groups, enc.row_groups, enc.group_rows, enc.columns, self.plan)
                <= self.table_limit
            ):
                g, f, rg, c, q = enc.cells.shape
                u_coef = self.flip_weight.sum(2) + enc.input_sum_coefficient
                self._table = PatternTable.build(
                    self.cells.view(g, f, rg, q, c),
                    self.signed_place_value,
                    u_coef,
                    self.adc,
                    self.integral,
                    self.plan,
                )
        return self._table

    def _partial_tables(self, dtype: torch.dtype) -> PartialSumTables | None:
        """Per-pattern partial sums for :meth:`_bit_level` (None when patterns or tables are too large)."""
        enc = self.encoded
        columns = enc.columns * enc.physical_columns if self.dense else self.risky_count
        bits = pattern_bits(self.plan, enc.group_rows)
        if (
            bits > MAX_PATTERN_BITS
            or 2 * enc.groups * enc.row_groups * (1 << bits) * columns > self.table_limit
        ):
            return None
        if self._partials is None or self._partials.partial.dtype != dtype:
            cells = self.cells if self.dense else self.risky_cells
            gsq = self.conductance_sq if self.dense else self.risky_conductance_sq
            self._partials = PartialSumTables.build(
                cells, gsq if gsq.numel() else None, self.devices.read_noise, max(self.plan.widths), dtype
            )
        return self._partials

    def _run_table(self, codes: Tensor, table: PatternTable, collect: bool) -> Tensor:
        enc = self.encoded
        g, f, rg = enc.groups, enc.row_groups, enc.group_rows
        steps, v = self.plan.steps, codes.shape[0]
        per_vector = g * (f * rg * 8 + f * steps * 3 + steps * enc.columns)
        chunk = max(1, self.chunk_elements // per_vector)
        outs = []
        for s in range(0, v, chunk):
            u = int_codes(codes[s : s + chunk], self.plan)
            frags = fragment_int_view(u, rg)
            if collect:
                same = self.fragment_size == rg
                sub = frags if same else fragment_int_view(u, self.fragment_size)
                self.stats.zero_skip.add(count_fragments(sub, self.plan))
            y, clipped = table.run(fragment_patterns(frags, self.plan), collect)
            if collect:
                self.stats.clipped += clipped
            outs.append(y)
        return torch.cat(outs) if outs else codes.new_zeros((0, g, enc.columns), dtype=torch.float64)

    def _bit_level(self, codes: Tensor, collect: bool) -> Tensor:
        enc = self.encoded
        g, f, rg, c = enc.groups, enc.row_groups, enc.group_rows, enc.columns
        plan = self.plan
        nd, v = plan.steps, codes.shape[0]
        exact_sums = rg * enc.cell_max * plan.max_digit < FLOAT32_EXACT
        dtype = torch.float32 if exact_sums else torch.float64
        tables = self._partial_tables(dtype)
        digit_sum: Tensor | None = None
        if tables is not None:  # partial sums and noise sigmas looked up per digit pattern
            patterns = fragment_patterns(fragment_int_view(int_codes(codes, plan), rg), plan)
            partial, sigma, digit_sum = tables.gather(patterns)
            if sigma is not None:
                add_read_noise_sigma_(partial, sigma, self.generator)
                del sigma
        else:
            digits = plan.digits(codes).to(dtype)  # (nd, V, G, rows)
            pad = f * rg - enc.rows
            if pad:
                digits = torch.nn.functional.pad(digits, (0, pad))
            digits = digits.reshape(nd, v, g, f, rg).permute(2, 3, 0, 1, 4).reshape(g * f, nd * v, rg)
            digit_sum = digits.view(g, f, nd * v, rg).sum(-1)
            cells = self.cells if self.dense else self.risky_cells
            partial = torch.bmm(digits, cells.to(dtype))  # (G*F, nd*V, columns)
            if self.devices.read_noise > 0:
                gsq = self.conductance_sq if self.dense else self.risky_conductance_sq
                variance = torch.bmm(digits.square(), gsq.to(dtype))
                add_read_noise_(partial, variance, self.devices.read_noise, self.generator)
                del variance
        integral = self.integral and self.devices.read_noise == 0
        clipped = self.adc.convert_(partial, integral=integral)
        if collect:
            self.stats.clipped += clipped
        mult = self.signed_place_value if self.dense else self.risky_signed_place_value
        bound = f * float(mult.abs().reshape(g, f, -1).sum(-1).max()) * self.adc.full_scale
        red_dtype = dtype if bound < FLOAT32_EXACT else torch.float64
        if self.dense:
            q = enc.physical_columns
            partial = partial.to(red_dtype).view(g, f, nd * v, q, c)
            partial.mul_(mult.to(red_dtype).view(g, f, 1, q, c))
            red = partial.sum(1).sum(2).to(torch.float64)  # (G, nd*V, C): outer-dimension sums are fast
        else:
            k = self.risky_count
            partial = partial.to(red_dtype).view(g, f, nd * v, k)
            partial.mul_(mult.to(red_dtype).view(g, f, 1, k))
            # (row group, risky column) pairs side by side, then one scatter-add onto the C outputs
            flat = partial.permute(0, 2, 1, 3).reshape(g, nd * v, f * k)
            index = self.risky_columns.reshape(g, 1, f * k).expand(g, nd * v, f * k)
            out = torch.zeros(g, nd * v, c, dtype=red_dtype, device=partial.device)
            red = out.scatter_add_(2, index, flat).to(torch.float64)
        del partial
        if bool(self.risky_flip_correction.any()):
            u = digit_sum.to(torch.float64)  # (G, F, nd*V)
            red = red + torch.einsum("gfn,gfc->gnc", u, self.risky_flip_correction)
        weights = plan.digit_weights(device=red.device).view(1, nd, 1, 1)
        return (red.view(g, nd, v, c) * weights).sum(1).transpose(0, 1)  # (V, G, C)
