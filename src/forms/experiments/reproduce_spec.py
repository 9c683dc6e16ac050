"""Settings of `forms reproduce`: the float runs, the costed workloads and every experiment knob.

:class:`ReproduceSpec` (loaded from YAML or :meth:`ReproduceSpec.quick`) holds what experiments (a)-(d)
run; it derives each compression's CompressSpec fields and states the settings in words for the report.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from forms.config import Spec


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
    dataset: str | None = Field(
        None,
        description="Data set the network is costed for, as packaged measurements name theirs (e.g. "
        "'mnist', 'cifar10', 'imagenet'): a measurement on another one is labelled borrowed; None: not "
        "recorded ('data set unknown').",
    )


def _default_workloads() -> list[Workload]:
    """The networks of (c): LeNet-5 on MNIST, CIFAR- and ImageNet-shaped ResNets and VGGs."""
    rows = [
        ("lenet5", [1, 28, 28], "lenet5 (MNIST)", "mnist"),
        ("resnet18", [3, 32, 32], "resnet18 (CIFAR)", "cifar10"),
        ("vgg16", [3, 32, 32], "vgg16 (CIFAR)", "cifar10"),
        ("resnet18-imagenet", [3, 224, 224], "resnet18 (ImageNet)", "imagenet"),
        ("vgg16-imagenet", [3, 224, 224], "vgg16 (ImageNet)", "imagenet"),
        ("resnet50", [3, 224, 224], "resnet50 (ImageNet)", "imagenet"),
    ]
    return [
        Workload.from_dict({"model": m, "input_shape": s, "label": lbl, "dataset": d})
        for m, s, lbl, d in rows
    ]


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


__all__ = ["ReproduceSpec", "TrainRun", "Workload"]
