"""The torch-free part of :mod:`forms.geometry`: a mapped layer's shape facts and fragment counts.

Split out so that the cost model (``forms estimate``) can describe crossbar geometry without
importing torch; :mod:`forms.geometry` re-exports both names, and that is where they are documented
together with the rest of the mapping rules (docs/design.md, "Shared definitions").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from forms.config import check_fragment_size
from forms.errors import ConfigError


def num_row_fragments(rows: int, fragment_size: int) -> int:
    """Fragments per column: ceil(rows / R); ConfigError for R below 1. (That R also divides the
    crossbar rows is checked where the crossbar is known: :func:`forms.config.check_fragment_size`.)"""
    if fragment_size < 1:
        raise ConfigError(f"fragment size R={fragment_size}: a fragment holds at least 1 row")
    return math.ceil(rows / fragment_size)


@dataclass(frozen=True)
class LayerGeometry:
    """Shape facts of one mapped layer, independent of any encoding."""

    name: str
    """The layer's module name."""
    kind: str
    """'conv' or 'linear'."""
    weight_shape: tuple[int, ...]
    """The weight tensor's shape (Cout, Cin/g, kh, kw) or (out_features, in_features)."""
    groups: int
    """Convolution groups (1 for linear layers)."""
    rows: int
    """Crossbar rows (inputs) per group: Cin/g*kh*kw or in_features."""
    cols: int
    """Crossbar columns (outputs) per group: Cout/g or out_features."""

    def row_tiles(self, crossbar_rows: int) -> int:
        """Row tiles per group: ceil(rows / crossbar rows)."""
        return math.ceil(self.rows / crossbar_rows)

    def col_tiles(self, crossbar_cols: int, columns_per_weight: int = 1) -> int:
        """Column tiles per group when each weight takes ``columns_per_weight`` physical columns."""
        return math.ceil(self.cols * columns_per_weight / crossbar_cols)

    def fragments(self, fragment_size: int, crossbar_rows: int | None = None) -> int:
        """Fragments of the whole layer (all groups, all columns)."""
        if crossbar_rows is not None:
            check_fragment_size(fragment_size, crossbar_rows)
        return self.groups * num_row_fragments(self.rows, fragment_size) * self.cols
