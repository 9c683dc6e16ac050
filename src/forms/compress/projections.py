"""Exact projections onto the FORMS weight constraints, over the shared crossbar geometry.

Every function works on crossbar matrices ``(groups, rows, cols)`` from
:func:`forms.geometry.weight_to_matrix`, and fragments are those of :func:`forms.geometry.fragment_view`,
so the fragments made single-signed here are exactly the fragments the simulator reads.

- Polarization (R rows of one column all >= 0 or all <= 0): the feasible set of one fragment is the
  union of the non-negative and the non-positive orthant. The projection onto an orthant clamps each
  entry; the distance to it is the sum of squares of the clipped side. So the nearest feasible point
  keeps the side with the LARGER sum of squares. Ties (including all-zero fragments) keep the
  positive side, as :func:`forms.geometry.fragment_signs` calls an all-zero fragment positive.
- Quantization with a FIXED step s and b magnitude bits: entries are independent and the grid
  {s*k : |k| <= 2^b - 1} is one-dimensional, so ``s * clamp(round(x / s))`` is the nearest point.
  The step is chosen per layer or per output channel by :func:`choose_scale`.
- Structured pruning to keep n - floor(ratio * n) groups (filters, input channels or fragments):
  zeroing a group costs its squared norm, so keeping the largest-norm groups is the nearest point
  (ties: the lower group index is kept; a stable sort decides).
- Combination, in this order: prune -> polarize -> quantize. The result satisfies all three at once:
  polarization clamps entries to one side, so pruned zeros stay 0; quantization maps 0 to 0 and
  never flips a sign (round(x/s) has the sign of x or is 0, s > 0), so it keeps both the zeros and
  the fragment signs, and its output is on the integer grid by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from forms.compress.scale_grids import search_grid
from forms.geometry import fragment_view, from_fragment_view
from forms.intweights import max_magnitude

# --------------------------------------------------------------------------------------------- polarize


def fragment_keep_positive(matrix: Tensor, fragment_size: int) -> Tensor:
    """Per fragment (groups, fragments, cols): True where the positive side is kept (ties: True)."""
    frags = fragment_view(matrix, fragment_size)
    pos = frags.clamp(min=0).square().sum(dim=-2)
    neg = frags.clamp(max=0).square().sum(dim=-2)
    return pos >= neg


def expand_fragment_values(values: Tensor, rows: int, fragment_size: int) -> Tensor:
    """Broadcast per-fragment values (..., fragments, cols) to every row: (..., rows, cols)."""
    expanded = values.unsqueeze(-2).expand(*values.shape[:-1], fragment_size, values.shape[-1])
    return from_fragment_view(expanded, rows)


def sign_matrix(keep_positive: Tensor, rows: int, fragment_size: int) -> Tensor:
    """+1/-1 float matrix (groups, rows, cols): the sign each entry's fragment allows."""
    signs = torch.where(keep_positive, 1.0, -1.0)
    return expand_fragment_values(signs, rows, fragment_size)


def clamp_to_signs(matrix: Tensor, signs: Tensor) -> Tensor:
    """Projection onto a FIXED sign pattern: entries on the wrong side of ``signs`` become 0.

    ``torch.where`` passes the gradient to entries on the allowed side, including exact zeros, so a
    weight zeroed by polarization can grow back on its fragment's side during retraining.
    """
    return torch.where(signs * matrix >= 0, matrix, torch.zeros_like(matrix))


def polarize(matrix: Tensor, fragment_size: int) -> Tensor:
    """Euclidean projection of matrices (groups, rows, cols) onto single-signed fragments of R rows."""
    keep = fragment_keep_positive(matrix, fragment_size)
    return clamp_to_signs(matrix, sign_matrix(keep, matrix.shape[-2], fragment_size))


# --------------------------------------------------------------------------------------------- quantize


