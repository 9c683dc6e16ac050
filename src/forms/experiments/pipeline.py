"""The shared pipeline of `forms demo` and `forms reproduce`: train -> compress -> simulate -> estimate.

Every step writes its own subfolder of the output directory and is skipped when its output is complete,
so an interrupted job resumes where it stopped. The functions return the stages' typed results, ready
for :class:`forms.report.Summary`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from forms.compress.result import CompressResult
from forms.config import CrossbarSpec
from forms.cost.activity import SkipFractions
from forms.cost.estimate import Estimate
from forms.encoding import Encoding
from forms.experiments.stages import compress_stage, estimate_stage, load_done, simulate_stage, train_stage
from forms.io import write_json_atomic
from forms.nn.train_result import TrainResult
from forms.report.records import RunSetup, SimulationRun, StageTimings

CHECKPOINT = "checkpoint.pt"


STAGE_TIME = "stage_time.json"
"""File in a stage's folder holding the wall seconds the stage took when it ran."""

ResultT = TypeVar("ResultT")


@dataclass
class StageClock:
    """Wall seconds of each stage, keyed by the stage's folder relative to ``root``.

    A stage that runs records its seconds in ``<folder>/stage_time.json``; a later job that reuses the
    finished stage reports that figure under ``earlier_seconds``, so a resumed job still says what
    every stage cost.
    """

    root: Path
    seconds: dict[str, float] = field(default_factory=dict)
    earlier_seconds: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)

    def key(self, out_dir: Path) -> str:
        """The stage's name: its folder relative to ``root``, which holds every stage of a job."""
        return Path(out_dir).relative_to(self.root).as_posix()

    def run(self, out_dir: Path, fn: Callable[[], ResultT], done_file: str = "metrics.json") -> ResultT:
        """Call ``fn()``; time it, or record the stage as reused when ``fn`` left an existing
        ``out_dir/done_file`` as it was (a stage recomputes, and rewrites, an output of other inputs)."""
        key = self.key(out_dir)
        before = _file_stamp(Path(out_dir) / done_file)
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        if before is not None and before == _file_stamp(Path(out_dir) / done_file):
            self.reused.append(key)
            recorded = load_done(out_dir, STAGE_TIME)
            if recorded is not None and isinstance(recorded.get("seconds"), int | float):
                self.earlier_seconds[key] = float(recorded["seconds"])
            return result
        self.seconds[key] = seconds
        write_json_atomic({"seconds": seconds}, Path(out_dir) / STAGE_TIME)
        return result

    def timings(self) -> StageTimings:
        """The seconds recorded so far (in summary.json ``meta``)."""
        return StageTimings(dict(self.seconds), dict(self.earlier_seconds), list(self.reused))


