"""The bit-accurate crossbar arrays of one mapped layer: integer codes in, exact integer sums out.

Input: integer activation codes ``x`` (vectors, groups, rows), output: ``y`` (vectors, groups, cols)
as float64 tensors holding integers. :class:`CrossbarArray` programs a chip and splits its columns
(:mod:`forms.sim.column_split`); three paths then compute the same hardware:

- **Exact fast path** (:mod:`forms.sim.integer_gemm`). When the cells are ideal and the ADC cannot
  clip any partial sum (every column's level sum times the largest DAC digit fits the ADC), the
  bit-serial pipeline equals one integer GEMM ``x @ W`` (docs/design.md, "Making the simulator fast").
  Zero-skip statistics come from the OR of each sub-array's codes (:mod:`forms.sim.zeroskip`).
- **Table engine** (:mod:`forms.sim.table_engine`): bit-level, deterministic cells (narrow ADC,
  faults, variation), patterns of at most 16 bits.
- **GEMM engine** (:mod:`forms.sim.gemm_engine`): bit-level otherwise, and with read noise wherever
  the sparse errors below do not apply.

Read noise on an otherwise exact chip (integral cells, step-1 ADCs that cannot clip) keeps the exact
fast path and adds the rare conversion errors it causes, drawn from their exact distribution
(:mod:`forms.sim.noise_events`).

Columns that are provably exact always take the fast path; the bit-level engines convert the others.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from forms.sim.adc import Adc
from forms.sim.boundary import check_encoded_weights, layer_codes
from forms.sim.column_split import BitLevelColumns, ChipColumns, engine_layout, split_columns
from forms.sim.devices import ProgrammedCells, program_cells
from forms.sim.encodings import EncodedLayer
from forms.sim.gemm_engine import GemmEngine, packed_columns, partial_sum_tables
from forms.sim.integer_gemm import exact_matmul
from forms.sim.layer_stats import LayerStats
from forms.sim.lookup import PartialSumTables
from forms.sim.noise_events import MAX_EVENT_RATE, NoiseEvents
from forms.sim.packed_fields import PackedColumns
from forms.sim.quant_inputs import DigitPlan, code_dtype
from forms.sim.slice_lanes import SliceLanes, slice_lanes
from forms.sim.spec import DeviceSpec
from forms.sim.table_engine import LayerTable, TableEngine, build_pattern_table, pattern_table_applies
from forms.sim.zeroskip import convert_and_count, narrow_and_count

DEFAULT_TABLE_LIMIT = 1 << 24
"""Largest per-pattern table (entries) the bit-level path builds per layer (float32: 64 MiB)."""


class CrossbarArray(nn.Module):
    """One layer's encoded weights on (simulated) crossbars, with its ADC, DAC plan and devices.

    After programming, the physical columns are split (:mod:`forms.sim.column_split`): *exact* ones
    fold into the integer matrix ``exact_weight``, computed with a single GEMM; the *risky* ones go
    through a bit-level engine, densely or compacted (``risky_*`` buffers).

    Construction refuses (:class:`~forms.errors.ConfigError`) a ``weight_int`` that is not a matrix of
    integers of ``encoded``'s shape and width, and a fragment size other than the one it was encoded
    with (the arrays compute from ``encoded``; ``weight_int`` is kept for reference); a call refuses
    codes that are not finite integers in the plan's range or not shaped (vectors, groups, rows)
    (:mod:`forms.sim.boundary`).
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
        weight_int = check_encoded_weights(weight_int, encoded, fragment_size)
        self.encoded = encoded
        self.adc = adc
        self.plan = plan
        self.fragment_size = fragment_size
        self.devices = devices or DeviceSpec.model_validate({})
        self.chunk_elements = chunk_elements
        self.force_bit_level = force_bit_level
        self.table_limit = table_limit
        self._table: LayerTable | None = None
        self._table_checked = False
        self._partials: PartialSumTables | None = None
        self._partials_checked = False
        self._packed: PackedColumns | None = None
        self._packed_checked = False
        self._lanes: SliceLanes | None = None
        self._lanes_checked = False
        self.stats = LayerStats()
        g, f, _, c, q = encoded.cells.shape
        self.register_buffer("weight_int", weight_int)
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
        # M times a flipped column's place value before the flip (fragment/set sign included), 0 for
        # other columns: its coefficient on U (encodings.py).
        self.register_buffer("flip_weight", -flip * encoded.cell_max * self.signed_place_value)
        self.register_buffer("cells", engine_layout(encoded.cells.to(torch.float32)))
        self.register_buffer("conductance_sq", torch.zeros(0))
        for name in ("exact_weight", "risky_cells", "risky_conductance_sq", "risky_signed_place_value"):
            self.register_buffer(name, torch.zeros(0))
        self.register_buffer("risky_columns", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("risky_flip_correction", torch.zeros(0))
        self.integral = True
        self.generator: torch.Generator | None = None
        self.noise_events: NoiseEvents | None = None
        """Sparse read-noise errors of an otherwise exact chip (None: no read noise or dense draws)."""
        col_sum_max = int(encoded.cells.sum(2).max()) if encoded.cells.numel() else 0
        self.max_partial = col_sum_max * plan.max_digit
        """Largest partial sum the ideal cells can produce for any input."""
        self.stats.columns = c * q
        self.max_code = 1 << plan.bits
        """Bound on |code| of this layer's inputs."""
        self.risky_count = 0
        self.dense = False
        self.exact_weight_max = 0.0
        """Largest |entry| of ``exact_weight`` (its GEMM's dtype bound)."""
        self._split_columns()
        if not self.devices.ideal:
            self.program(0)  # a deterministic chip until program(seed) draws the one wanted

    @property
    def lossless(self) -> bool:
        """True when no conversion of this chip can clip or round (so one integer GEMM is the noiseless
        hardware; read noise, if any, then comes as :attr:`noise_events`)."""
        return self.risky_count == 0

    @property
    def engine(self) -> str:
        """Which path the last run took: ``exact`` (lossless chip), ``events`` (lossless chip plus
        sparse read-noise errors), ``table`` or ``gemm``."""
        if self.lossless:
            return "exact" if self.noise_events is None else "events"
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
        self.cells = engine_layout(prog.levels)
        self.conductance_sq = (
            engine_layout(prog.conductance_sq)
            if prog.conductance_sq is not None
            else torch.zeros(0, device=device)
        )
        self.integral = prog.integral
        self._forget_tables()
        self._split_columns()

    def _chip_columns(self) -> ChipColumns:
        """The programmed chip's columns in the engine layout."""
        return ChipColumns(self.cells, self.conductance_sq, self.signed_place_value, self.flip_weight)

    def _split_columns(self) -> None:
        """Fold exact columns into ``exact_weight``; lay the risky ones out for the bit-level engines."""
        events = self._sparse_noise()
        noisy = (self.devices.read_noise > 0 and events is None) or not self.integral or self.adc.step != 1.0
        split = split_columns(
            self.encoded, self._chip_columns(), self.plan, self.adc, noisy or self.force_bit_level
        )
        if events is not None and split.bit_level.count:  # columns may clip: dense draws everywhere
            events = None
            split = split_columns(self.encoded, self._chip_columns(), self.plan, self.adc, True)
        self.noise_events = events
        risky = split.bit_level
        self.exact_weight = split.exact_weight
        self.exact_weight_max = float(split.exact_weight.abs().max()) if split.exact_weight.numel() else 0.0
        self.risky_flip_correction = risky.flip_correction
        self.risky_count, self.dense = risky.count, risky.dense
        if risky.count and not risky.dense:
            self.risky_cells = risky.cells
            self.risky_conductance_sq = risky.conductance_sq
            self.risky_signed_place_value = risky.signed_place_value
            self.risky_columns = risky.output_columns

    def _sparse_noise(self) -> NoiseEvents | None:
        """The sparse read-noise sampler where it applies: read noise on integral cells, step-1 ADCs,
        not forced bit-level, and an error rate of at most :data:`MAX_EVENT_RATE` per conversion."""
        if self.devices.read_noise == 0 or not self.integral or self.adc.step != 1.0 or self.force_bit_level:
            return None
        if not self.conductance_sq.numel():  # not programmed yet
            return None
        events = NoiseEvents.build(self._chip_columns(), self.plan, self.adc, self.devices.read_noise)
        return events if events.max_rate <= MAX_EVENT_RATE else None

    def _dense_columns(self) -> BitLevelColumns:
        """Every converted column, in the dense layout."""
        q, c = self.encoded.physical_columns, self.encoded.columns
        return BitLevelColumns(
            self.cells,
            self.conductance_sq,
            self.signed_place_value,
            self.risky_columns,
            self.flip_weight.sum(2),
            q * c,
            dense=True,
        )

    def _bit_level_columns(self) -> BitLevelColumns:
        """The columns the bit-level engines convert (every column when dense)."""
        if self.dense:
            return self._dense_columns()
        return BitLevelColumns(
            self.risky_cells,
            self.risky_conductance_sq,
            self.risky_signed_place_value,
            self.risky_columns,
            self.risky_flip_correction,
            self.risky_count,
            dense=False,
        )

    def reset_stats(self) -> None:
        """Zero the counters (columns are kept)."""
        self.stats = LayerStats(columns=self.stats.columns)

    def forward(self, codes: Tensor, collect: bool = True, checked: bool = False) -> Tensor:
        """Integer sums (V, G, cols) float64 of integer codes (V, G, rows) through the crossbars.

        ``collect`` counts conversions, clips and zero-skips into :attr:`stats`. Raises
        :class:`~forms.errors.ConfigError` for codes that are not finite integers in the plan's range or
        not shaped for the layer. ``checked`` says the caller has checked the values already (a
        simulated layer does, before a convolution copies each code into many vectors): only the shape
        is checked then.
        """
        codes = layer_codes(codes, self.encoded, self.plan, values_checked=checked)
        enc = self.encoded
        stats = self.stats if collect else None
        if stats is not None:
            stats.conversions += (
                self.plan.steps
                * codes.shape[0]
                * enc.groups
                * enc.row_groups
                * (enc.columns * enc.physical_columns)
            )
        if self.lossless:
            self.stats.fast_calls += 1
            sums = self._exact_sums(codes, stats)
            if self.noise_events is None:
                return sums
            errors, clipped = self.noise_events.errors(codes, self.generator)
            if stats is not None:
                stats.clipped += clipped
            return sums + errors
        self.stats.bit_level_calls += 1
        return self._bit_level_sums(codes.to(code_dtype(self.plan.bits)), stats)

    def _bit_level_sums(self, codes: Tensor, stats: LayerStats | None) -> Tensor:
        """Sums of integer ``codes`` through the table engine, or the GEMM engine plus the exact columns."""
        table = self.pattern_table()
        if table is not None:
            engine = TableEngine(table, self.encoded, self.plan)
            analog = engine.run(codes, self.chunk_elements, stats, checked=True)
            if table.folds_input_sum:
                return analog
        else:
            gemm, digit_codes = self.gemm_engine(), codes
            if stats is not None:
                lanes = self._counted_lanes(codes, stats)
                if gemm.lanes is not None and lanes.dtype == torch.uint8:  # the digits' bytes
                    digit_codes = lanes
            analog = gemm.run(digit_codes, self.chunk_elements, stats, checked=True)
        if self.dense and not self.encoded.input_sum_coefficient:
            return analog
        return analog + self._exact_sums(codes)

    def _counted_lanes(self, codes: Tensor, stats: LayerStats) -> Tensor:
        """``codes`` narrowed once (:func:`~forms.sim.zeroskip.narrow_codes`), their zero-skips counted
        into ``stats`` from those lanes, which the caller's arithmetic then reads too."""
        lanes, counts = narrow_and_count(codes, self.plan, self.encoded)
        stats.zero_skip.add(counts)
        return lanes

    def _exact_sums(self, codes: Tensor, stats: LayerStats | None = None) -> Tensor:
        """The exact columns' sums (and the input-sum term): the exact GEMM of checked codes
        (:func:`~forms.sim.integer_gemm.exact_matmul`), counting their zero-skips into ``stats`` while it
        converts them (:func:`~forms.sim.zeroskip.convert_and_count`) where given."""
        convert = None
        if stats is not None:

            def convert(part: Tensor, operand: Tensor) -> None:
                stats.zero_skip.add(convert_and_count(part, operand, self.plan, self.encoded))

        return exact_matmul(codes, self.exact_weight, self.max_code, self.exact_weight_max, convert)

    def set_table_limit(self, limit: int) -> None:
        """Allow per-pattern tables of at most ``limit`` entries (0: always use the GEMM engine)."""
        self.table_limit = limit
        self._forget_tables()

    def _forget_tables(self) -> None:
        """Drop the per-pattern tables so the next bit-level call rebuilds them for the current chip."""
        self._table_checked = False
        self._table = None
        self._partials_checked = False
        self._partials = None
        self._packed_checked = False
        self._packed = None
        self._lanes_checked = False
        self._lanes = None

    def pattern_table(self) -> LayerTable | None:
        """The chip's per-pattern tables (:mod:`forms.sim.table_engine`), or None where they do not apply.

        They apply without read noise (every conversion is then a function of the step's digit
        pattern), for patterns of at most 16 bits, at most ``table_limit`` table entries, and integer
        ADC outputs (step 1). Built once per programmed chip.
        """
        if not self._table_checked:
            self._table_checked = True
            self._table = None
            if pattern_table_applies(self.encoded, self.plan, self.devices.read_noise, self.table_limit):
                self._table = build_pattern_table(
                    self.encoded,
                    self._bit_level_columns(),
                    self._dense_columns(),
                    self.adc,
                    self.plan,
                    self.integral,
                )
        return self._table

    def partial_tables(self) -> PartialSumTables | None:
        """The chip's per-pattern partial sums for the GEMM engine (:func:`partial_sum_tables`), or None
        where patterns or tables are too large. Built once per programmed chip."""
        if not self._partials_checked:
            self._partials_checked = True
            self._partials = partial_sum_tables(
                self.encoded, self.plan, self._bit_level_columns(), self.devices.read_noise, self.table_limit
            )
        return self._partials

    def gemm_engine(self) -> GemmEngine:
        """The GEMM engine of this chip's bit-level columns."""
        return GemmEngine(
            self.encoded,
            self.plan,
            self.adc,
            self._bit_level_columns(),
            self.devices.read_noise,
            self.integral,
            self.generator,
            self.partial_tables(),
            self._packed_columns(),
            self._slice_lanes(),
        )

    def _packed_columns(self) -> PackedColumns | None:
        """The bit-level columns packed for the GEMM engine (:func:`packed_columns`), built once per
        programmed chip."""
        if not self._packed_checked:
            self._packed_checked = True
            self._packed = packed_columns(
                self.plan, self._bit_level_columns(), self.devices.read_noise, self.integral
            )
        return self._packed

    def _slice_lanes(self) -> SliceLanes | None:
        """The signed-slice GEMM of a chip whose conversions are all the identity
        (:func:`forms.sim.slice_lanes.slice_lanes`), built once per programmed chip."""
        if not self._lanes_checked:
            self._lanes_checked = True
            self._lanes = slice_lanes(
                self.encoded,
                self.plan,
                self._bit_level_columns(),
                self.adc,
                self.integral,
                self.devices.read_noise,
            )
        return self._lanes
