"""`forms reproduce [--quick]`: run the paper-style experiments (a)-(d) and write their report.

(a) accuracy vs fragment size R for LeNet-5/MNIST and a deeper CNN on Fashion-MNIST;
(b) crossbar reduction of LeNet-5/MNIST broken into pruning x quantization x polarization;
(c) FORMS vs optimized ISAAC vs original ISAAC vs PRIME: GOPs/(s·mm²), GOPs/W and FPS on LeNet-5,
    ResNet-18, VGG-16 (CIFAR and ImageNet shapes) and ResNet-50; zero-skip activity measured here for
    LeNet-5, the packaged measurements (or the nearest measured network's) elsewhere; and the verdict
    on each network (headline, tornado, break-even: :mod:`forms.experiments.verdict`), which opens the
    report;
(d) accuracy under log-normal variation for the float-equivalent (8-bit quantized, unpolarized, on the
    differential encoding), polarized-only and fully compressed models.

Every stage writes its own subfolder (``a/``, ``b/``, ``c/``, ``d/``) and is skipped when complete, so an
interrupted run resumes. ``--quick`` shrinks epochs, images and Monte Carlo runs for CI; the report
states every setting used. The settings live in :mod:`forms.experiments.reproduce_spec`, the report's
sections in :mod:`forms.experiments.reproduce_report`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from forms.compress.result import CompressResult
from forms.config import CROSSBAR_ROWS, CrossbarSpec
from forms.cost.activity import SkipFractions
from forms.cost.estimate import Estimate
from forms.encoding import Encoding
from forms.experiments.demo import JobResult
from forms.experiments.pipeline import (
    CHECKPOINT,
    SimSetup,
    StageClock,
    compress_float,
    estimate_all,
    lossless_bits,
    simulate_all,
    train_float,
)
from forms.experiments.reproduce_report import reproduce_report
from forms.experiments.reproduce_spec import ReproduceSpec, TrainRun, Workload
from forms.experiments.stages import VERDICT, verdict_stage
from forms.experiments.verdict import packaged_skip, split_archs
from forms.experiments.verdict_result import Verdict
from forms.nn.train_result import TrainResult
from forms.report import RunMeta, RunSetup, SimulationRun, Summary
from forms.report.derived import ratio
from forms.report.verdict_sections import VERDICT_KEY
from forms.report.writers import write_report


@dataclass(frozen=True)
class ExperimentContext:
    """What every experiment shares: its settings, the run's root folder, the stage clock, progress bars."""

    spec: ReproduceSpec
    root: Path
    clock: StageClock
    progress: bool


def _plain_data(table: Any) -> Any:
    """An experiment's table as plain JSON data: every typed stage result in it as its ``to_dict()``."""
    if hasattr(table, "to_dict"):
        return table.to_dict()
    if isinstance(table, dict):
        return {key: _plain_data(value) for key, value in table.items()}
    if isinstance(table, list):
        return [_plain_data(value) for value in table]
    return table


def _drop_points(before: float | None, after: float | None) -> float | None:
    """Accuracy lost from ``before`` to ``after`` in percentage points (None if either is unknown)."""
    return None if before is None or after is None else 100.0 * (before - after)


def _accuracy_row(run: TrainRun, r: int, trained: TrainResult, compressed: CompressResult) -> dict[str, Any]:
    """One row of (a): ``run``'s float and compressed accuracy at fragment size ``r``."""
    before, after = trained.test_accuracy, compressed.accuracy_after
    return {
        "model": run.model,
        "dataset": run.dataset,
        "run": f"{run.key}-R{r}",
        "fragment_size": r,
        "float_accuracy": before,
        "compressed_accuracy": after,
        "drop_points": _drop_points(before, after),
        "fragments_mixed_sign": compressed.fragments_mixed_sign,
    }


def experiment_a(ctx: ExperimentContext) -> dict[str, Any]:
    """Accuracy vs R: compress each float model at every R (no pruning), in ``<root>/a``."""
    spec, out = ctx.spec, ctx.root / "a"
    floats: dict[str, TrainResult] = {}
    compressed: dict[str, CompressResult] = {}
    rows = []
    for run in (spec.mnist, spec.deep):
        float_dir = out / run.key / "train"
        floats[run.key] = train_float(
            float_dir, ctx.clock, ctx.progress, **run.train_spec(spec.seed, spec.data_dir)
        )
        for r in spec.fragment_sizes:
            metrics = compress_float(
                float_dir,
                out / run.key / f"R{r}",
                ctx.clock,
                spec.compress_spec(run, r, prune=False),
            )
            compressed[f"{run.key}-R{r}"] = metrics
            rows.append(_accuracy_row(run, r, floats[run.key], metrics))
    return {"float": floats, "compress": compressed, "rows": rows}


