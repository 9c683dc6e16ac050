"""Input zero-skipping and row-driver activity per sub-array and per crossbar.

Inputs stream as digits (one per analog step, see :class:`forms.sim.quant_inputs.DigitPlan`, LSB step
first, the two's-complement sign step last). For one input vector and one sub-array of R rows:

- without skipping, every step converts: ``steps`` conversions rounds;
- "leading" rule: the sub-array stops after the highest step at which any of its R inputs has a
  non-zero digit (max over the R inputs of their digit length); the steps above are skipped;
- "bitplane" rule: every step at which all R digits are zero is skipped.

A conversion round of a sub-array converts every physical column it spans: ``columns`` = weight
columns x slices x crossbar sets (the unit column of the offset encoding is not counted). So

    conversions_total            = sub-array rounds x columns,
    conversions_skipped_leading  = (rounds skipped by "leading") x columns,
    conversions_skipped_bitplane = (rounds skipped by "bitplane") x columns.

A crossbar *read cycle* drives one step's digits into the ``tile_rows`` rows of one crossbar (a row
tile: ``crossbar.rows`` consecutive rows of the layer's matrix) and reads all its columns. The crossbars
sharing a row tile (its column tiles, on each crossbar set) receive the same digits, so

    reads_total = vectors x groups x row tiles x steps x (column tiles x crossbar sets),

and a read is skipped when EVERY sub-array of its row tile is idle at that step: under "leading", above
the highest non-zero digit of all the tile's rows; under "bitplane", when all the tile's digits are zero
(the same two rules applied to the OR of the tile's codes). A crossbar with only some sub-arrays idle
still reads (its idle sub-arrays only skip their conversions).

Row drivers (DACs) apply one digit per (row, step): ``digits_total`` = vectors x groups x rows x steps
(real rows only, not the zero padding of a short tile), of which ``digits_nonzero`` are non-zero; a zero
digit leaves its row driver idle.

Sub-arrays of a short last tile are padded with zero inputs (they never add a needed step). Skipping
never changes a result: a step whose inputs are all zero sums to exactly zero.

How it is counted, in one read of the codes: they are narrowed to 8- or 16-bit lanes (the low
``plan.bits`` bits, all that a rule reads) and packed 8 or 4 to a 64-bit word. A digit of an OR of
codes is non-zero exactly when that digit of some code is, so everything follows from ORs and digit
*flags* (one bit per non-zero digit, at the digit's least significant bit): the non-zero digits are
the popcount of the codes' flags; a sub-array's "bitplane" steps the popcount of the flags of its OR
(its words OR-ed, then each word's lanes folded onto one), its "leading" steps the popcount of those
flags smeared down to the lowest digit; a row tile's reads the same two counts of the OR of its
sub-arrays' ORs. The passes run on one intra-op thread; a caller that also computes with the codes
narrows them once for both (:func:`narrow_codes`); the exact path counts while it converts the codes
for its GEMM (:func:`convert_and_count`). Where the compiled pass applies
(:mod:`forms.sim.zeroskip_native`) it counts in one read of the codes instead of these passes.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from forms.sim.bitplanes import int_codes
from forms.sim.digit_lanes import lane_dtype, lane_masks
from forms.sim.quant_inputs import DigitPlan
from forms.sim.workspace import Workspace, thread_scratch
from forms.sim.zeroskip_native import count_native, native_applies

if TYPE_CHECKING:
    from forms.sim.encodings import EncodedLayer


@dataclass
class ZeroSkipCounts:
    """Sub-array steps, crossbar reads and input digits of one layer (module docstring).

    Multiply the sub-array rounds by the columns to get conversions; reads already count every
    crossbar of a row tile.
    """

    rounds_total: int = 0
    rounds_needed_leading: int = 0
    rounds_needed_bitplane: int = 0
    reads_total: int = 0
    """Crossbar read cycles without skipping."""
    reads_needed_leading: int = 0
    """Read cycles left under "leading" (the rest skip: every sub-array of the crossbar idle)."""
    reads_needed_bitplane: int = 0
    """Read cycles left under "bitplane"."""
    digits_total: int = 0
    """(row, step) input digits applied by the row drivers."""
    digits_nonzero: int = 0
    """Input digits that are non-zero (the rest leave their row driver idle)."""

    def add(self, other: ZeroSkipCounts) -> None:
        """Accumulate ``other`` into this record."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


