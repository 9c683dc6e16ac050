"""Reports: summary.json assembled from the stage outputs, and HTML/Markdown/CSV writers over it.

Typical use::

    summary = build_summary(title=..., parameters=..., assumptions=..., train=..., compress=...,
                            simulate=..., estimate=...)
    write_report(stage_report(summary), out_dir)
"""

from forms.report.model import Cell, Figure, Report, Section, Table, format_value, resolve
from forms.report.sections import stage_report
from forms.report.summary import build_summary, derive
from forms.report.writers import ReportFiles, render_html, render_markdown, write_report

__all__ = [
    "Cell",
    "Figure",
    "Report",
    "ReportFiles",
    "Section",
    "Table",
    "build_summary",
    "derive",
    "format_value",
    "render_html",
    "render_markdown",
    "resolve",
    "stage_report",
    "write_report",
]