def experiment_b(ctx: ExperimentContext) -> dict[str, Any]:
    """Pruned + quantized + polarized LeNet-5 and its crossbar factors; its ideal run gives activity."""
    spec, out = ctx.spec, ctx.root / "b"
    r = spec.prune_fragment_size
    metrics = compress_float(
        ctx.root / "a" / spec.mnist.key / "train",
        out / "compress",
        ctx.clock,
        spec.compress_spec(spec.mnist, r, True),
    )
    bits = lossless_bits(Encoding.POLARIZED, CrossbarSpec(fragment_size=r), flipped=False)
    ideal = RunSetup(Encoding.POLARIZED, "ideal", bits, limit=spec.sim_limit, seed=spec.seed)
    setup = SimSetup("polarized-ideal", ideal)
    sims = simulate_all(out / "compress" / CHECKPOINT, out / "simulate", [setup], ctx.clock, ctx.progress)
    return {"compress": metrics, "simulate": sims}


def _cost_rows(
    workload: Workload, activity: str, ests: Mapping[str, Estimate], baseline: str
) -> list[dict[str, Any]]:
    """Rows of (c) for one workload: each architecture's figures and their ratios to ``baseline``;
    ``activity`` says where FORMS' zero-skip figures come from."""
    base = ests.get(baseline)
    return [
        {
            "workload": workload.label,
            "arch": arch,
            "activity": activity,
            **{k: getattr(est, k) for k in ("gops_per_s_mm2", "gops_per_w", "fps", "chips")},
            **{
                f"{k}_ratio": ratio(getattr(est, k), getattr(base, k, None))
                for k in ("gops_per_s_mm2", "gops_per_w", "fps")
            },
        }
        for arch, est in ests.items()
    ]


def _without_layers(est: Estimate) -> dict[str, Any]:
    """estimate.json without its per-layer rows (they stay in c/<model>/<arch>/estimate.json)."""
    record = est.to_dict()
    del record["layers"]
    return record


@dataclass(frozen=True)
class CostedNetwork:
    """How (c) costs one workload: its weights (a compressed checkpoint or dense) and FORMS' skip figures."""

    checkpoint: Path | None
    """The compressed checkpoint whose non-zero rows and columns are costed; None: the dense zoo model."""
    activity: Mapping[str, Any] | SkipFractions | None
    """This run's simulate metrics, packaged measured figures, or None (each preset's stated default)."""
    source: str
    """Where the skip figures come from, in words."""


def _costed_network(ctx: ExperimentContext, w: Workload, simulated: Mapping[str, Any]) -> CostedNetwork:
    """LeNet-5/MNIST: (b)'s compressed checkpoint and simulated activity. Any other network: dense, with
    :func:`forms.experiments.verdict.packaged_skip`."""
    spec = ctx.spec
    if w.model == spec.mnist.model and w.input_shape[0] == 1:
        return CostedNetwork(
            ctx.root / "b" / "compress" / CHECKPOINT, simulated, "measured (simulator, this run)"
        )
    rule = split_archs(spec.archs, spec.baseline)[0].zero_skip.rule
    skip, source = packaged_skip(w.model, rule, dataset=w.dataset)
    return CostedNetwork(None, skip, source)


def experiment_c(ctx: ExperimentContext, b: Mapping[str, Any]) -> dict[str, Any]:
    """Cost of every workload on every architecture, with ratios to the baseline, and the verdict on each
    (:func:`forms.experiments.stages.verdict_stage`); ``b`` is (b)'s result."""
    spec, out = ctx.spec, ctx.root / "c"
    estimates: dict[str, Any] = {}
    verdicts: dict[str, Verdict] = {}
    rows = []
    simulated = b["simulate"]["polarized-ideal"].metrics.to_dict()
    for w in spec.workloads:
        net = _costed_network(ctx, w, simulated)
        ests = estimate_all(
            out / w.model,
            spec.archs,
            w.model,
            ctx.clock,
            checkpoint=net.checkpoint,
            activity=net.activity,
            input_shape=w.input_shape,
        )
        estimates[w.model] = {arch: _without_layers(est) for arch, est in ests.items()}
        rows.extend(_cost_rows(w, net.source, ests, spec.baseline))
        verdict_dir = out / w.model / "verdict"
        verdicts[w.label] = ctx.clock.run(
            verdict_dir,
            partial(
                verdict_stage,
                verdict_dir,
                w.label,
                spec.archs,
                spec.baseline,
                model=w.model,
                checkpoint=net.checkpoint,
                activity=net.activity,
                input_shape=None if net.checkpoint else w.input_shape,
                dataset=None if net.checkpoint else w.dataset,  # (b)'s checkpoint records its own
            ),
            done_file=VERDICT,
        )
    return {"estimates": estimates, "rows": rows, "verdicts": verdicts}