NARROWED_SCRATCH_CODES = 1 << 24
"""Most codes :func:`narrow_codes` narrows into the thread's kept scratch buffer (16 MiB of 8-bit
lanes; a kept buffer stays allocated, so larger calls take one of their own)."""

_HALF_WIDTH = {torch.int64: torch.int32, torch.int32: torch.int16, torch.int16: torch.uint8}
"""The integer dtype of half the width, for folding a word's two halves onto one."""


@contextlib.contextmanager
def _one_intra_op_thread() -> Iterator[None]:
    """Run the enclosed torch ops on one intra-op thread (the calling thread's count restored after):
    the counting's passes are short and memory-bound, and split over threads each pays a fork/join
    that costs more than the split saves (issue 20's workload, polarized R = 8, 2 threads: a count
    took 8.1 ms split, 4.9 ms on one thread)."""
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


def _lane_codes(codes: Tensor, plan: DigitPlan, ws: Workspace, role: str = "lanes") -> Tensor:
    """Integer ``codes`` on the narrowest lane (a wrapping copy into ``ws``'s buffer ``role``: it keeps
    the low ``plan.bits`` bits, all that the rules read; codes on that lane already are returned as
    they are), or as :func:`int_codes` beyond 16 bits."""
    lane = lane_dtype(plan)
    if codes.is_floating_point() or lane is None:
        codes = int_codes(codes, plan)
    if lane is None or codes.dtype == lane:
        return codes
    return ws.take(role, tuple(codes.shape), lane, codes.device).copy_(codes)


def narrow_codes(codes: Tensor, plan: DigitPlan) -> Tensor:
    """Integer ``codes`` on the narrowest lane holding their ``plan.bits`` low bits (uint8 up to 8 bits,
    int16 up to 16; :func:`int_codes` beyond), for a caller that counts them (the counting reads them
    as they are) and computes with them (the GEMM engine reads 8-bit digits' bytes). Up to
    :data:`NARROWED_SCRATCH_CODES` codes they are this thread's scratch buffer, valid until its next
    call."""
    return _lane_codes(codes, plan, _narrowed_workspace(codes), "narrowed")


def _narrowed_workspace(codes: Tensor) -> Workspace:
    """Where ``codes`` are narrowed: this thread's kept scratch up to :data:`NARROWED_SCRATCH_CODES`
    codes, a workspace of their own beyond."""
    return thread_scratch() if codes.numel() <= NARROWED_SCRATCH_CODES else Workspace()


def _word_blocks(lanes: Tensor) -> list[Tensor]:
    """Integer ``lanes`` (any shape) packed 8, 4, 2 or 1 to an int64 word: the whole words (a view of
    contiguous lanes), then the lanes left over in one zero-padded word (zero lanes have no non-zero
    digit, so they count nothing)."""
    flat = lanes.reshape(-1)
    per_word = 8 // flat.element_size()
    whole = flat.numel() // per_word * per_word
    blocks = [flat[:whole].contiguous().view(torch.int64)] if whole else []
    if whole < flat.numel():
        tail = flat.new_zeros(per_word)
        tail[: flat.numel() - whole] = flat[whole:]
        blocks.append(tail.view(torch.int64))
    return blocks


@functools.lru_cache(maxsize=4)
def _byte_popcounts(device: str) -> Tensor:
    """Set bits of every byte value (256,) int64."""
    return torch.tensor([bin(value).count("1") for value in range(256)], dtype=torch.int64, device=device)


def _popcount_bytes(words: Tensor) -> int:
    """Set bits of int64 ``words`` from a histogram of their bytes (any device)."""
    histogram = torch.bincount(words.view(torch.uint8), minlength=256)
    return int(torch.dot(histogram, _byte_popcounts(str(words.device))))


def _popcount(words: Tensor) -> int:
    """Set bits of int64 ``words``: numpy's ``bitwise_count`` on the CPU (summed on 32-bit lanes where no
    total can overflow them: at most 64 set bits a word), else :func:`_popcount_bytes`."""
    if words.device.type != "cpu":
        return _popcount_bytes(words)
    flat = words.reshape(-1).numpy().view(np.uint64)
    return int(np.bitwise_count(flat).sum(dtype=np.uint32 if flat.size < 1 << 26 else np.uint64))