def quantize_int(matrix: Tensor, scale: Tensor, weight_bits: int) -> Tensor:
    """Nearest integers k with |k| <= 2^b - 1 to ``matrix / scale`` (scale broadcastable), as int64."""
    limit = max_magnitude(weight_bits)
    return torch.round(matrix / scale).clamp(-limit, limit).to(torch.int64)


def quantize(matrix: Tensor, scale: Tensor, weight_bits: int) -> Tensor:
    """Euclidean projection onto the grid ``scale * k``, |k| <= 2^b - 1, for a fixed ``scale``."""
    limit = max_magnitude(weight_bits)
    return torch.round(matrix / scale).clamp(-limit, limit) * scale


def _reduce_dims(mode: str) -> tuple[int, ...]:
    if mode == "channel":
        return (-2,)
    if mode == "layer":
        return (-3, -2, -1)
    raise ValueError(f"unknown scale mode '{mode}'; choose 'channel' or 'layer'")


def column_scale(scale: Tensor, matrix: Tensor) -> Tensor:
    """A per-layer () or per-channel (groups, cols) scale broadcast against (groups, rows, cols)."""
    return scale if scale.dim() == 0 else scale.unsqueeze(-2)


def _grid_error(x: Tensor, scale: Tensor, weight_bits: int, dims: tuple[int, ...]) -> Tensor:
    return (x - quantize(x, scale, weight_bits)).square().sum(dim=dims, keepdim=True)


def choose_scale(
    matrix: Tensor, weight_bits: int, mode: str = "channel", method: str = "lsq", iterations: int = 8
) -> Tensor:
    """Step size of the symmetric quantizer: shape () for ``mode='layer'``, (groups, cols) for 'channel'.

    'maxabs' maps the largest magnitude to 2^b - 1. 'lsq' starts from the best grid maxabs / j (which
    holds the largest magnitude exactly; :mod:`forms.compress.scale_grids`): every j up to 8 bits, above
    that coarse to fine plus each unit's own grid (<= 257 passes at any b), so a matrix already quantized
    (s * k, integers |k| <= 2^b - 1) is reproduced exactly (to its dtype's rounding) and the projection
    is idempotent. It then alternates the two exact partial minimizations of ||x - s*k||^2: k = nearest
    integers for fixed s, then s = <x, k> / <k, k> for fixed k. No step raises the error and j = 2^b - 1
    is tried, so it never exceeds the max-abs error. An all-zero channel (or layer) gets scale 1.
    """
    dims = _reduce_dims(mode)
    limit = max_magnitude(weight_bits)
    x = matrix.detach().to(torch.float64)
    maxabs = x.abs().amax(dim=dims, keepdim=True)
    scale = torch.where(maxabs > 0, maxabs / limit, torch.ones_like(maxabs))
    if method == "lsq":
        best, best_err = search_grid(
            x, maxabs, mode, limit, matrix.dtype, lambda s: _grid_error(x, s, weight_bits, dims)
        )
        scale = best
        for _ in range(iterations):
            k = torch.round(x / scale).clamp(-limit, limit)
            kk = k.square().sum(dim=dims, keepdim=True)
            xk = (x * k).sum(dim=dims, keepdim=True)
            scale = torch.where(kk > 0, xk / kk.clamp(min=1), scale)
            scale = torch.where(scale > 0, scale, best)
            err = _grid_error(x, scale, weight_bits, dims)
            better = err < best_err
            best = torch.where(better, scale, best)
            best_err = torch.where(better, err, best_err)
        scale = best
    elif method != "maxabs":
        raise ValueError(f"unknown scale method '{method}'; choose 'lsq' or 'maxabs'")
    scale = scale.to(torch.float32)
    return scale.reshape(()) if mode == "layer" else scale.squeeze(-2)


# --------------------------------------------------------------------------------------------- prune


def granularity_units(granularity: str) -> list[str]:
    """The units a granularity prunes, in the order they are pruned: 'filter+channel' -> filter, channel."""
    return granularity.split("+")


