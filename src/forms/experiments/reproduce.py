"""`forms reproduce [--quick]`: the paper-style experiments, each a table and a plot in one report.

(a) accuracy vs fragment size R for LeNet-5/MNIST and a deeper CNN on Fashion-MNIST;
(b) crossbar reduction of LeNet-5/MNIST broken into pruning x quantization x polarization;
(c) FORMS vs optimized ISAAC vs original ISAAC vs PRIME: GOPs/(s·mm²), GOPs/W and FPS on LeNet-5,
    ResNet-18, VGG-16 (CIFAR and ImageNet shapes) and ResNet-50; measured zero-skip activity for LeNet-5,
    the presets' stated default elsewhere;
(d) accuracy under log-normal variation for the float-equivalent (8-bit quantized, unpolarized, on the
    differential encoding), polarized-only and fully compressed models.

Every stage writes its own subfolder (``a/``, ``b/``, ``c/``, ``d/``) and is skipped when complete, so an
interrupted run resumes. ``--quick`` shrinks epochs, images and Monte Carlo runs for CI; the report
states every setting used.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from forms.config import Spec
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
from forms.report import build_summary, plots
from forms.report.model import Figure, Report, Section, Table, join_path, ref, resolve
from forms.report.sections import assumptions_section, crossbar_section, overview_section
from forms.report.summary import ratio
from forms.report.writers import write_report


class TrainRun(Spec):
    """A float model the experiments start from."""

    model: str = Field(description="Zoo model.")
    dataset: str = Field(description="Dataset.")
    epochs: int = Field(ge=1, description="Training epochs.")
    train_subset: int | None = Field(None, ge=1, description="Train on the first N images only.")
    pad_to: int | None = Field(None, ge=1, description="Zero-pad images to this side.")
    lr: float = Field(0.05, gt=0, description="Peak learning rate.")
    schedule: dict[str, Any] = Field(
        default_factory=dict,
        description="Compression schedule fields (forms.compress.spec.ScheduleSpec) that replace the shared "
        "ones in this model's compressions, e.g. {optimizer: sgd, lr: 0.01}.",
    )
    validation_images: int = Field(
        0,
        ge=0,
        description="Training images this model's compressions hold out to choose the retraining epoch "
        "(forms.compress.spec.CompressSpec.validation_images); the float model still trains on them. "
        "0 = no hold-out.",
    )

    @model_validator(mode="after")
    def check_holdout(self) -> TrainRun:
        """Refuse a hold-out that leaves no training subset images to compress on."""
        if self.train_subset is not None and self.validation_images >= self.train_subset:
            raise ValueError(
                f"validation_images {self.validation_images} must be smaller than train_subset "
                f"{self.train_subset}: hold out fewer images or train on more"
            )
        return self

    def train_spec(self, seed: int, data_dir: str | None) -> dict[str, Any]:
        """TrainSpec fields."""
        spec: dict[str, Any] = {
            "model": self.model,
            "dataset": self.dataset,
            "epochs": self.epochs,
            "lr": self.lr,
            "seed": seed,
            "data_dir": data_dir,
        }
        if self.train_subset is not None:
            spec["train_subset"] = self.train_subset
        if self.pad_to is not None:
            spec["pad_to"] = self.pad_to
        return spec

    def describe(self) -> str:
        """The run in words, for the report's assumptions."""
        images = "all" if self.train_subset is None else f"the first {self.train_subset}"
        padded = "" if self.pad_to is None else f", padded to {self.pad_to}x{self.pad_to}"
        held = (
            f" (its compressions hold out {self.validation_images} of them to choose the retraining epoch)"
            if self.validation_images
            else ""
        )
        return f"{self.key} {self.epochs} epochs on {images} training images{padded}{held}"

    @property
    def key(self) -> str:
        """Folder and summary key: ``<model>-<dataset>``."""
        return f"{self.model}-{self.dataset}"


class Workload(Spec):
    """A network costed in experiment (c)."""

    model: str = Field(description="Zoo model.")
    input_shape: list[int] = Field(min_length=3, max_length=3, description="Input (C, H, W).")
    label: str = Field(description="Name in the report, e.g. 'resnet18 (CIFAR)'.")


