"""Rich progress bars for long loops, shared by training, compression and simulation.

``make_progress(enabled)`` gives a ``rich.progress.Progress`` that draws on stderr, or a disabled one
(every call a no-op) for tests, non-main distributed ranks, or ``--quiet``.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def make_progress(enabled: bool = True, transient: bool = False) -> Progress:
    """A progress display (description, bar, done/total, elapsed, remaining, extra ``status`` field).

    Use as a context manager; add tasks with ``progress.add_task(description, total=n, status="")``.
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=Console(stderr=True),
        disable=not enabled,
        transient=transient,
    )
