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
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from forms.sim.bitplanes import int_codes
from forms.sim.quant_inputs import DigitPlan

if TYPE_CHECKING:
    from forms.sim.encodings import EncodedLayer

LOOKUP_BITS = 16
"""Codes up to this many bits count zero-skips with lookup tables of 2^bits entries."""


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


@functools.lru_cache(maxsize=32)
def _needed_steps_tables(plan: DigitPlan, values: int, device: str) -> tuple[Tensor, Tensor]:
    """Steps needed under "leading" and "bitplane" for every OR value below ``values`` (int64 each)."""
    leading, bitplane = _steps_needed(torch.arange(values, dtype=torch.int64), plan)
    return leading.to(device), bitplane.to(device)


def _histogram(ored: Tensor, plan: DigitPlan) -> Tensor | None:
    """How often each OR value occurs (None for codes wider than ``LOOKUP_BITS``): byte lanes are
    counted as they are (256 values, the bits above ``plan.bits`` ignored by the tables), wider codes
    on their low ``plan.bits`` bits."""
    flat = ored.reshape(-1)
    if flat.dtype == torch.uint8:
        return torch.bincount(flat, minlength=256)
    if plan.bits > LOOKUP_BITS:
        return None
    low = torch.bitwise_and(flat.to(torch.int64), (1 << plan.bits) - 1)
    return torch.bincount(low, minlength=1 << plan.bits)


def _steps_needed(ored: Tensor, plan: DigitPlan) -> tuple[Tensor, Tensor]:
    """Steps needed under "leading" (up to the last non-zero digit) and "bitplane" (non-zero digits)
    for each OR value in ``ored``, int64 of ``ored``'s shape."""
    masks = [((1 << w) - 1) << s for s, w in zip(plan.shifts, plan.widths, strict=True)]
    present = torch.stack([torch.bitwise_and(ored, m) != 0 for m in masks])  # (steps, ...)
    idx = torch.arange(1, plan.steps + 1, device=ored.device, dtype=torch.int64)
    return (present * idx.view(-1, *([1] * ored.dim()))).amax(0), present.sum(0)


def _or_reduce(u: Tensor) -> Tensor:
    """Bitwise OR over the last dimension (log2 of its size halving passes)."""
    width = u.shape[-1]
    while width > 1:
        half = width // 2
        head = torch.bitwise_or(u[..., :half], u[..., half : 2 * half])
        if width % 2:
            head[..., :1] |= u[..., 2 * half :]
        u, width = head, half
    return u[..., 0]


def count_ored(ored: Tensor, plan: DigitPlan) -> ZeroSkipCounts:
    """Counts of sub-arrays given the OR of each one's R integer codes (any shape, any int dtype).

    Both rules depend only on which digits of the OR are non-zero, so for codes of at most
    ``LOOKUP_BITS`` bits the counts are a histogram of the OR values dotted with two per-value tables;
    wider codes test each step's digit mask. Bits above ``plan.bits`` (two's complement sign
    extension) are ignored.
    """
    counts = ZeroSkipCounts(rounds_total=int(ored.numel()) * plan.steps)
    histogram = _histogram(ored, plan)
    if histogram is not None:
        leading, bitplane = _needed_steps_tables(plan, histogram.numel(), str(ored.device))
        counts.rounds_needed_leading = int(torch.dot(histogram, leading))
        counts.rounds_needed_bitplane = int(torch.dot(histogram, bitplane))
        return counts
    leading, bitplane = _steps_needed(ored, plan)
    counts.rounds_needed_bitplane = int(bitplane.sum())
    counts.rounds_needed_leading = int(leading.sum())
    return counts


def _lane_dtype(plan: DigitPlan) -> torch.dtype | None:
    """The narrowest integer lane holding a code's ``plan.bits`` low bits (None beyond 16 bits)."""
    if plan.bits <= 8:
        return torch.uint8
    return torch.int16 if plan.bits <= 16 else None


