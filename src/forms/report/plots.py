"""Matplotlib (Agg) plots rendered to PNG bytes: grouped bars, stacked bars, lines, Pareto scatters,
tornado charts and break-even maps.

Each function takes plain lists (read from summary.json by the caller) and returns PNG bytes, so a
plot never computes a number the summary does not hold.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure as MplFigure

Number = float | int | None


def _clean(values: Sequence[Number]) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


def _png(fig: MplFigure) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _width(n: int) -> float:
    return min(11.0, max(5.5, 0.55 * n + 3))


def grouped_bars(
    labels: Sequence[str],
    series: Mapping[str, Sequence[Number]],
    ylabel: str,
    title: str,
    errors: Mapping[str, Sequence[Number]] | None = None,
    log: bool = False,
    hline: float | None = None,
    ylim: tuple[float, float] | None = None,
) -> bytes:
    """Bars of several series side by side for each label; optional error bars, reference line, y range."""
    fig, ax = plt.subplots(figsize=(_width(len(labels) * max(1, len(series))), 3.8))
    n = max(1, len(series))
    width = 0.8 / n
    for i, (name, values) in enumerate(series.items()):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(labels))]
        err = _clean(errors[name]) if errors and name in errors else None
        ax.bar(xs, _clean(values), width, label=name, yerr=err, capsize=3 if err else 0)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30 if max((len(s) for s in labels), default=0) > 8 else 0, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if log:
        ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    if hline is not None:
        ax.axhline(hline, color="black", linewidth=0.8, linestyle="--")
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def stacked_bars(
    labels: Sequence[str], components: Mapping[str, Sequence[Number]], ylabel: str, title: str
) -> bytes:
    """One bar per label, stacked by component (e.g. area by component per architecture)."""
    fig, ax = plt.subplots(figsize=(_width(len(labels)), 4.2))
    bottom = [0.0] * len(labels)
    for name, values in components.items():
        vals = [0.0 if v is None else float(v) for v in values]
        ax.bar(range(len(labels)), vals, 0.6, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def lines(
    x: Sequence[Number],
    series: Mapping[str, Sequence[Number]],
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
    errors: Mapping[str, Sequence[Number]] | None = None,
    logy: bool = False,
) -> bytes:
    """One line with markers per series over a shared x axis; many series get a legend beside the axes."""
    many = len(series) > 8
    fig, ax = plt.subplots(figsize=(9.0 if many else 6.5, 3.8))
    for name, values in series.items():
        err = _clean(errors[name]) if errors and name in errors else None
        ax.errorbar(_clean(x), _clean(values), yerr=err, marker="o", label=name, capsize=3 if err else 0)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if many:
        ax.legend(fontsize=6, ncol=2, bbox_to_anchor=(1.02, 1), loc="upper left")
    elif len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def pareto_mask(xs: Sequence[float], ys: Sequence[float]) -> list[bool]:
    """Points not dominated when both x and y are to be maximized (NaN points are never on the front)."""
    points = list(zip(xs, ys, strict=True))
    mask = []
    for i, (xi, yi) in enumerate(points):
        if xi != xi or yi != yi:  # NaN
            mask.append(False)
            continue
        dominated = any(
            (xj >= xi and yj >= yi and (xj > xi or yj > yi))
            for j, (xj, yj) in enumerate(points)
            if j != i and xj == xj and yj == yj
        )
        mask.append(not dominated)
    return mask


def pareto_scatter(
    xs: Sequence[Number],
    ys: Sequence[Number],
    groups: Sequence[str],
    xlabel: str,
    ylabel: str,
    title: str,
    maximize_x: bool = True,
) -> bytes:
    """Scatter of design points coloured by group, with the Pareto front (max y; max or min x) drawn."""
    x = _clean(xs)
    y = _clean(ys)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for group in dict.fromkeys(groups):
        idx = [i for i, g in enumerate(groups) if g == group]
        ax.scatter([x[i] for i in idx], [y[i] for i in idx], label=group, s=22, alpha=0.8)
    signed_x = x if maximize_x else [-v for v in x]
    mask = pareto_mask(signed_x, y)
    front = sorted((x[i], y[i]) for i, m in enumerate(mask) if m)
    if front:
        ax.plot(
            [p[0] for p in front], [p[1] for p in front], color="black", linewidth=1, label="Pareto front"
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)


def tornado(
    labels: Sequence[str],
    spans: Mapping[str, Sequence[tuple[float, float]]],
    base: Mapping[str, float],
    title: str,
) -> bytes:
    """A tornado chart per metric (panels side by side): each label's (low, high) span around the base
    value (solid line), with the break-even ratio 1 dashed; the first label is drawn on top, and a span
    of zero width shows as a tick."""
    fig, axes = plt.subplots(
        1, len(spans), figsize=(5.2 * len(spans) + 2.5, 0.45 * len(labels) + 1.6), sharey=True, squeeze=False
    )
    ys = list(range(len(labels)))[::-1]
    for ax, (metric, metric_spans) in zip(axes[0], spans.items(), strict=True):
        lows = [low for low, _ in metric_spans]
        widths = [high - low for low, high in metric_spans]
        ax.barh(ys, widths, left=lows, height=0.6, color="#4c78a8")
        ax.plot(lows, ys, marker="|", markersize=12, linestyle="none", color="#4c78a8")  # zero-width bars too
        ax.axvline(base[metric], color="black", linewidth=1.2, label="at the presets")
        ax.axvline(1.0, color="#c0392b", linewidth=1.0, linestyle="--", label="break-even (1)")
        ax.set_xlabel(f"{metric} ratio")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(ys)
    axes[0][0].set_yticklabels(labels, fontsize=8)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    return _png(fig)


def break_even_maps(
    xs: Sequence[float],
    ys: Sequence[float],
    grids: Mapping[str, Sequence[Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str,
    marked_x: float | None = None,
    marked_y: float | None = None,
) -> bytes:
    """A filled map of a ratio over (x, y) per metric (grids[metric][i][j] at ys[i], xs[j]), with its
    ratio = 1 contour; ``marked_x`` (dotted) and ``marked_y`` (dashed) mark a preset and a measurement."""
    fig, axes = plt.subplots(1, len(grids), figsize=(5.4 * len(grids), 4.0), squeeze=False)
    for ax, (metric, grid) in zip(axes[0], grids.items(), strict=True):
        mesh = ax.contourf(list(xs), list(ys), [list(row) for row in grid], levels=12, cmap="viridis")
        fig.colorbar(mesh, ax=ax, label=f"{metric} ratio")
        values = [v for row in grid for v in row]
        if min(values) < 1.0 < max(values):
            ax.contour(list(xs), list(ys), [list(row) for row in grid], levels=[1.0], colors="white")
        if marked_x is not None:
            ax.axvline(marked_x, color="white", linestyle=":", linewidth=1.2, label=f"preset: {marked_x:g}")
        if marked_y is not None:
            ax.axhline(
                marked_y, color="orange", linestyle="--", linewidth=1.2, label=f"measured: {marked_y:.3g}"
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(metric, fontsize=9)
        if marked_x is not None or marked_y is not None:
            ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(title)
    return _png(fig)