def group_block(granularity: str, weight_shape: tuple[int, ...], groups: int, fragment_size: int) -> int:
    """Crossbar rows per pruning group along the row axis (1 for filters, which are whole columns).

    A combination ('filter+channel') has the block of its row-axis unit; filters ignore the block.
    """
    if "+" in granularity:
        return group_block(granularity_units(granularity)[-1], weight_shape, groups, fragment_size)
    if granularity == "filter":
        return 1
    if granularity == "channel":
        return int(math.prod(weight_shape[2:])) if len(weight_shape) == 4 else 1
    if granularity in ("fragment", "rows"):
        return fragment_size
    raise ValueError(f"unknown pruning granularity '{granularity}'; choose filter, channel, fragment or rows")


def group_sq_norms(matrix: Tensor, granularity: str, block: int) -> Tensor:
    """Squared norm of every pruning group: (groups, cols) filters, (groups, channels) input channels,
    (groups, fragments, cols) fragments of ``block`` rows, (groups, fragments) fragment-aligned row
    blocks of every column."""
    sq = matrix.detach().square()
    if granularity == "filter":
        return sq.sum(dim=-2)
    if granularity == "channel":
        g, rows, cols = sq.shape
        return sq.reshape(g, rows // block, block * cols).sum(dim=-1)
    if granularity == "fragment":
        return fragment_view(sq, block).sum(dim=-2)
    if granularity == "rows":
        return fragment_view(sq, block).sum(dim=(-2, -1))
    raise ValueError(f"unknown pruning granularity '{granularity}'; choose filter, channel, fragment or rows")


def group_sizes(matrix_shape: torch.Size | tuple[int, ...], granularity: str, block: int) -> int:
    """Entries per pruning group (fragment and row groups count the zero-padded rows too)."""
    _, rows, cols = matrix_shape
    return rows if granularity == "filter" else block * cols if granularity in ("channel", "rows") else block


def expand_group_mask(
    keep: Tensor, granularity: str, block: int, shape: torch.Size | tuple[int, ...]
) -> Tensor:
    """A per-group keep mask (as from :func:`group_sq_norms`) as a ``shape`` (groups, rows, cols) mask."""
    groups, rows, cols = shape
    if granularity == "filter":
        return keep.unsqueeze(-2).expand(groups, rows, cols).contiguous()
    if granularity == "channel":
        return keep.repeat_interleave(block, dim=-1).unsqueeze(-1).expand(groups, rows, cols).contiguous()
    if granularity == "fragment":
        return expand_fragment_values(keep, rows, block).contiguous()
    if granularity == "rows":
        blocks = keep.unsqueeze(-1).expand(*keep.shape, cols)
        return expand_fragment_values(blocks, rows, block).contiguous()
    raise ValueError(f"unknown pruning granularity '{granularity}'; choose filter, channel, fragment or rows")


def pruned_count(n_groups: int, ratio: float) -> int:
    """Groups to zero: floor(ratio * n), so at least one group survives for any ratio < 1."""
    return min(math.floor(ratio * n_groups + 1e-9), n_groups - 1) if n_groups else 0


def keep_largest(scores: Tensor, n_prune: int) -> Tensor:
    """Boolean mask of ``scores``'s shape keeping all but the ``n_prune`` smallest (stable ties)."""
    flat = scores.reshape(-1)
    keep = torch.ones_like(flat, dtype=torch.bool)
    if n_prune > 0:
        order = torch.sort(flat, stable=True).indices
        keep[order[:n_prune]] = False
    return keep.reshape(scores.shape)


def tile_rounded_count(n_groups: int, n_prune: int, group_size: int, tile: int) -> int:
    """Groups to zero so the kept ones end on a tile boundary: when the n - n_prune kept groups of
    ``group_size`` rows (or columns) each spill past a multiple of ``tile``, keep only the groups that
    fit below that multiple (one tile fewer). Kept groups within one tile are left as they are."""
    used = (n_groups - n_prune) * group_size
    if tile <= 0 or used <= tile or used % tile == 0:
        return n_prune
    return n_groups - max(1, (used // tile) * tile // group_size)


@dataclass(frozen=True)
class TileSize:
    """Crossbar rows and weight columns one crossbar holds: the boundaries pruning may round to."""

    rows: int
    """Crossbar rows."""
    cols: int
    """Crossbar columns / cells per weight (weights per crossbar row)."""


def prune_mask(
    matrix: Tensor,
    ratio: float,
    granularity: str,
    block: int,
    tile: TileSize | None = None,
    unit_ratios: dict[str, float] | None = None,
) -> Tensor:
    """Entry keep-mask of the Euclidean projection onto 'at most n - floor(ratio*n) nonzero groups'.

    A combination ('filter+channel') prunes its units in turn, each on the matrix the previous ones
    left, each at its ratio in ``unit_ratios`` (default ``ratio``): the result has at most
    n - floor(r*n) nonzero groups of every unit. Pruning an already feasible matrix only zeroes
    groups that are zero (the floor(r*n) smallest norms are 0), so projecting twice gives the same
    matrix. With ``tile`` (one group of matrices only), the filter and channel counts are rounded down
    to tile boundaries (:func:`tile_rounded_count`); a unit at ratio 0 is not pruned, not even to round.
    """
    keep = torch.ones_like(matrix, dtype=torch.bool)
    for unit in granularity_units(granularity):
        scores = group_sq_norms(torch.where(keep, matrix, 0.0), unit, block)
        unit_ratio = (unit_ratios or {}).get(unit, ratio)
        n_prune = pruned_count(scores.numel(), unit_ratio)
        if tile is not None and matrix.shape[0] == 1 and unit != "fragment" and unit_ratio > 0:
            size, capacity = (1, tile.cols) if unit == "filter" else (block, tile.rows)
            n_prune = tile_rounded_count(scores.numel(), n_prune, size, capacity)
        unit_keep = keep_largest(scores, n_prune)
        keep &= expand_group_mask(unit_keep, unit, block, matrix.shape)
    return keep


def global_prune_masks(
    matrices: dict[str, Tensor], ratio: float, granularity: str, blocks: dict[str, int]
) -> dict[str, Tensor]:
    """Entry keep-masks for a global ratio: all layers' groups ranked together.

    Raw norms are not comparable across layers, so each group is scored by its RMS divided by its
    layer's RMS; floor(ratio * total) lowest-scored groups are zeroed, always keeping each layer's
    best group. Given the per-layer counts this induces, each mask is the exact per-layer projection.
    A combination ('filter+channel') ranks its units in turn, each on the matrices the previous left.
    """
    keeps = {n: torch.ones_like(m, dtype=torch.bool) for n, m in matrices.items()}
    for unit in granularity_units(granularity):
        masked = {n: torch.where(keeps[n], m, 0.0) for n, m in matrices.items()}
        unit_keeps = global_unit_masks(masked, ratio, unit, blocks)
        keeps = {n: keeps[n] & unit_keeps[n] for n in matrices}
    return keeps


def global_unit_masks(
    matrices: dict[str, Tensor], ratio: float, granularity: str, blocks: dict[str, int]
) -> dict[str, Tensor]:
    """Entry keep-masks of one unit (filter, channel or fragment) for a global ratio (see
    :func:`global_prune_masks`)."""
    scores: dict[str, Tensor] = {}
    for name, m in matrices.items():
        size = group_sizes(m.shape, granularity, blocks[name])
        layer_rms = m.detach().square().mean().sqrt().clamp(min=1e-30)
        scores[name] = (group_sq_norms(m, granularity, blocks[name]) / size).sqrt() / layer_rms
    names = list(scores)
    flat = torch.cat([scores[n].reshape(-1) for n in names])
    owner = torch.cat([torch.full((scores[n].numel(),), i) for i, n in enumerate(names)])
    protected = torch.zeros_like(flat, dtype=torch.bool)
    offset = 0
    for n in names:  # each layer's best group is never pruned
        protected[offset + int(scores[n].reshape(-1).argmax())] = True
        offset += scores[n].numel()
    n_prune = min(pruned_count(flat.numel(), ratio), int((~protected).sum()))
    ranked = torch.sort(torch.where(protected, math.inf, flat), stable=True).indices[:n_prune]
    counts = torch.bincount(owner[ranked], minlength=len(names))
    return {
        n: expand_group_mask(
            keep_largest(scores[n], int(counts[i])), granularity, blocks[n], matrices[n].shape
        )
        for i, n in enumerate(names)
    }


# --------------------------------------------------------------------------------------------- combined


@dataclass(frozen=True)
class LayerConstraint:
    """The constraints of one mapped layer."""

    name: str
    weight_shape: tuple[int, ...]
    groups: int
    weight_bits: int
    fragment_size: int | None
    """R of the polarization constraint; None when this layer is not polarized."""
    scale_mode: str = "channel"
    scale_method: str = "lsq"
    scale_iterations: int = 8
    prune_ratio: float = 0.0
    """The pruning ratio; with ``prune_unit_ratios``, the largest of them."""
    prune_unit_ratios: tuple[tuple[str, float], ...] = ()
    """(unit, ratio) of each unit of a combined granularity when they differ; empty: ``prune_ratio``."""
    prune_granularity: str = "filter"
    prune_block: int = 1
    """Crossbar rows per pruning group along the rows (see :func:`group_block`)."""
    prune_tile: TileSize | None = None
    """Round kept filters and channels down to these tile boundaries (``prune.round_to_tiles``)."""

    @property
    def integer_fragment_size(self) -> int:
        """R the integers satisfy: the polarization R, or 1 (every entry alone, no constraint)."""
        return self.fragment_size if self.fragment_size is not None else 1


@dataclass(frozen=True)
class Projection:
    """A feasible point and the structure that defines it."""

    matrix: Tensor
    """Feasible float matrices (groups, rows, cols) = weight_int * scale."""
    weight_int: Tensor
    """int64 (groups, rows, cols)."""
    scale: Tensor
    """() or (groups, cols)."""
    keep: Tensor
    """bool (groups, rows, cols): entries not pruned."""
    signs: Tensor | None
    """float +1/-1 (groups, rows, cols) allowed sign per entry, or None when not polarized."""


def project(matrix: Tensor, constraint: LayerConstraint, keep: Tensor | None = None) -> Projection:
    """Prune -> polarize -> quantize one layer's matrices; the result satisfies all three constraints.

    ``keep`` overrides the layer's own pruning mask (used for global pruning and for fixed masks).
    """
    x = matrix.detach().to(torch.float32)
    if keep is None:
        if constraint.prune_ratio > 0:
            keep = prune_mask(
                x,
                constraint.prune_ratio,
                constraint.prune_granularity,
                constraint.prune_block,
                constraint.prune_tile,
                dict(constraint.prune_unit_ratios),
            )
        else:
            keep = torch.ones_like(x, dtype=torch.bool)
    x = torch.where(keep, x, torch.zeros_like(x))
    signs = None
    if constraint.fragment_size is not None:
        r = constraint.fragment_size
        signs = sign_matrix(fragment_keep_positive(x, r), x.shape[-2], r)
        x = clamp_to_signs(x, signs)
    scale = choose_scale(
        x,
        constraint.weight_bits,
        constraint.scale_mode,
        constraint.scale_method,
        constraint.scale_iterations,
    )
    weight_int = quantize_int(x, column_scale(scale, x), constraint.weight_bits)
    matrix_q = weight_int.to(torch.float32) * column_scale(scale, x)
    return Projection(
        matrix=matrix_q, weight_int=weight_int, scale=scale, keep=keep.contiguous(), signs=signs
    )
