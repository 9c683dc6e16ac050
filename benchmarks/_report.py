"""Shared helper: each benchmark script owns one marked section of docs/benchmarks.md."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path
from typing import Any

REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

GPU_BASELINE_DROP = {8: 0.24, 16: 0.76, 128: 1.35}
"""Accuracy drop (points) per R of the plain ADMM baseline quoted in issue 3 (ResNet-20/Fashion-MNIST, GPU,
float 94.7%, 6 rounds x 2 epochs + 8 retraining epochs)."""
TARGET_DROP = {8: 0.2, 16: 0.5}
"""Issue 3's targets for the same sweep."""


def machine_line() -> str:
    """One line describing the machine a figure was measured on."""
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"{platform.system()}"
    )


def stamp() -> str:
    """UTC date and time of a measurement."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def update_section(name: str, body: str, path: Path = REPORT) -> Path:
    """Replace (or append) the ``<!-- bench:name -->`` ... ``<!-- /bench:name -->`` section, atomically."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else "# Benchmarks\n\nEach section is written by its script.\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def residual_layer_table(history: list[dict[str, Any]]) -> list[str]:
    """Markdown table of every layer's ||W - Z|| / ||W|| after each ADMM round: one row per layer."""
    head = " | ".join(f"round {h['round']} (rho {h['rho']:.3g})" for h in history)
    lines = [f"| layer | {head} |", "|---" * (len(history) + 1) + "|"]
    for name in history[0]["residuals"] if history else []:
        lines.append(f"| {name} | " + " | ".join(f"{h['residuals'][name]:.4f}" for h in history) + " |")
    return lines
