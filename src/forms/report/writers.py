"""Render a :class:`~forms.report.model.Report` as self-contained HTML, Markdown, CSV and JSON.

``report.html`` embeds its plots as base64 PNG and its CSS inline, loads nothing from the network and
runs no script. Every table cell that shows a summary value carries ``data-path`` (the summary.json
field) and ``data-value`` (the raw value), so the report can be checked against summary.json.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forms.io import csv_text, write_bytes_atomic, write_json_atomic, write_text_atomic
from forms.report.model import Cell, Report, Table

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d232a;
       background: #fafbfc; line-height: 1.45; }
header { background: #17324d; color: #fff; padding: 1.2em 2em; }
header h1 { margin: 0 0 .2em 0; font-size: 1.6em; }
header p { margin: 0; opacity: .85; }
nav { background: #e8eef4; padding: .5em 2em; font-size: .92em; position: sticky; top: 0; }
nav a { margin-right: 1.1em; color: #17324d; text-decoration: none; }
main { padding: 0 2em 3em 2em; max-width: 1200px; }
section { margin-top: 2em; }
h2 { border-bottom: 2px solid #17324d; padding-bottom: .2em; }
h3 { margin-bottom: .3em; }
table.data { border-collapse: collapse; margin: .5em 0 1em 0; font-size: .9em; background: #fff; }
table.data th, table.data td { border: 1px solid #c9d3dd; padding: .25em .6em; }
table.data th { background: #e8eef4; text-align: left; }
table.data td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; background: #fff; border: 1px solid #c9d3dd; padding: .5em; display: inline-block; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: .85em; color: #4a5560; margin-top: .3em; }
p.note { font-size: .85em; color: #4a5560; }
"""


@dataclass(frozen=True)
class ReportFiles:
    """Paths of everything :func:`write_report` wrote."""

    html: Path
    markdown: Path
    summary: Path
    tables: list[Path]
    figures: list[Path]

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form with string paths."""
        return {
            "html": str(self.html),
            "markdown": str(self.markdown),
            "summary": str(self.summary),
            "tables": [str(p) for p in self.tables],
            "figures": [str(p) for p in self.figures],
        }


def _is_number(cell: Cell) -> bool:
    return cell.fmt != "text" and cell.value is not None and not isinstance(cell.value, str)


def _html_cell(cell: Cell) -> str:
    attrs = ""
    if cell.path is not None:
        raw = "" if cell.value is None else str(cell.value)
        attrs = f' data-path="{html.escape(cell.path)}" data-value="{html.escape(raw)}" data-fmt="{cell.fmt}"'
    cls = ' class="num"' if _is_number(cell) else ""
    return f"<td{cls}{attrs}>{html.escape(cell.text)}</td>"


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(col)}</th>" for col in table.columns)
    body = "\n".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in table.rows)
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return (
        f'<h3>{html.escape(table.title)}</h3>\n<table class="data" id="table-{html.escape(table.id)}">'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>{note}"
    )


def render_html(report: Report) -> str:
    """The whole report as one self-contained HTML document."""
    report.check_ids()
    nav = "".join(f'<a href="#{html.escape(s.id)}">{html.escape(s.title)}</a>' for s in report.sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No external resource may load: forbid everything but inline styles and data: images.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{html.escape(report.title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<header><h1>{html.escape(report.title)}</h1><p>{html.escape(report.subtitle)}</p></header>",
        f"<nav>{nav}</nav><main>",
    ]
    for section in report.sections:
        parts.append(f'<section id="{html.escape(section.id)}"><h2>{html.escape(section.title)}</h2>')
        parts.extend(f"<p>{html.escape(p)}</p>" for p in section.paragraphs)
        if section.bullets:
            items = "".join(f"<li>{html.escape(b)}</li>" for b in section.bullets)
            parts.append(f"<ul>{items}</ul>")
        parts.extend(_html_table(t) for t in section.tables)
        for fig in section.figures:
            data = base64.b64encode(fig.png).decode("ascii")
            caption = fig.caption or fig.title
            parts.append(
                f'<figure id="figure-{html.escape(fig.id)}"><img id="img-{html.escape(fig.id)}" '
                f'alt="{html.escape(fig.title)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report, figure_dir: str = "figures") -> str:
    """The report as Markdown; figures are referenced as ``<figure_dir>/<id>.png`` files."""
    report.check_ids()
    lines = [f"# {report.title}", "", report.subtitle, ""]
    for section in report.sections:
        lines += [f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        if section.bullets:
            lines += [f"- {_md_escape(b)}" for b in section.bullets] + [""]
        for table in section.tables:
            lines += [f"### {table.title}", ""]
            lines.append("| " + " | ".join(_md_escape(c) for c in table.columns) + " |")
            lines.append("|" + "|".join("---" for _ in table.columns) + "|")
            for row in table.rows:
                lines.append("| " + " | ".join(_md_escape(c.text) for c in row) + " |")
            lines.append("")
            if table.note:
                lines += [f"*{table.note}*", ""]
        for fig in section.figures:
            lines += [f"![{fig.title}]({figure_dir}/{fig.id}.png)", ""]
            if fig.caption:
                lines += [f"*{fig.caption}*", ""]
    return "\n".join(lines)


def render_csv(table: Table) -> str:
    """One table as CSV with raw (unformatted) values; empty for missing values."""
    return csv_text(table.columns, [[c.value for c in row] for row in table.rows])


def write_report(report: Report, out_dir: str | Path) -> ReportFiles:
    """Write report.html, report.md, summary.json, tables/<id>.csv and figures/<id>.png under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary_path = write_json_atomic(report.summary.to_dict(), out / "summary.json")
    table_paths = [write_text_atomic(render_csv(t), out / "tables" / f"{t.id}.csv") for t in report.tables()]
    figure_paths = [write_bytes_atomic(f.png, out / "figures" / f"{f.id}.png") for f in report.figures()]
    md_path = write_text_atomic(render_markdown(report), out / "report.md")
    html_path = write_text_atomic(render_html(report), out / "report.html")
    return ReportFiles(html_path, md_path, summary_path, table_paths, figure_paths)
