"""Progress reporting for long loops, shared by training, compression and simulation.

``make_progress(enabled)`` gives a ``rich.progress.Progress`` that draws live bars on stderr when stderr is a
terminal. When it is not (``nohup ... > run.log``, a batch scheduler, CI), a live bar draws nothing until the
end, so :class:`LogProgress` writes one plain line per task each time it crosses another tenth of its total.
``enabled=False`` gives a disabled one (every call a no-op) for tests, non-main distributed ranks or
``--quiet``.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

LOG_STEPS = 10
"""A :class:`LogProgress` task writes a line each time it completes another 1/LOG_STEPS of its total."""


def _clock(seconds: float | None) -> str:
    return "-:--:--" if seconds is None else str(dt.timedelta(seconds=int(seconds)))


class LogProgress(Progress):
    """A ``Progress`` for consoles that are not terminals: plain, timestamped lines instead of a live bar.

    A task writes ``HH:MM:SS description done/total elapsed H:MM:SS, left H:MM:SS status`` when it passes
    each tenth of its total (and when it completes); ``reset`` starts its count again.
    """

    def __init__(self, *columns: Any, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self._logged: dict[TaskID, int] = {}

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        """Update a task as ``Progress.update`` does, then log it if it passed another tenth."""
        super().update(task_id, **kwargs)
        self._log(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        """Advance a task as ``Progress.advance`` does, then log it if it passed another tenth."""
        super().advance(task_id, advance)
        self._log(task_id)

    def reset(self, task_id: TaskID, **kwargs: Any) -> None:
        """Reset a task as ``Progress.reset`` does; its next tenth is logged again."""
        super().reset(task_id, **kwargs)
        self._logged[task_id] = self._step(task_id)

    def _step(self, task_id: TaskID) -> int:
        task = self._tasks[task_id]
        if not task.total:
            return 0
        return math.floor(LOG_STEPS * min(task.completed / task.total, 1.0))

    def _log(self, task_id: TaskID) -> None:
        if self.disable:
            return
        step = self._step(task_id)
        if step <= self._logged.setdefault(task_id, 0):
            return
        self._logged[task_id] = step
        task = self._tasks[task_id]
        status = task.fields.get("status", "")
        self.console.print(
            f"{dt.datetime.now():%H:%M:%S} {task.description.strip()} {task.completed:g}/{task.total:g} "
            f"elapsed {_clock(task.elapsed)}, left {_clock(task.time_remaining)} {status}".rstrip(),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def make_progress(enabled: bool = True, transient: bool = False, console: Console | None = None) -> Progress:
    """A progress display (description, bar, done/total, elapsed, remaining, extra ``status`` field).

    Draws on ``console`` (default: stderr): live bars on a terminal, :class:`LogProgress` lines otherwise.
    Use as a context manager; add tasks with ``progress.add_task(description, total=n, status="")``.
    """
    console = console or Console(stderr=True)
    kind = Progress if console.is_terminal else LogProgress
    return kind(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        disable=not enabled,
        transient=transient,
    )
