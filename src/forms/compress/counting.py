"""Crossbar counts of a compressed model and the reduction factors compression buys.

Counts use :meth:`forms.encoding.Encoding.crossbar_count`, the same rule the mapping and cost model use.
The chain of factors follows the FORMS paper's accounting (Yuan et al., ISCA 2021, Sec. 6):

- ``dense_32bit``: the uncompressed layers as 32-bit fixed-point magnitudes on the DIFFERENTIAL
  encoding (PRIME-style, two crossbar sets). The paper's 2x polarization factor is measured against
  such a two-crossbar signed design, so both baselines use it.
- ``pruned_32bit``: the same after removing the all-zero columns and all-zero rows of each matrix
  (pruned filters, input channels; a fragment-pruned block only counts when its whole row is zero).
  Zero columns of one layer are not propagated to the next layer's rows.
- ``final``: the pruned, ``weight_bits``-bit integers under each encoding; the polarized design keeps
  every fragment (R consecutive rows, R = the crossbar's ``fragment_size``) that holds a non-zero
  weight whole (:func:`fragment_rows`: its zero rows share the fragment's sign bit, and dropping them
  would merge rows of fragments of different signs), the others drop every all-zero row.
- ``final_usable``: the final model on the encoding each layer can use (:func:`layer_encoding`, the
  layer record's ``encoding``): polarized where every fragment holds one sign per column (as
  ``forms check`` counts them), else differential, which stores any signs; so no polarization is
  claimed that the weights do not allow (a run without the sign constraint, a layer left unpolarized,
  one that ended with mixed-sign fragments). ``final_encoding`` names the design: ``polarized``,
  ``differential``, or :data:`MIXED_DESIGN` when layers differ.

factors: pruning = dense_32bit / pruned_32bit, quantization = pruned_32bit / final.differential,
polarization = final.differential / final_usable (1 when every layer is differential),
total = dense_32bit / final_usable; their product is the total by construction.

These *physical* factors count whole crossbars per layer, so they absorb the rounding of each layer
to whole tiles. :func:`per_weight_reduction` gives the *per-weight* factors, free of that rounding
(docs/design.md, "Two reduction counts"): pruning = dense weights / kept weights (those the usable design
stores: a polarized layer's fragments whole), quantization = 32 / weight bits, polarization = crossbar
sets of the differential design / of the usable design per kept weight (2 when every layer is
polarized), total = their product, with the area equivalent (cells the usable design uses / cells per
crossbar) beside it. :class:`Reduction` holds both, as ``metrics.json`` writes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from forms.config import CrossbarSpec
from forms.encoding import ENCODINGS, Encoding

BASELINE_BITS = 32
"""Magnitude bits of the uncompressed baseline (a 32-bit weight)."""
BASELINE_ENCODING = Encoding.DIFFERENTIAL
"""Sign encoding of both uncompressed baselines (see module docstring)."""
UNRECORDED_ENCODING = Encoding.POLARIZED
"""The encoding of every layer of a record written before the usable encoding was kept: those always
counted the polarized design, whether or not every fragment held one sign."""
MIXED_DESIGN = "mixed"
"""``final_encoding`` of a design whose layers use different encodings (polarized layers where every
fragment holds one sign, differential ones elsewhere)."""


def _ratio(a: float, b: float) -> float:
    """a / b; for b = 0, infinity when a > 0 and 1 when both are 0."""
    return a / b if b else float("inf") if a else 1.0


def compact_shapes(weight_int: Tensor) -> list[tuple[int, int]]:
    """(rows, cols) per group after dropping all-zero rows and all-zero columns."""
    nz = weight_int != 0
    return [(int(g.any(dim=1).sum()), int(g.any(dim=0).sum())) for g in nz]


def fragment_rows(weight_int: Tensor, fragment_size: int) -> list[int]:
    """Rows per group the polarized design keeps: every fragment (``fragment_size`` consecutive rows, the
    last one shorter) that holds a non-zero weight, whole. A fragment's rows share its sign per column, so
    its zero rows cannot be dropped: closing the gap would merge rows of fragments whose signs differ."""
    from forms.geometry import fragment_view

    rows = weight_int.shape[-2]
    nonzero_rows = weight_int.ne(0).any(dim=-1, keepdim=True).to(torch.uint8)  # (groups, rows, 1)
    held = fragment_view(nonzero_rows, fragment_size).any(dim=-2).squeeze(-1)  # (groups, fragments)
    starts = torch.arange(held.shape[-1], device=held.device) * fragment_size
    lengths = (rows - starts).clamp(max=fragment_size)  # the last fragment may be shorter
    return [int(n) for n in (held.long() * lengths).sum(dim=-1)]


def layer_encoding(weight_int: Tensor, fragment_size: int) -> Encoding:
    """The encoding one layer's integer matrices (groups, rows, cols) are counted on: polarized when no
    fragment of ``fragment_size`` rows of one column holds both signs (a zero takes either sign, as
    ``forms check`` counts them); else differential (two crossbar sets), which stores any signs."""
    from forms.geometry import fragment_signs

    mixed = bool(fragment_signs(weight_int, fragment_size).mixed.any()) if weight_int.numel() else False
    return Encoding.DIFFERENTIAL if mixed else Encoding.POLARIZED


def _final_counts(
    shapes: list[tuple[int, int]], polarized_rows: list[int], weight_bits: int, crossbar: CrossbarSpec
) -> dict[str, int]:
    """Final crossbars of one layer per encoding: the polarized design on its whole fragments
    (``polarized_rows``), the others on the compacted ``shapes``."""
    counts = {}
    for e in ENCODINGS:
        rows = polarized_rows if e is Encoding.POLARIZED else [r for r, _ in shapes]
        counts[e.value] = sum(
            e.crossbar_count(r, c, 1, weight_bits, crossbar) for r, (_, c) in zip(rows, shapes, strict=True)
        )
    return counts


def design_name(encodings: list[Encoding]) -> str:
    """``final_encoding`` of a design whose layers use ``encodings``: their one encoding, else
    :data:`MIXED_DESIGN` (polarized for a design without layers)."""
    names = {e.value for e in encodings} or {Encoding.POLARIZED.value}
    return names.pop() if len(names) == 1 else MIXED_DESIGN


def crossbar_report(layers: dict[str, Tensor], weight_bits: int, crossbar: CrossbarSpec) -> dict[str, Any]:
    """Crossbar counts and factors of integer matrices ``{name: (groups, rows, cols)}``, the final model
    counted with each layer on the encoding it can use at the crossbar's R (:func:`layer_encoding`)."""
    per_layer = []
    encodings = []
    dense = pruned = usable = 0
    final = dict.fromkeys((e.value for e in ENCODINGS), 0)
    for name, w in layers.items():
        groups, rows, cols = w.shape
        shapes = compact_shapes(w)
        d = BASELINE_ENCODING.crossbar_count(rows, cols, groups, BASELINE_BITS, crossbar)
        p = sum(BASELINE_ENCODING.crossbar_count(r, c, 1, BASELINE_BITS, crossbar) for r, c in shapes)
        whole_fragments = fragment_rows(w, crossbar.fragment_size)
        f = _final_counts(shapes, whole_fragments, weight_bits, crossbar)
        encoding = layer_encoding(w, crossbar.fragment_size)
        encodings.append(encoding)
        dense += d
        pruned += p
        usable += f[encoding.value]
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
                "polarized_rows": whole_fragments,
                "dense_32bit": d,
                "pruned_32bit": p,
                "final": f,
                "encoding": encoding.value,
            }
        )

    return {
        "baseline": f"{BASELINE_BITS}-bit magnitudes, {BASELINE_ENCODING} encoding (two crossbar sets)",
        "crossbar": {"rows": crossbar.rows, "cols": crossbar.cols, "cell_bits": crossbar.cell_bits},
        "dense_32bit": dense,
        "pruned_32bit": pruned,
        "final": final,
        "final_usable": usable,
        "final_encoding": design_name(encodings),
        "factors": {
            "pruning": _ratio(dense, pruned),
            "quantization": _ratio(pruned, final[BASELINE_ENCODING]),
            "polarization": _ratio(final[BASELINE_ENCODING], usable),
            "total": _ratio(dense, usable),
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
    """Final differential crossbars / final crossbars of the usable design (1 when all differential)."""
    total: float
    """Dense 32-bit crossbars / final crossbars of the usable design (the product of the three)."""


@dataclass(frozen=True)
class PerWeightReduction:
    """Reduction factors per weight, free of the rounding to whole crossbars."""

    pruning: float
    """Dense weights / kept weights: those the usable design stores (the kept rows and columns of each
    matrix; a polarized layer keeps each fragment holding a non-zero weight whole)."""
    quantization: float
    """32 / weight bits."""
    polarization: float
    """Crossbar sets of the differential design / of the usable design, per kept weight (2 / 1 when every
    layer is polarized, 2 / 2 when none is)."""
    total: float
    """pruning x quantization x polarization."""
    area_equivalent: float
    """Cells the usable final design uses / cells per crossbar: crossbars if cells were shared."""


@dataclass(frozen=True)
class Reduction:
    """Both reduction counts of a compression: ``metrics.json``'s ``reduction``."""

    final_encoding: str
    """The design both counts' polarization and total count (:func:`design_name`): ``polarized`` when
    every layer's fragments each hold one sign (:func:`layer_encoding`), ``differential`` when none
    does (polarization 1), :data:`MIXED_DESIGN` in between."""
    physical: PhysicalReduction
    """Factors in whole crossbars per layer."""
    per_weight: PerWeightReduction
    """Factors per weight."""

    def to_dict(self) -> dict[str, Any]:
        """``{"final_encoding": name, "physical": {...}, "per_weight": {...}}``, fields in order."""
        return {
            "final_encoding": self.final_encoding,
            "physical": asdict(self.physical),
            "per_weight": asdict(self.per_weight),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reduction:
        """Inverse of :meth:`to_dict`; a record written before ``final_encoding`` was kept counted the
        polarized design (:data:`UNRECORDED_ENCODING`)."""
        return cls(
            d.get("final_encoding", UNRECORDED_ENCODING.value),
            PhysicalReduction(**d["physical"]),
            PerWeightReduction(**d["per_weight"]),
        )


def final_crossbars(report: dict[str, Any]) -> int:
    """The final crossbars of the usable design of a :func:`crossbar_report` (``final_usable``; the
    polarized count in a report written before it was kept)."""
    return int(report.get("final_usable", report["final"][UNRECORDED_ENCODING.value]))


def per_weight_reduction(
    layer_records: list[dict[str, Any]], weight_bits: int, crossbar: CrossbarSpec
) -> PerWeightReduction:
    """Per-weight factors of the per-layer records of :func:`crossbar_report` (``groups``, ``rows``,
    ``cols``, ``kept_rows``, ``kept_cols``, ``encoding`` and ``polarized_rows``; records without these
    two read as :data:`UNRECORDED_ENCODING` on the kept rows) at ``weight_bits``-bit weights on
    ``crossbar``. The kept weights are those the usable design stores: a polarized layer's whole
    fragments (their zero rows included) in its kept columns, a differential one's kept rows and columns."""
    dense = kept = stored_sets = cells = 0
    for layer in layer_records:
        encoding = Encoding(layer.get("encoding", UNRECORDED_ENCODING.value))
        polarized = encoding is Encoding.POLARIZED
        rows = layer.get("polarized_rows", layer["kept_rows"]) if polarized else layer["kept_rows"]
        stored = sum(r * c for r, c in zip(rows, layer["kept_cols"], strict=True))
        dense += layer["groups"] * layer["rows"] * layer["cols"]
        kept += stored
        stored_sets += stored * encoding.crossbar_sets
        cells += stored * encoding.slices(weight_bits, crossbar.cell_bits) * encoding.crossbar_sets
    pruning = _ratio(dense, kept)
    quantization = BASELINE_BITS / weight_bits
    polarization = _ratio(BASELINE_ENCODING.crossbar_sets * kept, stored_sets)
    return PerWeightReduction(
        pruning=pruning,
        quantization=quantization,
        polarization=polarization,
        total=pruning * quantization * polarization,
        area_equivalent=cells / (crossbar.rows * crossbar.cols),
    )


def reduction(report: dict[str, Any], weight_bits: int, crossbar: CrossbarSpec) -> Reduction:
    """Both counts of a :func:`crossbar_report` (its ``final_encoding``, ``factors`` and ``layers``) at
    ``weight_bits``; a report written before ``final_encoding`` was kept counted the polarized design."""
    return Reduction(
        report.get("final_encoding", UNRECORDED_ENCODING.value),
        PhysicalReduction(**report["factors"]),
        per_weight_reduction(report["layers"], weight_bits, crossbar),
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
    "MIXED_DESIGN",
    "UNRECORDED_ENCODING",
    "PerWeightReduction",
    "PhysicalReduction",
    "Reduction",
    "crossbar_report",
    "design_name",
    "final_crossbars",
    "fragment_rows",
    "fragment_totals",
    "layer_encoding",
    "per_weight_reduction",
    "reduction",
    "sparsity",
]