def _default_workloads() -> list[Workload]:
    rows = [
        ("lenet5", [1, 28, 28], "lenet5 (MNIST)"),
        ("resnet18", [3, 32, 32], "resnet18 (CIFAR)"),
        ("vgg16", [3, 32, 32], "vgg16 (CIFAR)"),
        ("resnet18-imagenet", [3, 224, 224], "resnet18 (ImageNet)"),
        ("vgg16-imagenet", [3, 224, 224], "vgg16 (ImageNet)"),
        ("resnet50", [3, 224, 224], "resnet50 (ImageNet)"),
    ]
    return [Workload.from_dict({"model": m, "input_shape": s, "label": lbl}) for m, s, lbl in rows]


class ReproduceSpec(Spec):
    """Settings of `forms reproduce`; :meth:`quick` is the CI variant."""

    quick_mode: bool = Field(False, description="Whether these are the shrunken --quick settings.")
    seed: int = Field(0, description="Seed of every stage.")
    data_dir: str | None = Field(None, description="Data root (default $FORMS_DATA or ~/.cache/forms/data).")
    mnist: TrainRun = Field(
        default_factory=lambda: TrainRun.from_dict({"model": "lenet5", "dataset": "mnist", "epochs": 10}),
        description="LeNet-5/MNIST float run (experiments a, b, c, d).",
    )
    deep: TrainRun = Field(
        default_factory=lambda: TrainRun.from_dict(
            {"model": "resnet20", "dataset": "fashion-mnist", "epochs": 6, "pad_to": 32}
        ),
        description="The deeper CNN on Fashion-MNIST (experiment a).",
    )
    fragment_sizes: list[int] = Field(
        default_factory=lambda: [4, 8, 16, 32, 128], min_length=1, description="R values of (a)."
    )
    weight_bits: int = Field(8, ge=1, le=16, description="Weight magnitude bits.")
    admm_rounds: int = Field(6, ge=0, description="ADMM rounds of every compression.")
    round_epochs: int = Field(1, ge=1, description="W-step epochs per ADMM round.")
    retrain_epochs: int = Field(4, ge=0, description="Masked-retraining epochs.")
    prune_ratio: float = Field(0.5, ge=0, lt=1, description="Filter-pruning ratio of (b) and (d).")
    prune_fragment_size: int = Field(8, ge=1, description="R of the pruned model of (b), (c), (d).")
    sim_limit: int | None = Field(None, ge=1, description="Test images of ideal simulations (null = all).")
    variation_sigma: float = Field(0.1, gt=0, description="Log-normal variation sigma of (d).")
    variation_runs: int = Field(50, ge=1, description="Monte Carlo chips of (d) (the paper: 50).")
    variation_limit: int | None = Field(1000, ge=1, description="Test images per chip in (d).")
    archs: list[str] = Field(
        default_factory=lambda: ["isaac-ce", "isaac-opt", "prime", "forms-8"],
        description="Architectures of (c).",
    )
    baseline: str = Field("isaac-opt", description="Architecture the ratios of (c) divide by.")
    workloads: list[Workload] = Field(default_factory=_default_workloads, description="Networks of (c).")

    @classmethod
    def quick(cls) -> ReproduceSpec:
        """CI settings: tiny training, one ADMM round without retraining, few images and chips."""
        return cls.from_dict(
            {
                "quick_mode": True,
                "mnist": {"model": "lenet5", "dataset": "mnist", "epochs": 1, "train_subset": 4000},
                "deep": {"model": "lenet5", "dataset": "fashion-mnist", "epochs": 1, "train_subset": 4000},
                "admm_rounds": 1,
                "retrain_epochs": 0,
                "sim_limit": 500,
                "variation_runs": 3,
                "variation_limit": 200,
            }
        )

    def compress_spec(
        self, run: TrainRun, fragment_size: int, prune: bool, polarize: bool = True
    ) -> dict[str, Any]:
        """CompressSpec fields of one compression of ``run``'s float model (on its training subset)."""
        active = polarize or prune
        schedule = {
            "admm_rounds": self.admm_rounds,
            "round_epochs": self.round_epochs,
            "retrain_epochs": self.retrain_epochs,
            **run.schedule,
        }
        if not active:
            schedule.update(admm_rounds=0, retrain_epochs=0)
        return {
            "crossbar": {"fragment_size": fragment_size},
            "quant": {"weight_bits": self.weight_bits},
            "polarize": {"enabled": polarize},
            "prune": {"ratio": self.prune_ratio if prune else 0.0, "granularity": "filter"},
            "schedule": schedule,
            "train_subset": run.train_subset,
            "validation_images": run.validation_images,
            "seed": self.seed,
        }

    @model_validator(mode="after")
    def check_compressions(self) -> ReproduceSpec:
        """Refuse, before anything runs, a schedule override or R the compressions would reject."""
        from forms.compress.spec import CompressSpec

        for run in (self.mnist, self.deep):
            for r in self.fragment_sizes:
                CompressSpec.from_dict(self.compress_spec(run, r, prune=False), source=f"{run.key} R={r}")
        CompressSpec.from_dict(
            self.compress_spec(self.mnist, self.prune_fragment_size, prune=True), source="(b) compression"
        )
        return self

    def assumptions(self) -> list[str]:
        """The settings behind the figures, in words."""
        notes = [
            f"(a) float models: {self.mnist.describe()}; {self.deep.describe()}; every R compressed from "
            f"the same float model without pruning, {self.weight_bits}-bit, on the float model's training "
            "images",
            f"compression schedule: {self.admm_rounds} ADMM rounds x {self.round_epochs} epoch(s), hard "
            f"projection, {self.retrain_epochs} masked-retraining epochs; other fields at the "
            "ScheduleSpec defaults unless a model overrides them",
            *(
                f"{run.key} compressions override the schedule with {run.schedule}"
                for run in (self.mnist, self.deep)
                if run.schedule
            ),
            f"(b), (c), (d): LeNet-5 compressed with R = {self.prune_fragment_size} and filter pruning ratio "
            f"{self.prune_ratio} (first and last layer unpruned)",
            "(c) LeNet-5 is costed from its compressed checkpoint with zero-skip activity measured by the "
            "simulator (polarized, ideal); the other networks are costed dense with 8-bit weights (16-bit "
            "for isaac-ce) and each preset's stated default skip fraction (no measured activations)",
            f"(d) float-equivalent = the float model quantized to {self.weight_bits} bits with no ADMM, no "
            "polarization and no pruning, on the differential (PRIME) encoding; the other two on the "
            f"polarized encoding; sigma {self.variation_sigma}, {self.variation_runs} chips, "
            f"first {self.variation_limit} test images per chip",
        ]
        if self.quick_mode:
            notes.insert(
                0,
                "QUICK MODE (CI): tiny training subsets, one ADMM round and no retraining epochs, "
                "LeNet-5 stands in for the deeper CNN, few images and chips: the figures exercise the "
                "pipeline and are not results",
            )
        return notes


