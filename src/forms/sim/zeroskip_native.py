"""The zero-skip counting in one compiled pass over the codes, where it applies.

:mod:`forms.sim.zeroskip` counts with torch passes over packed words: each pass is fast, but the
codes are narrowed, then read again by every pass (digit flags, popcounts, the sub-arrays' ORs, each
word's lanes folded, the row tiles' ORs), which cost 2-9 ms on issue 20's workload against a call of
20-40 ms. The C extension ``forms.sim._zeroskip_native`` (src/forms/sim/_zeroskip_native.c, built at
install by setup.py) reads each code once: it narrows a row of codes into a lane row kept in cache
(copying the codes on the way into the caller's lane buffer or float GEMM operand), and counts as the
torch passes do, by popcounts of digit flags (:func:`~forms.sim.digit_lanes.lane_masks`, built from the
plan, so the digit rules stay in Python) of the lanes, of their sub-arrays' ORs and of the row tiles'
ORs, in words of lanes in cache; rows are split over the intra-op thread count with the GIL released.
On x86-64 (built by GCC) a copy compiled for AVX2 and popcount runs where the processor has them. The
property tests hold the compiled pass equal to the torch passes.

It applies to codes on the CPU of at most 16 bits, held as int8/16/32/64, uint8 or float32/64. The
extension is optional: where it was not built (no C compiler at install) :func:`native_applies` is
False and the torch passes count.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

import torch
from torch import Tensor

from forms.sim.digit_lanes import lane_dtype, lane_masks
from forms.sim.quant_inputs import DigitPlan


def _load_native() -> ModuleType | None:
    """The compiled extension, or None where it was not built (no C compiler at install)."""
    try:
        return importlib.import_module("forms.sim._zeroskip_native")
    except ImportError:
        return None


_native = _load_native()

SOURCE_DTYPES = frozenset(
    {torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64, torch.float32, torch.float64}
)
"""Code dtypes the compiled pass reads."""

MIN_CODES_PER_THREAD = 1 << 18
"""Fewest codes worth another thread (starting one costs about as much as counting this many)."""

_WORD = (1 << 64) - 1


@dataclass(frozen=True)
class NativeCounts:
    """What the compiled pass counts (the totals follow from the shapes: :mod:`forms.sim.zeroskip`)."""

    digits_nonzero: int
    """Non-zero input digits."""
    rounds_needed_bitplane: int
    """Sub-array steps at which some input digit is non-zero."""
    rounds_needed_leading: int
    """Sub-array steps up to each sub-array's highest non-zero digit."""
    reads_needed_bitplane: int
    """Row-tile steps at which some input digit is non-zero (per crossbar of the tile)."""
    reads_needed_leading: int
    """Row-tile steps up to each tile's highest non-zero digit (per crossbar of the tile)."""


def native_built() -> bool:
    """Whether the compiled pass was built at install."""
    return _native is not None


def native_applies(codes: Tensor, plan: DigitPlan) -> bool:
    """Whether :func:`count_native` can count ``codes`` under ``plan``: the pass was built, the codes
    are on the CPU in a dtype it reads, and ``plan``'s codes fit a lane of at most 16 bits."""
    return (
        _native is not None
        and codes.device.type == "cpu"
        and codes.dtype in SOURCE_DTYPES
        and lane_dtype(plan) is not None
    )


def count_native(
    codes: Tensor,
    plan: DigitPlan,
    fragment_size: int,
    tile_rows: int,
    out: Tensor | None = None,
    portable: bool = False,
) -> NativeCounts:
    """Count integer ``codes`` (vectors, groups, rows), rows >= 1, in one pass (module docstring):
    sub-arrays of ``fragment_size`` rows, row tiles of ``tile_rows`` (a multiple of it). Only where
    :func:`native_applies`. A contiguous ``out``, where given, receives the codes on the way: narrowed
    (``codes``' shape, :func:`~forms.sim.digit_lanes.lane_dtype`) or as float32/float64 values, group
    by group (groups, vectors, rows: the operand of a batched GEMM). ``portable`` runs the kernel
    compiled for any processor where the AVX2 one could run too."""
    if _native is None:
        raise RuntimeError("the compiled zero-skip pass was not built (see forms.sim.zeroskip_native)")
    lane = lane_dtype(plan)
    assert lane is not None
    lane_bits = 8 * lane.itemsize
    masks = lane_masks(plan, lane_bits)
    source = codes.detach().contiguous().numpy()
    target = None
    if out is not None:  # float values as they are, lanes read as unsigned
        target = out.numpy() if out.is_floating_point() else out.numpy().view(f"uint{lane_bits}")
    threads = max(1, min(torch.get_num_threads(), codes.numel() // MIN_CODES_PER_THREAD))
    counted = _native.count(
        source,
        target,
        codes.shape[-1],
        codes.shape[1],
        fragment_size,
        tile_rows,
        lane_bits,
        masks.flags & _WORD,
        [(k, mask & _WORD) for k, mask in masks.wider],
        threads,
        portable,
    )
    return NativeCounts(*counted)