_HALF_WIDTH = {torch.int64: torch.int32, torch.int32: torch.int16, torch.int16: torch.uint8}
"""The integer dtype of half the width, for folding a word's two halves onto one."""


def _or_subarrays(u: Tensor, fragment_size: int) -> Tensor:
    """OR of each sub-array of lane codes ``u`` (..., rows), rows a multiple of ``fragment_size``:
    (..., rows // fragment_size), in ``u``'s dtype.

    Where a sub-array fills whole 64-bit words, its words are OR-ed together and each word's halves
    are then OR-ed down to one lane (int64 -> int32 -> int16 -> uint8 views), so the work runs on
    words rather than on single lanes.
    """
    lanes = 8 // u.element_size()
    subarrays = u.shape[-1] // fragment_size
    if lanes < 4 or fragment_size % lanes:
        return _or_reduce(u.unflatten(-1, (subarrays, fragment_size)))
    words = u.contiguous().view(torch.int64).unflatten(-1, (subarrays, fragment_size // lanes))
    ored = _or_reduce(words)
    while ored.element_size() > u.element_size():
        halves = ored.unsqueeze(-1).view(_HALF_WIDTH[ored.dtype])
        ored = torch.bitwise_or(halves[..., 0], halves[..., 1])
    return ored.view(u.dtype)


@functools.lru_cache(maxsize=4)
def _byte_popcounts(device: str) -> Tensor:
    """Set bits of every byte value (256,) int64."""
    return torch.tensor([bin(value).count("1") for value in range(256)], dtype=torch.int64, device=device)


def _popcount_bytes(words: Tensor) -> int:
    """Set bits of int64 ``words`` from a histogram of their bytes (any device)."""
    histogram = torch.bincount(words.view(torch.uint8), minlength=256)
    return int(torch.dot(histogram, _byte_popcounts(str(words.device))))


def _popcount(words: Tensor) -> int:
    """Set bits of int64 ``words``: numpy's ``bitwise_count`` on the CPU, else :func:`_popcount_bytes`."""
    if words.device.type == "cpu":
        return int(np.bitwise_count(words.numpy().view(np.uint64)).sum())
    return _popcount_bytes(words)


def _digit_lsb_masks(plan: DigitPlan, lane_bits: int) -> dict[int, int]:
    """Per digit width w: a 64-bit word mask with a 1 at the LSB of every w-bit digit of every lane."""
    masks: dict[int, int] = {}
    for shift, width in zip(plan.shifts, plan.widths, strict=True):
        for lane in range(0, 64, lane_bits):
            masks[width] = masks.get(width, 0) | (1 << (lane + shift))
    return {w: m - (1 << 64) if m >= 1 << 63 else m for w, m in masks.items()}  # as signed int64


def _digit_flags(words: Tensor, plan: DigitPlan, lane_bits: int) -> Tensor:
    """int64 ``words`` of packed codes (lanes of ``lane_bits`` bits) with exactly one set bit per
    non-zero digit: each digit of width w is OR-ed down onto its least significant bit (shifts by
    1..w-1 stay inside the digit) and only those bits are kept. 1-bit digits of codes without bits
    above them (unsigned, or signed filling the lane) are the words themselves."""
    if all(w == 1 for w in plan.widths) and (not plan.signed or plan.bits == lane_bits):
        return words
    flags = torch.zeros_like(words)
    for width, mask in _digit_lsb_masks(plan, lane_bits).items():
        ored = words
        for k in range(1, width):
            ored = ored | (words >> k)
        flags |= ored & torch.tensor(mask, dtype=torch.int64, device=words.device)
    return flags


def _nonzero_digits(u: Tensor, plan: DigitPlan) -> int:
    """Non-zero digits of integer codes ``u`` (lane dtype or int32/int64), over every element: the
    popcount of the codes' digit flags, packed 8, 4, 2 or 1 to a 64-bit word (a code left over is
    counted by the "bitplane" rule of that code alone)."""
    flat = u.reshape(-1)
    lanes = 8 // flat.element_size()
    whole = flat.numel() // lanes * lanes
    count = count_ored(flat[whole:], plan).rounds_needed_bitplane if whole < flat.numel() else 0
    if whole:
        words = flat[:whole].contiguous().view(torch.int64)
        count += _popcount(_digit_flags(words, plan, 8 * flat.element_size()))
    return count


def _subarray_ors(u: Tensor, fragment_size: int) -> Tensor:
    """OR of each sub-array of ``fragment_size`` rows of lane codes ``u`` (V, G, rows): (V, G, F),
    the short last sub-array OR-ed on its own (the zero rows that pad it would not change its OR)."""
    full, rest = divmod(u.shape[-1], fragment_size)
    parts = []
    if full:
        parts.append(_or_subarrays(u[..., : full * fragment_size], fragment_size))
    if rest:
        parts.append(_or_reduce(u[..., full * fragment_size :]).unsqueeze(-1))
    return parts[0] if len(parts) == 1 else torch.cat(parts, -1)


def _tile_ors(subarray_ors: Tensor, per_tile: int) -> Tensor:
    """OR of each run of ``per_tile`` sub-array ORs (V, G, F) (the row tiles), zero-padded: (V, G, T)."""
    if per_tile == 1:
        return subarray_ors
    f = subarray_ors.shape[-1]
    pad = -f % per_tile
    if pad:
        subarray_ors = torch.nn.functional.pad(subarray_ors, (0, pad))
    return _or_reduce(subarray_ors.unflatten(-1, ((f + pad) // per_tile, per_tile)))


def count_subarray_steps(
    codes: Tensor,
    plan: DigitPlan,
    fragment_size: int,
    chunk_elements: int = 1 << 22,
    tile_rows: int | None = None,
    crossbars_per_tile: int = 1,
) -> ZeroSkipCounts:
    """Count sub-array steps, crossbar reads and input digits of integer ``codes`` (vectors, groups, rows).

    ``codes`` holds exact integers (any dtype); signed codes are read in two's complement. A read cycle
    covers a row tile of ``tile_rows`` rows (a multiple of ``fragment_size``; None: one sub-array) on
    each of its ``crossbars_per_tile`` crossbars (column tiles x crossbar sets). Vectors are processed
    in chunks of about ``chunk_elements`` inputs to bound memory.
    """
    tile_rows = fragment_size if tile_rows is None else tile_rows
    if tile_rows % fragment_size:
        raise ValueError(f"tile_rows={tile_rows} is not a multiple of the sub-array rows {fragment_size}")
    vectors, groups, rows = codes.shape
    chunk = max(1, chunk_elements // max(1, groups * rows))
    counts = ZeroSkipCounts(digits_total=vectors * groups * rows * plan.steps)
    if rows == 0:
        return counts
    lane = _lane_dtype(plan)
    for start in range(0, vectors, chunk):
        u = int_codes(codes[start : start + chunk], plan)
        if lane is not None:
            u = u.to(lane)  # wraps: keeps the low plan.bits bits, all that the rules read
        subarrays = _subarray_ors(u, fragment_size)
        counts.add(count_ored(subarrays, plan))
        tiles = count_ored(_tile_ors(subarrays, tile_rows // fragment_size), plan)
        counts.reads_total += tiles.rounds_total * crossbars_per_tile
        counts.reads_needed_leading += tiles.rounds_needed_leading * crossbars_per_tile
        counts.reads_needed_bitplane += tiles.rounds_needed_bitplane * crossbars_per_tile
        counts.digits_nonzero += _nonzero_digits(u, plan)
    return counts


def count_layer_activity(codes: Tensor, plan: DigitPlan, encoded: EncodedLayer) -> ZeroSkipCounts:
    """:func:`count_subarray_steps` of ``codes`` on ``encoded``'s crossbars: sub-arrays of its R rows,
    reads of its crossbar rows on every crossbar a row tile spans."""
    return count_subarray_steps(
        codes,
        plan,
        encoded.fragment_size,
        tile_rows=encoded.crossbar_rows,
        crossbars_per_tile=encoded.crossbars_per_row_tile,
    )
