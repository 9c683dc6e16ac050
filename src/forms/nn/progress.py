"""Progress reporting for long loops, shared by training, compression and simulation.

``make_progress(enabled)`` gives a ``rich.progress.Progress`` that draws live bars on stderr when stderr is a
terminal. When it is not (``nohup ... > run.log``, a batch scheduler, CI), a live bar draws nothing until the
end, so :class:`LogProgress` writes one plain line per task each time it crosses another tenth of its total.
``enabled=False`` gives a disabled one (every call a no-op) for tests, non-main distributed ranks or
``--quiet``.

Both show the time left from :func:`time_left`: rich's estimate from the last 30 seconds of steps, or,
for a task whose steps are minutes apart (ADMM rounds, retraining epochs), its average pace since it
started.
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
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

LOG_STEPS = 10
"""A :class:`LogProgress` task writes a line each time it completes another 1/LOG_STEPS of its total."""


def _clock(seconds: float | None) -> str:
    return "-:--:--" if seconds is None else str(dt.timedelta(seconds=int(seconds)))


START_FIELD = "_completed_at_start"
"""Task field holding the count a :class:`PacedProgress` task (re)started from."""


def time_left(task: Task) -> float | None:
    """Seconds ``task`` still needs, or None before it can tell.

    rich's own estimate uses the steps of the last 30 seconds, so it is None for a task whose steps are
    further apart than that. Such a task gets ``elapsed x steps left / steps done since it started``,
    where it started from the count in its :data:`START_FIELD` (a resumed run starts past 0).
    """
    recent = task.time_remaining
    if recent is not None or task.total is None or task.elapsed is None:
        return recent
    done = task.completed - task.fields.get(START_FIELD, 0)
    if done <= 0:
        return None
    return task.elapsed * max(task.total - task.completed, 0) / done


class TimeLeftColumn(ProgressColumn):
    """The :func:`time_left` of a task, as ``H:MM:SS``."""

    def render(self, task: Task) -> Text:
        """The cell of ``task``."""
        return Text(_clock(time_left(task)), style="progress.remaining")


class PacedProgress(Progress):
    """A ``Progress`` whose tasks remember the count they (re)started from, for :func:`time_left`."""

    def add_task(
        self,
        description: str,
        start: bool = True,
        total: float | None = 100.0,
        completed: int = 0,
        visible: bool = True,
        **fields: Any,
    ) -> TaskID:
        """Add a task as ``Progress.add_task`` does, noting ``completed`` as its starting count."""
        return super().add_task(
            description, start, total, completed, visible, **fields, **{START_FIELD: completed}
        )

    def reset(self, task_id: TaskID, **kwargs: Any) -> None:
        """Reset a task as ``Progress.reset`` does; its new count is its starting count."""
        super().reset(task_id, **kwargs)
        self._tasks[task_id].fields[START_FIELD] = kwargs.get("completed", 0)


class LogProgress(PacedProgress):
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
        """Reset a task as :meth:`PacedProgress.reset` does; its next tenth is logged again."""
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
            f"elapsed {_clock(task.elapsed)}, left {_clock(time_left(task))} {status}".rstrip(),
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
    kind = PacedProgress if console.is_terminal else LogProgress
    return kind(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeLeftColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        disable=not enabled,
        transient=transient,
    )
