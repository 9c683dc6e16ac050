"""Crossbar counts of a compressed model and the reduction factors compression buys.

Counts use :meth:`forms.encoding.Encoding.crossbar_count`, the same rule the mapping and cost model use.
The chain of factors follows the FORMS paper's accounting (Yuan et al., ISCA 2021, Sec. 6):

- ``dense_32bit``: the uncompressed layers as 32-bit fixed-point magnitudes on the DIFFERENTIAL
  encoding (PRIME-style, two crossbar sets). The paper's 2x polarization factor is measured against
  such a two-crossbar signed design, so both baselines use it.
- ``pruned_32bit``: the same after removing the all-zero columns and all-zero rows of each matrix
  (pruned filters, input channels; a fragment-pruned block only counts when its whole row is zero).
  Zero columns of one layer are not propagated to the next layer's rows.
- ``final``: the pruned, ``weight_bits``-bit integers under each encoding.

factors: pruning = dense_32bit / pruned_32bit, quantization = pruned_32bit / final.differential,
polarization = final.differential / final.polarized, total = dense_32bit / final.polarized; their
product is the total by construction.

These *physical* factors count whole crossbars per layer, so they absorb the rounding of each layer
to whole tiles. :func:`per_weight_reduction` gives the *per-weight* factors, free of that rounding
(docs/design.md, "Two reduction counts"): pruning = dense weights / kept weights, quantization =
32 / weight bits, polarization = crossbar sets of the differential design / of the polarized one,
total = their product, with the area equivalent (cells the polarized design uses / cells per
crossbar) beside it. :class:`Reduction` holds both, as ``metrics.json`` writes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import Tensor

from forms.config import CrossbarSpec
from forms.encoding import ENCODINGS, Encoding

BASELINE_BITS = 32
"""Magnitude bits of the uncompressed baseline (a 32-bit weight)."""
BASELINE_ENCODING = Encoding.DIFFERENTIAL
"""Sign encoding of both uncompressed baselines (see module docstring)."""


def _ratio(a: float, b: float) -> float:
    """a / b; for b = 0, infinity when a > 0 and 1 when both are 0."""
    return a / b if b else float("inf") if a else 1.0


def compact_shapes(weight_int: Tensor) -> list[tuple[int, int]]:
    """(rows, cols) per group after dropping all-zero rows and all-zero columns."""
    nz = weight_int != 0
    return [(int(g.any(dim=1).sum()), int(g.any(dim=0).sum())) for g in nz]


def crossbar_report(layers: dict[str, Tensor], weight_bits: int, crossbar: CrossbarSpec) -> dict[str, Any]:
    """Crossbar counts and factors of integer matrices ``{name: (groups, rows, cols)}``."""
    per_layer = []
    dense = pruned = 0
    final = dict.fromkeys((e.value for e in ENCODINGS), 0)
    for name, w in layers.items():
        groups, rows, cols = w.shape
        shapes = compact_shapes(w)
        d = BASELINE_ENCODING.crossbar_count(rows, cols, groups, BASELINE_BITS, crossbar)
        p = sum(BASELINE_ENCODING.crossbar_count(r, c, 1, BASELINE_BITS, crossbar) for r, c in shapes)
        f = {
            e.value: sum(e.crossbar_count(r, c, 1, weight_bits, crossbar) for r, c in shapes)
            for e in ENCODINGS
        }
        dense += d
        pruned += p
        for e in final:
            final[e] += f[e]
        per_layer.append(
            {
                "name": name,
                "groups": groups,
                "rows": rows,
                "cols": cols,
                "kept_rows": [r for r, _ in shapes],
                "kept_cols": [c for _, c in shapes],
                "dense_32bit": d,
                "pruned_32bit": p,
                "final": f,
            }
        )

    return {
        "baseline": f"{BASELINE_BITS}-bit magnitudes, {BASELINE_ENCODING} encoding (two crossbar sets)",
        "crossbar": {"rows": crossbar.rows, "cols": crossbar.cols, "cell_bits": crossbar.cell_bits},
        "dense_32bit": dense,
        "pruned_32bit": pruned,
        "final": final,
        "factors": {
            "pruning": _ratio(dense, pruned),
            "quantization": _ratio(pruned, final[BASELINE_ENCODING]),
            "polarization": _ratio(final[BASELINE_ENCODING], final[Encoding.POLARIZED]),
            "total": _ratio(dense, final[Encoding.POLARIZED]),
        },
        "layers": per_layer,
    }


@dataclass(frozen=True)
class PhysicalReduction:
    """Reduction factors in whole crossbars per layer (the ``factors`` of :func:`crossbar_report`)."""

    pruning: float
    """Dense 32-bit crossbars / crossbars of the pruned 32-bit matrices."""
    quantization: float
    """Pruned 32-bit crossbars / crossbars of the final integers (differential)."""
    polarization: float
    """Final differential crossbars / final polarized crossbars."""
    total: float
    """Dense 32-bit crossbars / final polarized crossbars (the product of the three)."""


@dataclass(frozen=True)
class PerWeightReduction:
    """Reduction factors per weight, free of the rounding to whole crossbars."""

    pruning: float
    """Dense weights / kept weights (those in the kept rows and columns of each matrix)."""
    quantization: float
    """32 / weight bits."""
    polarization: float
    """Crossbar sets of the differential design / of the polarized one (2 / 1)."""
    total: float
    """pruning x quantization x polarization."""
    area_equivalent: float
    """Cells the final polarized design uses / cells per crossbar: crossbars if cells were shared."""


@dataclass(frozen=True)
class Reduction:
    """Both reduction counts of a compression: ``metrics.json``'s ``reduction``."""

    physical: PhysicalReduction
    per_weight: PerWeightReduction

    def to_dict(self) -> dict[str, Any]:
        """``{"physical": {...}, "per_weight": {...}}``, fields in order."""
        return {"physical": asdict(self.physical), "per_weight": asdict(self.per_weight)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reduction:
        """Inverse of :meth:`to_dict`."""
        return cls(PhysicalReduction(**d["physical"]), PerWeightReduction(**d["per_weight"]))


def per_weight_reduction(
    layer_records: list[dict[str, Any]], weight_bits: int, crossbar: CrossbarSpec
) -> PerWeightReduction:
    """Per-weight factors of the per-layer records of :func:`crossbar_report` (``groups``, ``rows``,
    ``cols``, ``kept_rows``, ``kept_cols``) at ``weight_bits``-bit weights on ``crossbar``."""
    dense = sum(layer["groups"] * layer["rows"] * layer["cols"] for layer in layer_records)
    kept = sum(
        rows * cols
        for layer in layer_records
        for rows, cols in zip(layer["kept_rows"], layer["kept_cols"], strict=True)
    )
    final = Encoding.POLARIZED
    pruning = _ratio(dense, kept)
    quantization = BASELINE_BITS / weight_bits
    polarization = BASELINE_ENCODING.crossbar_sets / final.crossbar_sets
    cells = kept * final.slices(weight_bits, crossbar.cell_bits) * final.crossbar_sets
    return PerWeightReduction(
        pruning=pruning,
        quantization=quantization,
        polarization=polarization,
        total=pruning * quantization * polarization,
        area_equivalent=cells / (crossbar.rows * crossbar.cols),
    )


def reduction(report: dict[str, Any], weight_bits: int, crossbar: CrossbarSpec) -> Reduction:
    """Both counts of a :func:`crossbar_report` (its ``factors`` and ``layers``) at ``weight_bits``."""
    return Reduction(
        PhysicalReduction(**report["factors"]), per_weight_reduction(report["layers"], weight_bits, crossbar)
    )


def sparsity(layers: dict[str, Tensor]) -> float:
    """Fraction of zero weights over all mapped layers."""
    total = sum(w.numel() for w in layers.values())
    zeros = sum(int((w == 0).sum()) for w in layers.values())
    return zeros / total if total else 0.0


def fragment_totals(layers: dict[str, Tensor], fragment_sizes: dict[str, int]) -> tuple[int, int]:
    """(fragments, mixed-sign fragments) over all layers, each with its own R."""
    from forms.geometry import fragment_signs, num_row_fragments

    total = mixed = 0
    for name, w in layers.items():
        r = fragment_sizes[name]
        total += w.shape[0] * num_row_fragments(w.shape[1], r) * w.shape[2]
        mixed += int(fragment_signs(w, r).mixed.sum())
    return total, mixed


__all__ = [
    "PerWeightReduction",
    "PhysicalReduction",
    "Reduction",
    "crossbar_report",
    "fragment_totals",
    "per_weight_reduction",
    "reduction",
    "sparsity",
]