# --------------------------------------------------------------------------------------- experiments


def _acc(metrics: Mapping[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = metrics.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def _drop_points(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else 100.0 * (before - after)


def experiment_a(spec: ReproduceSpec, out: Path, clock: StageClock, progress: bool) -> dict[str, Any]:
    """Accuracy vs R: compress each float model at every R (no pruning)."""
    floats: dict[str, Any] = {}
    compressed: dict[str, Any] = {}
    rows = []
    for run in (spec.mnist, spec.deep):
        float_dir = out / run.key / "train"
        floats[run.key] = train_float(float_dir, clock, progress, **run.train_spec(spec.seed, spec.data_dir))
        for r in spec.fragment_sizes:
            name = f"{run.key}-R{r}"
            metrics = compress_float(
                float_dir,
                out / run.key / f"R{r}",
                clock,
                spec.compress_spec(run, r, prune=False),
            )
            compressed[name] = metrics
            before = _acc(floats[run.key], "test_accuracy")
            after = _acc(metrics, "accuracy_after")
            rows.append(
                {
                    "model": run.model,
                    "dataset": run.dataset,
                    "run": name,
                    "fragment_size": r,
                    "float_accuracy": before,
                    "compressed_accuracy": after,
                    "drop_points": _drop_points(before, after),
                    "fragments_mixed_sign": metrics.get("fragments_mixed_sign"),
                }
            )
    return {"float": floats, "compress": compressed, "rows": rows}


def experiment_b(spec: ReproduceSpec, out: Path, clock: StageClock, progress: bool) -> dict[str, Any]:
    """Pruned + quantized + polarized LeNet-5 and its crossbar factors; its ideal run gives activity."""
    r = spec.prune_fragment_size
    metrics = compress_float(
        out.parent / "a" / spec.mnist.key / "train",
        out / "compress",
        clock,
        spec.compress_spec(spec.mnist, r, True),
    )
    bits = lossless_bits("polarized", r, 128, 2, False)
    setup = SimSetup("polarized-ideal", "polarized", "ideal", bits, limit=spec.sim_limit, seed=spec.seed)
    sims = simulate_all(out / "compress" / CHECKPOINT, out / "simulate", [setup], clock, progress)
    return {"compress": metrics, "simulate": sims}


def experiment_c(
    spec: ReproduceSpec, out: Path, b_dir: Path, b: Mapping[str, Any], clock: StageClock
) -> dict[str, Any]:
    """Cost of every workload on every architecture, with ratios to the baseline."""
    estimates: dict[str, Any] = {}
    rows = []
    activity = b["simulate"]["polarized-ideal"]["metrics"]
    for w in spec.workloads:
        measured = w.model == spec.mnist.model and w.input_shape[0] == 1
        ests = estimate_all(
            out / w.model,
            spec.archs,
            w.model,
            clock,
            checkpoint=b_dir / "compress" / CHECKPOINT if measured else None,
            activity=activity if measured else None,
            input_shape=w.input_shape,
        )
        for est in ests.values():
            est.pop("layers", None)  # per-layer rows stay in c/<model>/<arch>/estimate.json
        estimates[w.model] = ests
        base = ests.get(spec.baseline, {})
        for arch, est in ests.items():
            rows.append(
                {
                    "workload": w.label,
                    "arch": arch,
                    "activity": "measured (simulator)" if measured else "preset default (stated)",
                    **{k: est.get(k) for k in ("gops_per_s_mm2", "gops_per_w", "fps", "chips")},
                    **{
                        f"{k}_ratio": ratio(est.get(k), base.get(k))
                        for k in ("gops_per_s_mm2", "gops_per_w", "fps")
                    },
                }
            )
    return {"estimates": estimates, "rows": rows}


def experiment_d(
    spec: ReproduceSpec, out: Path, a_dir: Path, b_dir: Path, clock: StageClock, progress: bool
) -> dict[str, Any]:
    """Ideal vs varied accuracy of the float-equivalent, polarized-only and fully compressed models."""
    r = spec.prune_fragment_size
    float_dir = a_dir / spec.mnist.key / "train"
    compress_float(
        float_dir,
        out / "float-equivalent",
        clock,
        spec.compress_spec(spec.mnist, 128, False, polarize=False),
    )
    polar_dir = a_dir / spec.mnist.key / f"R{r}"
    if not (polar_dir / CHECKPOINT).is_file():
        compress_float(float_dir, polar_dir, clock, spec.compress_spec(spec.mnist, r, prune=False))
    variants = {
        "float-equivalent": (out / "float-equivalent" / CHECKPOINT, "differential", 128),
        "polarized-only": (polar_dir / CHECKPOINT, "polarized", r),
        "fully compressed": (b_dir / "compress" / CHECKPOINT, "polarized", r),
    }
    sims: dict[str, Any] = {}
    rows = []
    for variant, (ckpt, enc, frag) in variants.items():
        bits = lossless_bits(enc, frag, 128, 2, False)
        setups = [
            SimSetup("ideal", enc, "ideal", bits, limit=spec.variation_limit, seed=spec.seed),
            SimSetup(
                "variation",
                enc,
                "variation",
                bits,
                False,
                spec.variation_sigma,
                spec.variation_runs,
                spec.variation_limit,
                spec.seed,
            ),
        ]
        folder = variant.replace(" ", "-")
        sims[variant] = simulate_all(ckpt, out / folder / "simulate", setups, clock, progress)
        ideal = _acc(sims[variant]["ideal"]["metrics"], "accuracy")
        mean = _acc(sims[variant]["variation"]["metrics"], "accuracy_mean", "accuracy")
        rows.append(
            {
                "variant": variant,
                "encoding": enc,
                "ideal_accuracy": ideal,
                "variation_mean": mean,
                "variation_std": _acc(sims[variant]["variation"]["metrics"], "accuracy_std"),
                "degradation_points": _drop_points(ideal, mean),
            }
        )
    return {"simulate": sims, "rows": rows}


# --------------------------------------------------------------------------------------- report


def _rows_table(
    summary: Mapping[str, Any], exp: str, table_id: str, title: str, cols: list[tuple[str, str, Any]]
) -> Table:
    table = Table(table_id, title, [c[1] for c in cols])
    rows = resolve(summary, f"experiments.{exp}.rows")
    for i, _ in enumerate(rows if isinstance(rows, list) else []):
        table.add([ref(summary, join_path(f"experiments.{exp}.rows", i, key), fmt) for key, _, fmt in cols])
    return table


def _col(summary: Mapping[str, Any], exp: str, key: str, where: Mapping[str, Any]) -> list[Any]:
    rows = resolve(summary, f"experiments.{exp}.rows")
    return [r.get(key) for r in rows if all(r.get(k) == v for k, v in where.items())]


def _residual_figures(summary: Mapping[str, Any], spec: ReproduceSpec) -> list[Figure]:
    """Per-layer ||W - Z|| / ||W|| over the ADMM rounds, one figure per compressed model of (a)."""
    figures = []
    for run in (spec.mnist, spec.deep):
        for r in spec.fragment_sizes:
            name = f"{run.key}-R{r}"
            path = join_path("experiments.a.compress", name, "admm", "history")
            history = resolve(summary, path)
            if not isinstance(history, list) or not history:
                continue
            layers = list(history[0]["residuals"])
            series = {layer: [h["residuals"].get(layer) for h in history] for layer in layers}
            figures.append(
                Figure(
                    f"a-residuals-{name}",
                    f"ADMM convergence, {name}",
                    plots.lines(
                        [h["round"] for h in history],
                        series,
                        "ADMM round",
                        "||W - Z|| / ||W|| (log)",
                        f"{name}: per-layer ADMM residual",
                        logy=True,
                    ),
                    sources=[path],
                )
            )
    return figures


def reproduce_report(summary: dict[str, Any], spec: ReproduceSpec) -> Report:
    """The report of experiments (a)-(d)."""
    a = _rows_table(
        summary,
        "a",
        "a-accuracy-vs-r",
        "Accuracy vs fragment size R",
        [
            ("model", "model", "text"),
            ("dataset", "dataset", "text"),
            ("fragment_size", "R", "int"),
            ("float_accuracy", "float", "pct"),
            ("compressed_accuracy", "compressed", "pct"),
            ("drop_points", "drop (points)", "float"),
            ("fragments_mixed_sign", "mixed-sign fragments", "int"),
        ],
    )
    series = {}
    for run in (spec.mnist, spec.deep):
        series[run.key] = _col(
            summary, "a", "compressed_accuracy", {"model": run.model, "dataset": run.dataset}
        )
    sec_a = Section(
        "a",
        "(a) Accuracy vs fragment size",
        paragraphs=[
            "Each R compressed from the same float model (no pruning); accuracy after masked retraining. "
            "The residual plots show each layer's ||W - Z|| / ||W|| after every ADMM round: the distance "
            "of the trained weights from the constraint set, which falls as ADMM converges."
        ],
        tables=[a],
        figures=[
            Figure(
                "a-accuracy-vs-r",
                "Accuracy vs R",
                plots.lines(
                    spec.fragment_sizes,
                    series,
                    "fragment size R",
                    "test accuracy",
                    "Accuracy vs R",
                    logx=True,
                ),
                sources=["experiments.a.rows"],
            ),
            *_residual_figures(summary, spec),
        ],
    )
    sec_b = crossbar_section(summary, prefix="experiments.b.compress.crossbars")
    sec_b.id, sec_b.title = "b", "(b) Crossbar reduction: pruning x quantization x polarization"
    for t in sec_b.tables:
        t.id = f"b-{t.id}"
    for f in sec_b.figures:
        f.id = f"b-{f.id}"
    c = _rows_table(
        summary,
        "c",
        "c-architectures",
        f"Throughput and efficiency (ratios to {spec.baseline})",
        [
            ("workload", "network", "text"),
            ("arch", "architecture", "text"),
            ("activity", "zero-skip activity", "text"),
            ("gops_per_s_mm2", "GOPs/(s·mm²)", "float"),
            ("gops_per_w", "GOPs/W", "float"),
            ("fps", "FPS", "float"),
            ("chips", "chips", "int"),
            ("gops_per_s_mm2_ratio", "GOPs/(s·mm²) ratio", "ratio"),
            ("gops_per_w_ratio", "GOPs/W ratio", "ratio"),
            ("fps_ratio", "FPS ratio", "ratio"),
        ],
    )
    labels = [w.label for w in spec.workloads]
    sec_c = Section(
        "c",
        "(c) FORMS vs ISAAC vs PRIME",
        paragraphs=[
            "Dense-equivalent GOPs (a MAC is 2 ops) per architecture; ratios divide by the baseline."
        ],
        tables=[c],
        figures=[
            Figure(
                f"c-{metric}",
                f"{name} ratio to {spec.baseline}",
                plots.grouped_bars(
                    labels,
                    {arch: _col(summary, "c", f"{metric}_ratio", {"arch": arch}) for arch in spec.archs},
                    f"ratio to {spec.baseline} (log)",
                    f"{name} relative to {spec.baseline}",
                    log=True,
                    hline=1.0,
                ),
                sources=["experiments.c.rows"],
            )
            for metric, name in (("gops_per_s_mm2", "GOPs/(s·mm²)"), ("gops_per_w", "GOPs/W"), ("fps", "FPS"))
        ],
    )
    d = _rows_table(
        summary,
        "d",
        "d-variation",
        f"Accuracy under log-normal variation (sigma {spec.variation_sigma}, {spec.variation_runs} chips)",
        [
            ("variant", "model", "text"),
            ("encoding", "encoding", "text"),
            ("ideal_accuracy", "ideal", "pct"),
            ("variation_mean", "mean under variation", "pct"),
            ("variation_std", "std", "pct"),
            ("degradation_points", "degradation (points)", "float"),
        ],
    )
    variants = _col(summary, "d", "variant", {})
    sec_d = Section(
        "d",
        "(d) Device variation",
        tables=[d],
        figures=[
            Figure(
                "d-variation",
                "Accuracy under variation",
                plots.grouped_bars(
                    variants,
                    {
                        "ideal": _col(summary, "d", "ideal_accuracy", {}),
                        "variation": _col(summary, "d", "variation_mean", {}),
                    },
                    "test accuracy",
                    "Ideal vs varied devices",
                    errors={"variation": _col(summary, "d", "variation_std", {})},
                ),
                sources=["experiments.d.rows"],
            )
        ],
    )
    intro = ["Paper-style experiments of FORMS (Yuan et al., ISCA 2021) reproduced with this toolkit."]
    if spec.quick_mode:
        intro.append(
            "QUICK MODE: shrunken settings for CI; the numbers are not results (see the assumptions)."
        )
    sections = [overview_section(summary, intro), sec_a, sec_b, sec_c, sec_d, assumptions_section(summary)]
    return Report(str(summary["title"]), str(summary["meta"]["created"]), sections, summary)


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
    a = experiment_a(spec, out / "a", clock, progress)
    b = experiment_b(spec, out / "b", clock, progress)
    c = experiment_c(spec, out / "c", out / "b", b, clock)
    d = experiment_d(spec, out / "d", out / "a", out / "b", clock, progress)
    summary = build_summary(
        title="FORMS reproduce" + (" (quick)" if spec.quick_mode else ""),
        parameters=spec.model_dump(mode="json"),
        assumptions=spec.assumptions(),
        train=a["float"].get(spec.mnist.key, {}),
        compress=b["compress"],
        baseline=spec.baseline,
        command=command or f"forms reproduce{' --quick' if spec.quick_mode else ''} --out {out}",
        extra={"experiments": {"a": a, "b": b, "c": c, "d": d}},
    )
    summary["meta"].update(clock.to_dict())
    summary["meta"]["wall_seconds"] = time.perf_counter() - start
    files = write_report(reproduce_report(summary, spec), out / "report")
    return JobResult(out, files, time.perf_counter() - start, clock)


__all__ = ["ReproduceSpec", "TrainRun", "Workload", "reproduce_report", "run_reproduce"]