def _digit_flags(words: Tensor, plan: DigitPlan, lane_bits: int, ws: Workspace) -> Tensor:
    """int64 ``words`` of packed codes (lanes of ``lane_bits`` bits) with exactly one set bit per
    non-zero digit: each digit's bits are OR-ed down onto its least significant bit (a right shift by
    k < w stays inside a w-bit digit) and only those bits are kept, in place in ``ws``'s buffers (three
    passes per bit of the widest digit beyond the first). 1-bit digits of codes without bits above them
    (unsigned, or signed filling the lane) are the words themselves."""
    if all(w == 1 for w in plan.widths) and (not plan.signed or plan.bits == lane_bits):
        return words
    masks = lane_masks(plan, lane_bits)
    flags = ws.take("flags", tuple(words.shape), words.dtype, words.device)
    torch.bitwise_and(words, masks.flags, out=flags)
    if masks.wider:
        shifted = ws.take("flags-shifted", tuple(words.shape), words.dtype, words.device)
        for k, mask in masks.wider:
            flags |= torch.bitwise_right_shift(words, k, out=shifted).bitwise_and_(mask)
    return flags


def _flags_up_to_last(flags: Tensor, plan: DigitPlan, lane_bits: int, ws: Workspace) -> Tensor:
    """Digit flags (:func:`_digit_flags`) plus the flag of every digit below each lane's highest
    non-zero digit, so that their popcount is the "leading" rule's steps: each lane is smeared down
    (OR-ed with itself shifted right by 1, 2, 4, ..., bits from the lane above masked off) and only
    the digits' flag positions are kept. The result is a view of ``ws``'s buffers."""
    masks = lane_masks(plan, lane_bits)
    smeared = ws.take("smeared", tuple(flags.shape), flags.dtype, flags.device).copy_(flags)
    shifted = ws.take("smear-shifted", tuple(flags.shape), flags.dtype, flags.device)
    for k, lane_mask in masks.smear:
        smeared |= torch.bitwise_right_shift(smeared, k, out=shifted).bitwise_and_(lane_mask)
    return smeared.bitwise_and_(masks.flags)


def count_ored(ored: Tensor, plan: DigitPlan, ws: Workspace | None = None) -> ZeroSkipCounts:
    """Counts of sub-arrays given the OR of each one's R integer codes (any shape; lane dtype, int32 or
    int64; bits above ``plan.bits``, the two's complement sign extension, are ignored).

    A digit of the OR is non-zero exactly when that digit of some code is, so the "bitplane" rule's
    steps are the popcount of the OR's digit flags and the "leading" rule's the popcount of the flags
    smeared down to the lowest digit (:func:`_flags_up_to_last`), both over words of packed lanes.
    Scratch buffers come from ``ws`` (a new workspace when None).
    """
    ws = ws or Workspace()
    counts = ZeroSkipCounts(rounds_total=int(ored.numel()) * plan.steps)
    lane_bits = 8 * ored.element_size()
    for words in _word_blocks(ored):
        flags = _digit_flags(words, plan, lane_bits, ws)
        counts.rounds_needed_bitplane += _popcount(flags)
        counts.rounds_needed_leading += _popcount(_flags_up_to_last(flags, plan, lane_bits, ws))
    return counts


def _nonzero_digits(u: Tensor, plan: DigitPlan, ws: Workspace) -> int:
    """Non-zero digits of integer codes ``u`` (lane dtype or int32/int64), over every element: the
    popcount of the codes' digit flags, packed 8, 4, 2 or 1 to a 64-bit word."""
    lane_bits = 8 * u.element_size()
    return sum(_popcount(_digit_flags(words, plan, lane_bits, ws)) for words in _word_blocks(u))


def _or_reduce(u: Tensor, ws: Workspace | None = None, role: str = "") -> Tensor:
    """Bitwise OR over the last dimension (log2 of its size halving passes; with ``ws``, into two of
    its buffers named after ``role`` in turn)."""
    width, level = u.shape[-1], 0
    while width > 1:
        half = width // 2
        low, high = u[..., :half], u[..., half : 2 * half]
        out = None if ws is None else ws.take(f"{role}-or{level % 2}", tuple(low.shape), u.dtype, u.device)
        head = torch.bitwise_or(low, high, out=out)
        if width % 2:
            head[..., :1] |= u[..., 2 * half :]
        u, width, level = head, half, level + 1
    return u[..., 0]