def _ideal_and_varied_setups(spec: ReproduceSpec, encoding: Encoding, fragment_size: int) -> list[SimSetup]:
    """The two simulations of one model in (d): ideal devices, and log-normal variation over chips."""
    bits = lossless_bits(encoding, CrossbarSpec(fragment_size=fragment_size), flipped=False)
    limit, seed = spec.variation_limit, spec.seed
    varied = RunSetup(
        encoding, "variation", bits, False, spec.variation_sigma, spec.variation_runs, limit, seed
    )
    return [
        SimSetup("ideal", RunSetup(encoding, "ideal", bits, limit=limit, seed=seed)),
        SimSetup("variation", varied),
    ]


def _variation_row(variant: str, encoding: Encoding, sims: Mapping[str, SimulationRun]) -> dict[str, Any]:
    """One row of (d): a model's ideal accuracy, its mean and spread under variation, and the loss."""
    ideal, varied = sims["ideal"].metrics, sims["variation"].metrics
    return {
        "variant": variant,
        "encoding": encoding,
        "ideal_accuracy": ideal.accuracy,
        "variation_mean": varied.accuracy_mean,
        "variation_std": varied.accuracy_std,
        "degradation_points": _drop_points(ideal.accuracy, varied.accuracy_mean),
    }


def experiment_d(ctx: ExperimentContext) -> dict[str, Any]:
    """Ideal vs varied accuracy of the float-equivalent, polarized-only and fully compressed models."""
    spec, out, a_dir, b_dir = ctx.spec, ctx.root / "d", ctx.root / "a", ctx.root / "b"
    r = spec.prune_fragment_size
    float_dir = a_dir / spec.mnist.key / "train"
    compress_float(
        float_dir,
        out / "float-equivalent",
        ctx.clock,
        spec.compress_spec(spec.mnist, CROSSBAR_ROWS, False, polarize=False),
    )
    polar_dir = a_dir / spec.mnist.key / f"R{r}"
    if not (polar_dir / CHECKPOINT).is_file():
        compress_float(float_dir, polar_dir, ctx.clock, spec.compress_spec(spec.mnist, r, prune=False))
    variants = {
        "float-equivalent": (out / "float-equivalent" / CHECKPOINT, Encoding.DIFFERENTIAL, CROSSBAR_ROWS),
        "polarized-only": (polar_dir / CHECKPOINT, Encoding.POLARIZED, r),
        "fully compressed": (b_dir / "compress" / CHECKPOINT, Encoding.POLARIZED, r),
    }
    sims: dict[str, Any] = {}
    rows = []
    for variant, (ckpt, enc, frag) in variants.items():
        setups = _ideal_and_varied_setups(spec, enc, frag)
        folder = variant.replace(" ", "-")
        sims[variant] = simulate_all(ckpt, out / folder / "simulate", setups, ctx.clock, ctx.progress)
        rows.append(_variation_row(variant, enc, sims[variant]))
    return {"simulate": sims, "rows": rows}


def run_reproduce(
    out_dir: str | Path,
    spec: ReproduceSpec | None = None,
    progress: bool = True,
    command: str | None = None,
) -> JobResult:
    """Run (or resume) experiments (a)-(d) in ``out_dir``; write the report to ``out_dir/report``.

    ``command`` is the command line the report cites (default: the equivalent `forms reproduce`).
    """
    spec = spec or ReproduceSpec.from_dict({})
    start = time.perf_counter()
    out = Path(out_dir)
    clock = StageClock(out)
    ctx = ExperimentContext(spec, out, clock, progress)
    a = experiment_a(ctx)
    b = experiment_b(ctx)
    c = experiment_c(ctx, b)
    d = experiment_d(ctx)
    command = command or f"forms reproduce{' --quick' if spec.quick_mode else ''} --out {out}"
    summary = Summary(
        title="FORMS reproduce" + (" (quick)" if spec.quick_mode else ""),
        meta=RunMeta.now(command, clock.timings(), time.perf_counter() - start),
        parameters=spec.model_dump(mode="json"),
        assumptions=spec.assumptions(),
        baseline=spec.baseline,
        train=a["float"].get(spec.mnist.key),
        compress=b["compress"],
        extra={
            "experiments": _plain_data({"a": a, "b": b, "c": c, "d": d}),
            VERDICT_KEY: {label: v.to_dict() for label, v in c.pop("verdicts").items()},
        },
    )
    files = write_report(reproduce_report(summary, spec), out / "report")
    return JobResult(out, files, time.perf_counter() - start, clock)


__all__ = ["ExperimentContext", "run_reproduce"]