def _file_stamp(path: Path) -> tuple[int, int] | None:
    """(inode, modification time in ns) of ``path``, None when missing: an atomic rewrite changes it."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def train_float(out: Path, clock: StageClock, progress: bool, **train_spec: Any) -> TrainResult:
    """Train the float model in ``out`` (resuming or reusing a finished run)."""
    return clock.run(out, lambda: train_stage(out, progress=progress, **train_spec))


def compress_float(
    float_dir: Path,
    out: Path,
    clock: StageClock,
    compress_spec: Mapping[str, Any],
    progress: bool = False,
) -> CompressResult:
    """ADMM-compress ``float_dir/checkpoint.pt`` into ``out`` (resuming or reusing)."""
    return clock.run(
        out, lambda: compress_stage(float_dir / CHECKPOINT, out, progress=progress, **compress_spec)
    )


def lossless_bits(encoding: Encoding | str, crossbar: CrossbarSpec, flipped: bool) -> int:
    """Lossless ADC width of ``encoding`` on ``crossbar`` with a 1-bit DAC."""
    return Encoding.parse(encoding).lossless_adc_bits(crossbar, dac_bits=1, flipped=flipped)


@dataclass(frozen=True)
class SimSetup:
    """One simulation run of a job: how the report names it and what the simulator is asked."""

    name: str
    setup: RunSetup

    def sim_spec(self) -> dict[str, Any]:
        """Keyword arguments of :class:`forms.sim.spec.SimSpec`."""
        setup = self.setup
        return {
            "encoding": setup.encoding,
            "adc_bits": setup.adc_bits,
            "flipped": setup.flipped,
            "limit": setup.limit,
            "devices": {"variation": setup.variation_sigma},
            "runs": setup.runs,
            "seed": setup.seed,
        }


@dataclass(frozen=True)
class SetupPlan:
    """What :func:`standard_setups` makes: per encoding an ideal run, a narrower ADC and variation."""

    encodings: Sequence[Encoding | str]
    crossbar: CrossbarSpec
    """Geometry the lossless ADC widths are computed for (its R is the polarized fragment size)."""
    ideal_limit: int | None = None
    narrow_drop: int = 1
    """Bits below lossless of the narrow-ADC runs (0: no such runs)."""
    narrow_limit: int | None = 2000
    sigma: float = 0.1
    """Log-normal variation sigma of the variation runs (0: no such runs)."""
    runs: int = 5
    variation_limit: int | None = 1000
    seed: int = 0

    def modes(self) -> list[str]:
        """The run modes this plan makes, in order."""
        return [
            mode
            for mode, wanted in (
                ("ideal", True),
                ("adc", self.narrow_drop > 0),
                ("variation", self.sigma > 0 and self.runs >= 1),
            )
            if wanted
        ]

    def setup(self, mode: str, encoding: Encoding) -> SimSetup:
        """The run of ``encoding`` in ``mode``, its columns flipped as every preset's ADC assumes (ISAAC's
        and PRIME's 8 bits for 128-row columns, FORMS's 4 bits for R = 8 fragments): the lossless and
        narrow widths are those of flipped columns."""
        flipped = True
        bits = lossless_bits(encoding, self.crossbar, flipped)
        if mode == "ideal":
            ideal = RunSetup(encoding, mode, bits, flipped, limit=self.ideal_limit, seed=self.seed)
            return SimSetup(f"{encoding}-ideal", ideal)
        if mode == "adc":
            narrow = max(1, bits - self.narrow_drop)
            adc = RunSetup(encoding, mode, narrow, flipped, limit=self.narrow_limit, seed=self.seed)
            return SimSetup(f"{encoding}-adc{narrow}", adc)
        varied = RunSetup(
            encoding, mode, bits, flipped, self.sigma, self.runs, self.variation_limit, self.seed
        )
        return SimSetup(f"{encoding}-sigma{self.sigma:g}", varied)


def standard_setups(plan: SetupPlan) -> list[SimSetup]:
    """Every run of ``plan``: mode by mode (ideal, narrow ADC, variation), encoding by encoding."""
    return [plan.setup(mode, Encoding.parse(enc)) for mode in plan.modes() for enc in plan.encodings]


def simulate_all(
    checkpoint: Path, out: Path, setups: Sequence[SimSetup], clock: StageClock, progress: bool = False
) -> dict[str, SimulationRun]:
    """Run every setup into ``out/<name>`` (reusing finished ones); the runs by name."""
    results: dict[str, SimulationRun] = {}
    for s in setups:
        run_dir = out / s.name
        metrics = clock.run(
            run_dir, partial(simulate_stage, checkpoint, run_dir, progress=progress, **s.sim_spec())
        )
        results[s.name] = SimulationRun(s.setup, metrics)
    return results


def estimate_all(
    out: Path,
    archs: Sequence[str],
    model: str,
    clock: StageClock,
    checkpoint: Path | None = None,
    activity: Mapping[str, Any] | SkipFractions | None = None,
    input_shape: Sequence[int] | None = None,
    extra_assumptions: Sequence[str] = (),
) -> dict[str, Estimate]:
    """The estimate of ``model`` on every arch, written into ``out/<arch>`` (reusing finished ones)."""
    results = {}
    for arch in archs:
        arch_dir = out / arch
        stage = partial(
            estimate_stage,
            arch_dir,
            arch,
            model,
            input_shape=input_shape,
            checkpoint=checkpoint,
            activity=activity,
            extra_assumptions=extra_assumptions,
        )
        results[arch] = clock.run(arch_dir, stage, done_file="estimate.json")
    return results
