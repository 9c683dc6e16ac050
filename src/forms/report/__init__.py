"""Reports: the typed :class:`Summary` of a job's stage results, and HTML/Markdown/CSV writers over it.

Typical use::

    summary = Summary(title=..., meta=RunMeta.now(command), parameters=..., assumptions=...,
                      train=..., compress=..., simulate=..., estimate=...)
    write_report(stage_report(summary), out_dir)
"""

from forms.report.model import Cell, Figure, Report, Section, Table, format_value
from forms.report.records import RunMeta, RunSetup, SimulationRun, StageTimings
from forms.report.sections import stage_report
from forms.report.summary import Summary
from forms.report.writers import ReportFiles, render_html, render_markdown, write_report

__all__ = [
    "Cell",
    "Figure",
    "Report",
    "ReportFiles",
    "RunMeta",
    "RunSetup",
    "Section",
    "SimulationRun",
    "StageTimings",
    "Summary",
    "Table",
    "format_value",
    "render_html",
    "render_markdown",
    "stage_report",
    "write_report",
]
