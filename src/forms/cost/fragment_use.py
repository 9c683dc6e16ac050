"""How each design stores a compressed layer's rows: whole fragments for FORMS, compacted rows otherwise.

A FORMS (polarized) fragment is R consecutive rows of one crossbar column sharing one sign bit, so the
polarized design keeps every fragment holding a non-zero weight whole: closing the gap left by its
all-zero rows would merge rows of fragments whose signs differ (:func:`forms.compress.counting.
fragment_rows`, the one rule). Offset (ISAAC) and differential (PRIME) designs hold any sign in any row
and drop every all-zero row. Columns compact freely for every design: a fragment lies in one column.

A layer whose integer weights hold both signs in some fragment of R rows (:func:`forms.compress.counting.
layer_encoding` is differential at R) cannot be stored polarized at that R. The cost model then costs it
as the weights allow, as the crossbar counts of ``forms compress`` do (``final_usable``): on two crossbar
sets, its positive magnitudes on one and its negative ones on the other, every fragment of a set holding
one sign, so the polarized hardware runs them unchanged and every all-zero row drops, as in a
differential design. The estimate's assumptions name such layers (:func:`storage_notes`).

torch is imported inside :func:`fragment_uses` only: the cost model of dense shapes stays light.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from forms.encoding import Encoding

if TYPE_CHECKING:
    from torch import Tensor

COUNTED_FRAGMENT_SIZES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
"""Fragment sizes R at which a compressed layer's rows are counted by default: the powers of two up to
512, so every R of a 128-row crossbar (the packaged presets', the ``forms optimize`` grid among them)
and the powers of two of crossbars up to 512 rows."""


@dataclass(frozen=True)
class FragmentUse:
    """What a polarized design at one fragment size can do with one compressed layer's rows."""

    fragment_size: int
    """R: rows per fragment."""
    rows_used: int
    """Rows the polarized design keeps: every fragment holding a non-zero weight in some group, whole
    (:func:`forms.compress.counting.fragment_rows` of the rows non-zero in some group and column)."""
    mixed: bool
    """Some fragment of some column holds both signs: the layer cannot be stored polarized at this R."""


@dataclass(frozen=True)
class StoredLayer:
    """How one architecture stores one layer: the rows it keeps and the encoding of its crossbar sets."""

    rows: int
    """Crossbar rows of each group the design keeps."""
    encoding: Encoding
    """The encoding of the stored sets (their number, the crossbar count): the architecture's own, or
    differential for a mixed-sign layer on a polarized architecture (see the module docstring)."""
    mixed: bool
    """A polarized architecture stores the layer as two single-signed sets: its fragments mix signs."""


def fragment_uses(weight_int: Tensor, fragment_sizes: Iterable[int]) -> tuple[FragmentUse, ...]:
    """The :class:`FragmentUse` of integer matrices (groups, rows, cols) at each of ``fragment_sizes``.

    Rows follow the one geometry every group shares: a fragment is kept when it holds a non-zero weight
    in some group, as a row is compacted away only when it is zero in every group.
    """
    from forms.compress.counting import fragment_rows, layer_encoding

    nonzero_rows = weight_int.ne(0).any(dim=2).any(dim=0).reshape(1, -1, 1)
    sizes = tuple(fragment_sizes)
    mixed: dict[int, bool] = {}
    for r in sorted(set(sizes)):  # a fragment of r rows holds whole fragments of every divisor of r
        implied = any(mixed[d] for d in mixed if r % d == 0)
        mixed[r] = implied or layer_encoding(weight_int, r) is Encoding.DIFFERENTIAL
    return tuple(FragmentUse(r, fragment_rows(nonzero_rows, r)[0], mixed[r]) for r in sizes)


def storage_notes(
    arch_name: str, fragment_size: int, names: Sequence[str], stored: Sequence[StoredLayer]
) -> list[str]:
    """Assumptions an estimate states about layers ``names`` stored as ``stored`` on architecture
    ``arch_name`` with fragments of ``fragment_size`` rows: the mixed-sign layers costed on two sets."""
    mixed = [name for name, layer in zip(names, stored, strict=True) if layer.mixed]
    if not mixed:
        return []
    return [
        f"{len(mixed)} layer(s) of the checkpoint hold fragments of {fragment_size} rows with both signs "
        f"({', '.join(mixed)}), which {arch_name} cannot store polarized: costed as the weights allow, "
        "on two crossbar sets (positive and negative magnitudes, each fragment single-signed), every "
        "all-zero row dropped, as forms compress counts them (final_usable)"
    ]


__all__ = ["COUNTED_FRAGMENT_SIZES", "FragmentUse", "StoredLayer", "fragment_uses", "storage_notes"]
