"""`forms demo`: LeNet-5 on MNIST from data to a FORMS-vs-ISAAC-vs-PRIME report, resumable.

Stages (each in its own subfolder of the output directory, skipped when its output is complete):

1. ``train/``: float LeNet-5 (reused when a finished run is there);
2. ``compress/``: ADMM polarization (R = 8), 8-bit quantization, filter pruning, hard projection and
   masked retraining;
3. ``simulate/<run>/``: the compressed model on crossbars under the polarized, offset and differential
   encodings: ideal (lossless ADC), an ADC one bit narrower, and log-normal variation over several chips;
4. ``estimate/<arch>/``: isaac-opt, isaac-ce, prime and forms-8 cost-model estimates of the compressed
   network, FORMS' zero-skipping taken from the measured activity of the polarized ideal run;
5. ``verdict/``: FORMS against each baseline, and what decides it (:mod:`forms.experiments.verdict`);
6. ``report/``: report.html, report.md, summary.json, tables/*.csv, figures/*.png.

The defaults fit a budget of 10 minutes on 2 CPU cores from nothing (see README for the measured time);
the report states every epoch count and image limit used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from forms.config import CrossbarSpec, Spec
from forms.encoding import ENCODINGS, Encoding
from forms.experiments.pipeline import (
    CHECKPOINT,
    SetupPlan,
    SimSetup,
    StageClock,
    compress_float,
    estimate_all,
    simulate_all,
    standard_setups,
    train_float,
)
from forms.experiments.stages import VERDICT, verdict_stage
from forms.report import RunMeta, Summary, stage_report, write_report
from forms.report.verdict_sections import VERDICT_KEY
from forms.report.writers import ReportFiles


class DemoSpec(Spec):
    """Settings of the demo; the defaults are sized for 10 minutes on 2 CPU cores."""

    model: str = Field("lenet5", description="Zoo model.")
    dataset: str = Field("mnist", description="Dataset.")
    seed: int = Field(0, description="Seed of training, compression and simulation.")
    data_dir: str | None = Field(None, description="Data root (default $FORMS_DATA or ~/.cache/forms/data).")
    train_epochs: int = Field(3, ge=1, description="Float training epochs (the 99% benchmark uses 10).")
    train_subset: int | None = Field(None, ge=1, description="Train on the first N images only (tests).")
    fragment_size: int = Field(8, ge=1, description="R: rows per polarized fragment.")
    weight_bits: int = Field(8, ge=1, le=16, description="Weight magnitude bits.")
    prune_ratio: float = Field(0.5, ge=0, lt=1, description="Filter-pruning ratio (first/last layer kept).")
    prune_granularity: str = Field("filter", description="Pruning granularity: filter, channel or fragment.")
    admm_rounds: int = Field(3, ge=0, description="ADMM rounds.")
    round_epochs: int = Field(1, ge=1, description="W-step epochs per ADMM round.")
    retrain_epochs: int = Field(2, ge=0, description="Masked-retraining epochs after hard projection.")
    encodings: list[Encoding] = Field(
        default_factory=lambda: list(ENCODINGS), description="Encodings simulated."
    )
    ideal_limit: int | None = Field(2000, ge=1, description="Test images of the ideal runs (null = all).")
    narrow_adc_drop: int = Field(
        1, ge=0, description="Bits below lossless of the narrow-ADC runs (0 = none)."
    )
    narrow_limit: int | None = Field(500, ge=1, description="Test images of the narrow-ADC runs.")
    variation_sigma: float = Field(
        0.1, ge=0, description="Log-normal conductance variation sigma (0 = none)."
    )
    variation_runs: int = Field(4, ge=1, description="Monte Carlo chips (the paper uses 50).")
    variation_limit: int | None = Field(250, ge=1, description="Test images per variation chip.")
    archs: list[str] = Field(
        default_factory=lambda: ["isaac-opt", "isaac-ce", "prime", "forms-8"],
        description="Architectures estimated; the first polarized one is FORMS in the verdict.",
    )
    baseline: str = Field(
        "isaac-opt", description="Architecture the cost ratios divide by (the verdict's tornado baseline)."
    )

    def train_spec(self) -> dict[str, Any]:
        """TrainSpec fields of the float stage."""
        spec: dict[str, Any] = {
            "model": self.model,
            "dataset": self.dataset,
            "epochs": self.train_epochs,
            "seed": self.seed,
            "data_dir": self.data_dir,
            "device": "cpu",
        }
        if self.train_subset is not None:
            spec["train_subset"] = self.train_subset
        return spec

    def compress_spec(self) -> dict[str, Any]:
        """CompressSpec fields of the ADMM stage."""
        return {
            "crossbar": {"fragment_size": self.fragment_size},
            "quant": {"weight_bits": self.weight_bits},
            "prune": {"ratio": self.prune_ratio, "granularity": self.prune_granularity},
            "schedule": {
                "admm_rounds": self.admm_rounds,
                "round_epochs": self.round_epochs,
                "retrain_epochs": self.retrain_epochs,
            },
            "seed": self.seed,
        }

    def sim_setups(self) -> list[SimSetup]:
        """The demo's simulation runs: per encoding ideal, a narrower ADC, and device variation."""
        plan = SetupPlan(
            self.encodings,
            CrossbarSpec(fragment_size=self.fragment_size),
            ideal_limit=self.ideal_limit,
            narrow_drop=self.narrow_adc_drop,
            narrow_limit=self.narrow_limit,
            sigma=self.variation_sigma,
            runs=self.variation_runs,
            variation_limit=self.variation_limit,
            seed=self.seed,
        )
        return standard_setups(plan)

    def assumptions(self) -> list[str]:
        """What the demo's figures rest on, in words, with the budget choices."""
        ideal = f"first {self.ideal_limit} test images" if self.ideal_limit else "the whole test set"
        return [
            f"float training: {self.train_epochs} epochs of {self.model} on {self.dataset} (demo budget; "
            "the accuracy benchmark of docs/benchmarks.md trains 10)",
            f"compression: {self.admm_rounds} ADMM rounds x {self.round_epochs} epoch(s), hard "
            f"projection, {self.retrain_epochs} masked-retraining epochs; R = {self.fragment_size}, "
            f"{self.weight_bits}-bit weights, {self.prune_granularity} pruning ratio {self.prune_ratio} "
            "(first and last layer unpruned)",
            f"ideal simulation: lossless ADC for each encoding, ideal devices, {ideal}",
            f"narrow ADC: {self.narrow_adc_drop} bit(s) below each encoding's lossless width, first "
            f"{self.narrow_limit} test images",
            f"variation: log-normal sigma {self.variation_sigma}, {self.variation_runs} chips (the "
            f"paper uses 50), first {self.variation_limit} test images per chip",
            "every encoding's runs store columns flipped, as the forms-8, isaac-opt and prime presets assume",
            "cost model: each architecture runs the same compressed network (the non-zero rows and "
            "columns of the checkpoint); FORMS' zero-skip fractions are measured in the polarized ideal run",
        ]