def _fold_words(words: Tensor, lane: torch.dtype, ws: Workspace, role: str) -> Tensor:
    """OR of the lanes of each int64 word, as ``lane``: each word's two halves are OR-ed into one of
    half the width (into ``ws``'s buffers named after ``role``), down to one lane."""
    folded = words
    while folded.element_size() > lane.itemsize:
        halves = folded.unsqueeze(-1).view(_HALF_WIDTH[folded.dtype])
        out = ws.take(f"{role}-{halves.dtype}", tuple(folded.shape), halves.dtype, folded.device)
        folded = torch.bitwise_or(halves[..., 0], halves[..., 1], out=out)
    return folded.view(lane)


def _run_ors(u: Tensor, run: int, ws: Workspace, role: str) -> Tensor:
    """OR of each run of ``run`` lanes of ``u`` (..., rows): (..., ceil(rows / run)), a short last run
    OR-ed on its own (the zero rows that pad it would not change its OR): the sub-arrays' ORs of
    codes, the row tiles' of those. Where the runs (the short one too) fill whole 64-bit words, each
    run's words are OR-ed and each word's lanes folded onto one (:func:`_fold_words`). The result may
    be a view of ``ws``'s buffers named after ``role``."""
    full, rest = divmod(u.shape[-1], run)
    lanes = 8 // u.element_size()
    if lanes < 4 or run % lanes or rest % lanes:
        parts = [_or_reduce(u[..., : full * run].unflatten(-1, (full, run)))] if full else []
        if rest:
            parts.append(_or_reduce(u[..., full * run :]).unsqueeze(-1))
    else:
        words, per_run = u.contiguous().view(torch.int64), run // lanes
        runs = [words[..., : full * per_run].unflatten(-1, (full, per_run))] if full else []
        if rest:
            runs.append(words[..., full * per_run :].unsqueeze(-2))
        roles = [f"{role}{i}" for i in range(len(runs))]  # the short run's buffers apart
        parts = [_fold_words(_or_reduce(w, ws, r), u.dtype, ws, r) for w, r in zip(runs, roles, strict=True)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, -1)


