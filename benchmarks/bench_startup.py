"""Start-up time of the ``forms`` command in fresh processes; writes the ``startup`` section of
docs/benchmarks.md.

Issue 20's targets: ``forms --help`` at most 1 s and ``forms estimate --arch forms-8 --model resnet50
--input-shape 3,224,224`` at most 2 s in a fresh process on an idle machine. Each command runs
``--repeat`` times in a fresh process, the commands interleaved round by round so that a change in
the machine's load touches all of them alike, next to the floors measured in the same run: the bare
interpreter (``python -c pass``) and ``python -c 'import torch'``. Reported per command: best and
median wall time, and best user+sys CPU time of the process (less sensitive to other jobs on a shared
machine than wall time), with the load average before and after.

    .venv/bin/python benchmarks/bench_startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import machine_line, stamp, update_section

FORMS = str(Path(sys.executable).parent / "forms")
"""The console script installed next to this interpreter."""

ESTIMATE = ["estimate", "--arch", "forms-8", "--model", "resnet50", "--input-shape", "3,224,224"]
"""The estimate issue 20 times (ResNet-50 on ImageNet inputs: shapes from the packaged zoo table)."""


@dataclass(frozen=True)
class Case:
    """One command line to time, with its target in seconds (None for a floor)."""

    label: str
    argv: list[str]
    target_s: float | None


@dataclass(frozen=True)
class Timing:
    """Wall and CPU (user + sys) seconds of each run of one case."""

    case: Case
    wall_s: list[float]
    cpu_s: list[float]


def cases(out: Path) -> list[Case]:
    """The floors and the timed commands; estimates write into ``out``."""
    py = sys.executable
    return [
        Case("`python -c pass` (floor)", [py, "-c", "pass"], None),
        Case("`python -c 'import torch'` (floor)", [py, "-c", "import torch"], None),
        Case("`forms --help`", [FORMS, "--help"], 1.0),
        Case(
            "`forms estimate --arch forms-8 --model resnet50 --input-shape 3,224,224`",
            [FORMS, *ESTIMATE, "--out", str(out / "table")],
            2.0,
        ),
        Case(
            "same on 3,192,192 (not in the table: builds the model, imports torch)",
            [FORMS, *ESTIMATE[:-1], "3,192,192", "--out", str(out / "built")],
            None,
        ),
    ]


def run_once(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and user+sys CPU seconds of ``argv`` in a fresh process (stdout discarded)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "NO_COLOR": "1"}
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err.read().decode()}")
    return wall, usage.ru_utime + usage.ru_stime


def measure(repeat: int, out: Path) -> list[Timing]:
    """Every case ``repeat`` times, round-robin."""
    todo = cases(out)
    walls: dict[str, list[float]] = {c.label: [] for c in todo}
    cpus: dict[str, list[float]] = {c.label: [] for c in todo}
    for _ in range(repeat):
        for case in todo:
            wall, cpu = run_once(case.argv)
            walls[case.label].append(wall)
            cpus[case.label].append(cpu)
    return [Timing(c, walls[c.label], cpus[c.label]) for c in todo]


def _within(seconds: float, target: float | None) -> str:
    """'yes' or 'no' against ``target``; empty for a floor."""
    return "" if target is None else ("yes" if seconds <= target else "no")


def _row(t: Timing) -> str:
    """One table row: best and median wall, best CPU, the target and whether each best is within it."""
    best_wall, best_cpu, target = min(t.wall_s), min(t.cpu_s), t.case.target_s
    return (
        f"| {t.case.label} | {best_wall:.3f} | {statistics.median(t.wall_s):.3f} | {best_cpu:.3f} "
        f"| {'' if target is None else f'<= {target:g} s'} | {_within(best_wall, target)} "
        f"| {_within(best_cpu, target)} |"
    )


def section(timings: list[Timing], repeat: int, load_before: float, load_after: float) -> str:
    """The markdown of the ``startup`` section."""
    lines = [
        "## Start-up of the `forms` command (`benchmarks/bench_startup.py`)",
        "",
        f"Measured {stamp()} on {machine_line()}. Command: `.venv/bin/python benchmarks/bench_startup.py "
        f"--repeat {repeat}`. Each command ran {repeat} times in a fresh process, all commands interleaved "
        "round by round. 1-minute load average "
        f"{load_before:.2f} before and {load_after:.2f} after: the machine was shared with other jobs, so "
        "wall times are pessimistic; the CPU time (user + sys of the process) is less sensitive to load. "
        "Targets (issue 20) are for wall time on an idle machine, where a start-up's wall time is close "
        "to its CPU time (one thread); under load the CPU column is the better guide to whether they hold.",
        "",
        "| command | best wall (s) | median wall (s) | best CPU (s) | target | wall within | CPU within |",
        "|---|---|---|---|---|---|---|",
        *[_row(t) for t in timings],
        "",
        "How: command modules are imported only when their command is used (`forms.cli.app.COMMANDS`); "
        "the cost model imports no torch; the layer shapes of zoo models on common inputs come from a "
        "packaged table (`forms/presets/zoo_shapes.json`, `forms.cost.zoo_shape_table`) computed by "
        "building each model, checked against freshly built models by `tests/test_zoo_shape_table.py` "
        "and ignored whenever the zoo's source no longer has the digest it was computed from. Other inputs "
        "and user models are built on the meta device, as the last row shows.",
    ]
    return "\n".join(lines)


def main() -> None:
    """Measure, print and write the ``startup`` section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="Fresh processes per command (default 5).")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        timings = measure(args.repeat, Path(tmp))
    body = section(timings, args.repeat, load_before, os.getloadavg()[0])
    print(body)
    print(f"wrote {update_section('startup', body)}")


if __name__ == "__main__":
    main()