@dataclass
class JobResult:
    """What a job (demo or reproduce) produced."""

    out_dir: Path
    report: ReportFiles
    seconds: float
    clock: StageClock

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return {
            "out_dir": str(self.out_dir),
            "report": self.report.to_dict(),
            "seconds": self.seconds,
            **self.clock.timings().to_dict(),
        }


def run_demo(out_dir: str | Path, spec: DemoSpec | None = None, progress: bool = True) -> JobResult:
    """Run (or resume) the whole demo in ``out_dir`` and write its report to ``out_dir/report``."""
    spec = spec or DemoSpec.from_dict({})
    start = time.perf_counter()
    out = Path(out_dir)
    clock = StageClock(out)
    train = train_float(out / "train", clock, progress, **spec.train_spec())
    compress = compress_float(out / "train", out / "compress", clock, spec.compress_spec(), progress=progress)
    checkpoint = out / "compress" / CHECKPOINT
    setups = spec.sim_setups()
    simulate = simulate_all(checkpoint, out / "simulate", setups, clock, progress)
    activity_run = next(
        (s.name for s in setups if s.setup.encoding.signs_per_fragment and s.setup.mode == "ideal"), None
    )
    activity = simulate[activity_run].metrics.to_dict() if activity_run else None
    estimate = estimate_all(
        out / "estimate",
        spec.archs,
        spec.model,
        clock,
        checkpoint=checkpoint,
        activity=activity,
    )
    network = f"{spec.model} ({spec.dataset})"
    verdict = clock.run(
        out / "verdict",
        lambda: verdict_stage(
            out / "verdict", network, spec.archs, spec.baseline, checkpoint=checkpoint, activity=activity
        ),
        done_file=VERDICT,
    )
    summary = Summary(
        title=f"FORMS demo: {spec.model} on {spec.dataset}",
        meta=RunMeta.now(f"forms demo --out {out}", clock.timings(), time.perf_counter() - start),
        parameters=spec.model_dump(mode="json"),
        assumptions=spec.assumptions(),
        baseline=spec.baseline,
        train=train,
        compress=compress,
        simulate=simulate,
        estimate=estimate,
        extra={VERDICT_KEY: {network: verdict.to_dict()}},
    )
    intro = [
        f"{spec.model} trained on {spec.dataset}, compressed with ADMM so that every fragment of "
        f"{spec.fragment_size} crossbar rows is single-signed, then run through the bit-accurate crossbar "
        f"simulator and costed on {', '.join(spec.archs)}. Epoch counts and image limits are sized for a "
        "10-minute budget on 2 CPU cores; all of them are listed under 'Assumptions and parameters'.",
    ]
    files = write_report(stage_report(summary, intro), out / "report")
    return JobResult(out, files, time.perf_counter() - start, clock)