def count_subarray_steps(
    codes: Tensor,
    plan: DigitPlan,
    fragment_size: int,
    chunk_elements: int = 1 << 23,
    tile_rows: int | None = None,
    crossbars_per_tile: int = 1,
    compiled: bool = True,
) -> ZeroSkipCounts:
    """Count sub-array steps, crossbar reads and input digits of integer ``codes`` (vectors, groups, rows).

    ``codes`` holds exact integers (any dtype); signed codes are read in two's complement. A read cycle
    covers a row tile of ``tile_rows`` rows (a multiple of ``fragment_size``; None: one sub-array) on
    each of its ``crossbars_per_tile`` crossbars (column tiles x crossbar sets). Counted in one compiled
    pass where it applies and ``compiled`` (:mod:`forms.sim.zeroskip_native`), else by torch passes over
    chunks of about ``chunk_elements`` inputs (their scratch buffers, about 2 bytes per input of up to
    8-bit codes, 4 up to 16-bit, kept per thread for the next call).
    """
    tile_rows = fragment_size if tile_rows is None else tile_rows
    if fragment_size < 1 or tile_rows < fragment_size or tile_rows % fragment_size:
        raise ValueError(
            f"tile_rows={tile_rows} is not a positive multiple of the sub-array rows {fragment_size}"
        )
    if compiled and codes.numel() and native_applies(codes, plan):
        return _compiled_counts(codes, plan, fragment_size, tile_rows, crossbars_per_tile)
    vectors, groups, rows = codes.shape
    chunks = -(-vectors * groups * rows // chunk_elements)
    chunk = max(1, -(-vectors // max(1, chunks)))  # even chunks
    counts = ZeroSkipCounts(digits_total=vectors * groups * rows * plan.steps)
    if rows == 0:
        return counts
    ws, per_tile = thread_scratch(), tile_rows // fragment_size
    with _one_intra_op_thread():
        for start in range(0, vectors, chunk):
            u = _lane_codes(codes[start : start + chunk], plan, ws)
            counts.digits_nonzero += _nonzero_digits(u, plan, ws)
            subarrays = _run_ors(u, fragment_size, ws, "subarrays")
            tiles = count_ored(subarrays, plan, ws)
            counts.add(tiles)
            if per_tile > 1:
                tiles = count_ored(_run_ors(subarrays, per_tile, ws, "tiles"), plan, ws)
            counts.reads_total += tiles.rounds_total * crossbars_per_tile
            counts.reads_needed_leading += tiles.rounds_needed_leading * crossbars_per_tile
            counts.reads_needed_bitplane += tiles.rounds_needed_bitplane * crossbars_per_tile
    return counts


def _compiled_counts(
    codes: Tensor,
    plan: DigitPlan,
    fragment_size: int,
    tile_rows: int,
    crossbars_per_tile: int,
    out: Tensor | None = None,
) -> ZeroSkipCounts:
    """:func:`count_subarray_steps` by :func:`~forms.sim.zeroskip_native.count_native` (copying the
    codes into ``out`` when given), with the totals from the shapes."""
    vectors, groups, rows = codes.shape
    counted = count_native(codes, plan, fragment_size, tile_rows, out)
    per_vector = vectors * groups * plan.steps
    return ZeroSkipCounts(
        rounds_total=per_vector * -(-rows // fragment_size),
        rounds_needed_leading=counted.rounds_needed_leading,
        rounds_needed_bitplane=counted.rounds_needed_bitplane,
        reads_total=per_vector * -(-rows // tile_rows) * crossbars_per_tile,
        reads_needed_leading=counted.reads_needed_leading * crossbars_per_tile,
        reads_needed_bitplane=counted.reads_needed_bitplane * crossbars_per_tile,
        digits_total=per_vector * rows,
        digits_nonzero=counted.digits_nonzero,
    )


def narrow_and_count(codes: Tensor, plan: DigitPlan, encoded: EncodedLayer) -> tuple[Tensor, ZeroSkipCounts]:
    """:func:`narrow_codes` of ``codes`` and their :func:`count_layer_activity`, in one pass where the
    compiled counting applies (the lanes then written by it)."""
    lane = lane_dtype(plan)
    if lane is None or not (codes.numel() and native_applies(codes, plan)):
        narrowed = narrow_codes(codes, plan)
        return narrowed, count_layer_activity(narrowed, plan, encoded)
    lanes = None
    if codes.dtype != lane:
        lanes = _narrowed_workspace(codes).take("narrowed", tuple(codes.shape), lane, codes.device)
    counts = _compiled_counts(
        codes, plan, encoded.fragment_size, encoded.crossbar_rows, encoded.crossbars_per_row_tile, lanes
    )
    return (codes if lanes is None else lanes), counts


def convert_and_count(
    codes: Tensor, values: Tensor, plan: DigitPlan, encoded: EncodedLayer
) -> ZeroSkipCounts:
    """Copy integer ``codes`` (V, G, rows) into the float GEMM operand ``values`` (G, V, rows) and return
    their :func:`count_layer_activity`: in one compiled pass where it applies, so that the codes are read
    once for both (the exact path's conversion, :func:`~forms.sim.integer_gemm.exact_matmul`)."""
    fused = values.dtype in (torch.float32, torch.float64) and values.is_contiguous()
    if fused and codes.numel() and native_applies(codes, plan):
        return _compiled_counts(
            codes, plan, encoded.fragment_size, encoded.crossbar_rows, encoded.crossbars_per_row_tile, values
        )
    values.copy_(codes.transpose(0, 1))
    return count_layer_activity(codes, plan, encoded)


def count_layer_activity(
    codes: Tensor, plan: DigitPlan, encoded: EncodedLayer, compiled: bool = True
) -> ZeroSkipCounts:
    """:func:`count_subarray_steps` of ``codes`` on ``encoded``'s crossbars: sub-arrays of its R rows,
    reads of its crossbar rows on every crossbar a row tile spans (``compiled`` as there)."""
    return count_subarray_steps(
        codes,
        plan,
        encoded.fragment_size,
        tile_rows=encoded.crossbar_rows,
        crossbars_per_tile=encoded.crossbars_per_row_tile,
        compiled=compiled,
    )
