"""Progress on consoles that are not terminals (log files, batch jobs): one line per tenth of a task."""

from __future__ import annotations

import datetime as dt
import io
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from forms.nn.progress import LOG_STEPS, LogProgress, PacedProgress, TimeLeftColumn, make_progress, time_left


def _log_of(total: int, steps: list[int], enabled: bool = True) -> list[str]:
    buf = io.StringIO()
    with make_progress(enabled=enabled, console=Console(file=buf, width=60)) as bar:
        task = bar.add_task("  epoch 1", total=total, status="")
        for i, k in enumerate(steps):
            bar.update(task, advance=k, status=f"loss {i}")
    return [line for line in buf.getvalue().splitlines() if " elapsed " in line]


@settings(max_examples=60, deadline=None)
@given(total=st.integers(1, 500), steps=st.lists(st.integers(1, 50), min_size=1, max_size=60))
def test_one_line_per_tenth_crossed(total: int, steps: list[int]) -> None:
    """A task logs exactly once for every tenth of its total it passes, with its running count."""
    lines = _log_of(total, steps)
    done, expected, last = 0, [], 0
    for k in steps:
        done += k
        step = math.floor(LOG_STEPS * min(done / total, 1.0))
        if step > last:
            expected.append(done)
            last = step
    assert [int(line.split()[3].split("/")[0]) for line in lines] == expected
    assert all(line.split()[1:3] == ["epoch", "1"] for line in lines)
    assert all(line.split()[3].endswith(f"/{total}") for line in lines)


def test_reset_logs_the_next_epoch_again() -> None:
    """After ``reset`` a task's tenths are logged again, under its new description."""
    buf = io.StringIO()
    with make_progress(console=Console(file=buf)) as bar:
        task = bar.add_task("epoch 1", total=4, status="")
        for epoch in (1, 2):
            bar.reset(task, total=4, description=f"epoch {epoch}")
            for _ in range(4):
                bar.advance(task)
    lines = [line.split()[1:4] for line in buf.getvalue().splitlines() if " elapsed " in line]
    assert lines == [["epoch", str(e), f"{k}/4"] for e in (1, 2) for k in (1, 2, 3, 4)]


def test_disabled_and_terminal_consoles_write_no_log_lines() -> None:
    """--quiet writes nothing; a terminal gets rich's live bars, not log lines."""
    assert _log_of(10, [1] * 10, enabled=False) == []
    terminal = make_progress(console=Console(file=io.StringIO(), force_terminal=True))
    assert not isinstance(terminal, LogProgress)
    assert isinstance(make_progress(console=Console(file=io.StringIO())), LogProgress)


class _Clock:
    """A settable clock for ``Progress(get_time=...)``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@settings(max_examples=60, deadline=None)
@given(
    total=st.integers(2, LOG_STEPS),
    start=st.integers(0, LOG_STEPS),
    interval=st.integers(1, 3600),
    data=st.data(),
)
def test_time_left_at_a_steady_pace_is_the_interval_times_the_steps_left(
    total: int, start: int, interval: int, data: st.DataObject
) -> None:
    """Steps ``interval`` seconds apart leave ``interval x steps left``, fast or slow, resumed or not.

    rich alone shows no time left once steps are over 30 s apart (ADMM rounds, retraining epochs).
    With at most LOG_STEPS steps, every step is logged.
    """
    start = min(start, total - 1)
    steps = data.draw(st.integers(1, total - start))
    clock = _Clock()
    buf = io.StringIO()
    with LogProgress(console=Console(file=buf, width=200), get_time=clock) as bar:
        task = bar.add_task("rounds", total=total, completed=start, status="")
        for _ in range(steps):
            clock.now += interval
            bar.advance(task)
        left = time_left(bar.tasks[0])
        cell = TimeLeftColumn().render(bar.tasks[0]).plain
    assert left == interval * (total - start - steps)
    assert cell == str(dt.timedelta(seconds=interval * (total - start - steps)))
    logged = [line for line in buf.getvalue().splitlines() if " elapsed " in line]
    assert logged[-1].split("left ")[1].startswith(cell)


def test_time_left_is_unknown_until_a_step_is_done_and_restarts_with_reset() -> None:
    """No step since the (re)start: no estimate; ``reset`` measures the pace from its new count."""
    clock = _Clock()
    bar = PacedProgress(console=Console(file=io.StringIO()), get_time=clock)
    task = bar.add_task("epochs", total=8, completed=3, status="")
    clock.now = 500.0
    assert time_left(bar.tasks[0]) is None
    bar.advance(task)
    assert time_left(bar.tasks[0]) == 500.0 * 4
    bar.reset(task, total=8, completed=6, status="again")
    assert time_left(bar.tasks[0]) is None
    clock.now += 100.0
    bar.advance(task)
    assert time_left(bar.tasks[0]) == 100.0
    bar.advance(task)
    assert time_left(bar.tasks[0]) == 0.0
