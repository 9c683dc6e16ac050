"""The crossbars section of a report: crossbar counts as compression counted them, the physical
reduction factors, and both reduction counts (physical and per weight) side by side. Every number
cell carries the summary.json path of the field it was read from.
"""

from __future__ import annotations

from forms.compress.counting import final_crossbars
from forms.compress.result import CompressResult
from forms.config import CROSSBAR_COLS, CROSSBAR_ROWS
from forms.report import plots
from forms.report.model import (
    Cell,
    Figure,
    Section,
    Table,
    field_cell,
    join_path,
    label,
    number_leaves,
)
from forms.report.summary import Summary

REDUCTION_FACTORS = ("pruning", "quantization", "polarization", "total")
"""The factors both reduction counts share, in the order the report lists them."""


def _reduction_table(compress: CompressResult | None, path: str) -> Table:
    """Both reduction counts side by side: each factor, physical and per weight, then the final
    crossbars, on the encoding the counts use, beside their area equivalent. ``compress`` sits at
    ``path`` in summary.json."""
    table = Table(
        "crossbar-reduction",
        "Reduction: physical (whole crossbars) and per weight",
        ["factor", "physical", "per weight"],
    )
    if compress is None:
        return table
    counts = compress.reduction
    physical_at, per_weight_at = (
        join_path(path, "reduction", "physical"),
        join_path(path, "reduction", "per_weight"),
    )
    for name in REDUCTION_FACTORS:
        table.add(
            [
                label(name),
                field_cell(counts.physical, physical_at, name, "ratio"),
                field_cell(counts.per_weight, per_weight_at, name, "ratio"),
            ]
        )
    final = Cell(final_crossbars(compress.crossbars), join_path(path, "crossbars", "final_usable"), "int")
    table.add(
        [
            label(f"crossbars of the final {counts.final_encoding} design (per weight: area equivalent)"),
            final,
            field_cell(counts.per_weight, per_weight_at, "area_equivalent", "float"),
        ]
    )
    return table


def crossbar_section(
    summary: Summary, compress: CompressResult | None = None, path: str = "compress"
) -> Section:
    """Crossbar counts (dense, pruned, per encoding) and reduction factors, as compression counted them.

    ``compress`` (default ``summary.compress``) is the compression shown, held in summary.json at
    ``path``; the cost model's crossbar counts of every estimate follow the compression's.
    """
    compress = compress or summary.compress
    counts = Table("crossbars", "Crossbar counts", ["quantity", "crossbars"])
    factors = Table("crossbar-factors", "Reduction factors", ["factor", "value"])
    bar_labels: list[str] = []
    bar_values: list[float | None] = []
    crossbars = compress.crossbars if compress is not None else {}
    for cell_path, rel, value in number_leaves(crossbars, join_path(path, "crossbars")):
        if "factor" in rel or "reduction" in rel or "ratio" in rel:
            factors.add([label(rel), Cell(value, cell_path, "ratio")])
        else:
            counts.add([label(rel), Cell(value, cell_path, "int")])
            bar_labels.append(rel)
            bar_values.append(float(value))
    for arch, est in summary.estimate.items():
        used = field_cell(est, join_path("estimate", arch), "crossbars_used", "int")
        counts.add([label(f"{arch}: crossbars used by the cost model"), used])
    geometry = compress.crossbar_geometry if compress is not None else {}
    size = f"{geometry.get('rows', CROSSBAR_ROWS)}x{geometry.get('cols', CROSSBAR_COLS)}"
    section = Section(
        "crossbars",
        "Crossbars and reduction factors",
        paragraphs=[
            f"Crossbars of {size} cells needed by the dense 32-bit model, the pruned model and the final "
            "model under each encoding, and the factors (pruning x quantization x polarization) whose "
            "product is the total reduction, as the compression stage counted them.",
            'Two counts (docs/design.md, "Two reduction counts"): physical, in whole crossbars per layer '
            "(the factors above); per weight, free of the rounding to whole crossbars: pruning = dense / "
            "kept weights, quantization = 32 / weight bits, polarization = crossbar sets of the "
            "differential design / of the final one, total = their product; beside it the area "
            "equivalent, cells used / cells per crossbar. The final design counts each layer polarized "
            "only when none of its fragments holds both signs, differential otherwise (polarization 1).",
        ],
        tables=[counts, factors, _reduction_table(compress, path)],
    )
    if bar_values:
        png = plots.grouped_bars(
            bar_labels, {"crossbars": bar_values}, "crossbars (log)", "Crossbar counts", log=True
        )
        source = join_path(path, "crossbars")
        section.figures.append(Figure("crossbar-counts", "Crossbar counts", png, sources=[source]))
    return section
