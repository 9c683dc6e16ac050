"""The shared pipeline of `forms demo` and `forms reproduce`: train -> compress -> simulate -> estimate.

Every step writes its own subfolder of the output directory and is skipped when its output is complete,
so an interrupted job resumes where it stopped. The functions return the plain dicts the stages wrote,
ready for :func:`forms.report.build_summary`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forms.config import CrossbarSpec
from forms.encoding import Encoding
from forms.experiments.stages import compress_stage, estimate_stage, load_done, simulate_stage, train_stage
from forms.io import write_json_atomic

CHECKPOINT = "checkpoint.pt"


STAGE_TIME = "stage_time.json"
"""File in a stage's folder holding the wall seconds the stage took when it ran."""


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

    def run(self, out_dir: Path, fn: Any, done_file: str = "metrics.json") -> Any:
        """Call ``fn()``; time it, or record the stage as reused when ``out_dir/done_file`` exists."""
        key = self.key(out_dir)
        if load_done(out_dir, done_file) is not None:
            self.reused.append(key)
            recorded = load_done(out_dir, STAGE_TIME)
            if recorded is not None and isinstance(recorded.get("seconds"), int | float):
                self.earlier_seconds[key] = float(recorded["seconds"])
            return fn()
        start = time.perf_counter()
        result = fn()
        self.seconds[key] = time.perf_counter() - start
        write_json_atomic({"seconds": self.seconds[key]}, Path(out_dir) / STAGE_TIME)
        return result

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (in summary.json ``meta``)."""
        return {
            "stage_seconds": dict(self.seconds),
            "earlier_stage_seconds": dict(self.earlier_seconds),
            "reused_stages": list(self.reused),
        }


def train_float(out: Path, clock: StageClock, progress: bool, **train_spec: Any) -> dict[str, Any]:
    """Train the float model in ``out`` (resuming or reusing a finished run)."""
    return clock.run(out, lambda: train_stage(out, progress=progress, **train_spec))


def compress_float(
    float_dir: Path,
    out: Path,
    clock: StageClock,
    compress_spec: Mapping[str, Any],
    progress: bool = False,
) -> dict[str, Any]:
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
    encoding: str
    mode: str
    """'ideal' (lossless ADC, ideal devices), 'adc' (narrower ADC) or 'variation'."""
    adc_bits: int
    flipped: bool = False
    variation_sigma: float = 0.0
    runs: int = 1
    limit: int | None = None
    seed: int = 0

    def setup(self) -> dict[str, Any]:
        """The ``setup`` record in summary.json."""
        return {
            "encoding": self.encoding,
            "mode": self.mode,
            "adc_bits": self.adc_bits,
            "flipped": self.flipped,
            "variation_sigma": self.variation_sigma,
            "runs": self.runs,
            "limit": self.limit,
            "seed": self.seed,
        }

    def sim_spec(self) -> dict[str, Any]:
        """Keyword arguments of :class:`forms.sim.spec.SimSpec`."""
        return {
            "encoding": self.encoding,
            "adc_bits": self.adc_bits,
            "flipped": self.flipped,
            "limit": self.limit,
            "devices": {"variation": self.variation_sigma},
            "runs": self.runs,
            "seed": self.seed,
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
        """The run of ``encoding`` in ``mode``; offset uses ISAAC's flipping (as the isaac-opt preset)."""
        flipped = encoding.supports_flipping
        bits = lossless_bits(encoding, self.crossbar, flipped)
        if mode == "ideal":
            return SimSetup(
                f"{encoding}-ideal", encoding, mode, bits, flipped, limit=self.ideal_limit, seed=self.seed
            )
        if mode == "adc":
            narrow = max(1, bits - self.narrow_drop)
            return SimSetup(
                f"{encoding}-adc{narrow}",
                encoding,
                mode,
                narrow,
                flipped,
                limit=self.narrow_limit,
                seed=self.seed,
            )
        name = f"{encoding}-sigma{self.sigma:g}"
        return SimSetup(
            name, encoding, mode, bits, flipped, self.sigma, self.runs, self.variation_limit, self.seed
        )


def standard_setups(plan: SetupPlan) -> list[SimSetup]:
    """Every run of ``plan``: mode by mode (ideal, narrow ADC, variation), encoding by encoding."""
    return [plan.setup(mode, Encoding.parse(enc)) for mode in plan.modes() for enc in plan.encodings]


def simulate_all(
    checkpoint: Path, out: Path, setups: Sequence[SimSetup], clock: StageClock, progress: bool = False
) -> dict[str, dict[str, Any]]:
    """Run every setup into ``out/<name>`` (reusing finished ones); ``{name: {setup, metrics}}``."""
    results: dict[str, dict[str, Any]] = {}
    for s in setups:
        run_dir = out / s.name
        metrics = clock.run(
            run_dir,
            lambda s=s, run_dir=run_dir: simulate_stage(
                checkpoint, run_dir, progress=progress, **s.sim_spec()
            ),
        )
        results[s.name] = {"setup": s.setup(), "metrics": metrics}
    return results


def estimate_all(
    out: Path,
    archs: Sequence[str],
    model: str,
    clock: StageClock,
    checkpoint: Path | None = None,
    activity: Mapping[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    extra_assumptions: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """estimate.json of ``model`` on every arch into ``out/<arch>`` (reusing finished ones)."""
    results = {}
    for arch in archs:
        arch_dir = out / arch
        results[arch] = clock.run(
            arch_dir,
            lambda arch=arch, arch_dir=arch_dir: estimate_stage(
                arch_dir,
                arch,
                model,
                input_shape=input_shape,
                checkpoint=checkpoint,
                activity=activity,
                extra_assumptions=extra_assumptions,
            ),
            done_file="estimate.json",
        )
    return results
