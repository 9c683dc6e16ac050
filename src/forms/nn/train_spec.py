"""What defines a training run: :class:`TrainSpec`, and which of its fields only say where it executes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from torch import nn

from forms.config import Spec
from forms.nn.data import DATASET_CHOICES, DATASETS, dataset_info, input_shape
from forms.nn.holdout import Holdout
from forms.nn.models import model_kwargs
from forms.nn.user_data import is_user_source, user_source_path
from forms.nn.user_model import MODEL_CHOICES, check_model_name, make_model

EXECUTION_KEYS = ("data_dir", "device", "channels_last")
"""Spec fields that say where and how a run executes, not what it computes: a resumption may change them."""
CHANNELS_LAST_DOC = (
    "Keep 4-D weights, and so convolution activations, in channels-last (NHWC) memory order. On a 2-core "
    "AMD EPYC CPU a ResNet-20 training epoch (batch 128, 32x32) took 20% less time at 1 thread and 18% "
    "less at 2 (docs/benchmarks.md, section memory-format). Results agree to float rounding, not bit "
    "for bit; a resumed run may switch it."
)


class TrainSpec(Spec):
    """Everything that defines a training run; stored in the checkpoint and checked on resume.

    Every float field must be finite: an infinite or NaN learning rate (say) is refused on load.
    """

    model_config = ConfigDict(allow_inf_nan=False)

    model: str = Field("lenet5", description=f"Model: {MODEL_CHOICES} (forms.nn.user_model).")
    dataset: str = Field(
        "mnist", description=f"Dataset: {DATASET_CHOICES} (forms.nn.user_data); paths are stored absolute."
    )
    epochs: int = Field(10, ge=1, le=10_000, description="Number of passes over the training set.")
    batch_size: int = Field(128, ge=1, description="Global mini-batch size (split across processes).")
    optimizer: Literal["sgd", "adam"] = Field("sgd", description="SGD (with momentum) or Adam.")
    lr: float = Field(0.05, gt=0, description="Peak learning rate (OneCycle max_lr; cosine/constant start).")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (OneCycle cycles it 0.85..this).")
    nesterov: bool = Field(True, description="Nesterov momentum for SGD.")
    weight_decay: float = Field(5e-4, ge=0, description="L2 weight decay.")
    schedule: Literal["onecycle", "cosine", "constant"] = Field(
        "onecycle", description="Learning-rate schedule, stepped every batch."
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Cross-entropy label smoothing.")
    shift: int = Field(0, ge=0, le=8, description="Random-translation augmentation: max shift in pixels.")
    flip: bool = Field(False, description="Random horizontal-flip augmentation (for natural images).")
    pad_to: int | None = Field(None, ge=1, description="Zero-pad images to this square side (e.g. 32).")
    channels: int | None = Field(None, ge=1, description="Repeat grey images to this many channels.")
    seed: int = Field(0, ge=0, description="Seed of initial weights, data order, augmentation, dropout.")
    eval_batch_size: int = Field(
        128,
        ge=1,
        description="Batch size for test-set evaluation. 128 because on CPU larger batches are slower: "
        "ResNet-20 inference at 1 thread took 14.3 s per 2,000 images at batch 1000 vs 7.2 s at 128 "
        "(activations fall out of cache); raise it on a GPU.",
    )
    train_subset: int | None = Field(None, ge=1, description="Use only the first N training images.")
    test_subset: int | None = Field(None, ge=1, description="Use only the first N test images.")
    validation_images: int = Field(
        0,
        ge=0,
        description="Training images held out for validation (drawn with seed from the training set, "
        "train_subset-limited, by forms.nn.data.holdout_mask): the model never trains on them, each "
        "epoch's validation accuracy is recorded, and the weights of the epoch of best validation accuracy "
        "(ties: the later epoch) are kept. The checkpoint records the hold-out, so forms compress and "
        "forms search validate on the same unseen images. 0 = no hold-out; the last epoch is kept.",
    )
    data_dir: str | None = Field(None, description="Data root (default: $FORMS_DATA or ~/.cache/forms/data).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train.")
    channels_last: bool = Field(False, description=CHANNELS_LAST_DOC)

    @field_validator("dataset")
    @classmethod
    def _absolute_user_path(cls, dataset: str) -> str:
        """A path to user data, made absolute so that compress and simulate find it from anywhere."""
        return user_source_path(dataset) if dataset not in DATASETS and is_user_source(dataset) else dataset

    @model_validator(mode="after")
    def _known_names(self) -> TrainSpec:
        check_model_name(self.model)
        if self.dataset not in DATASETS and not is_user_source(self.dataset):
            raise ValueError(f"unknown dataset '{self.dataset}'; choose {DATASET_CHOICES}")
        return self

    def build_model(self) -> nn.Module:
        """A freshly initialised model for this dataset's (padded, channel-repeated) inputs."""
        return make_model(self.model, **self.model_kwargs())

    def model_kwargs(self) -> dict[str, int]:
        """``build_model`` keyword arguments for this spec's data."""
        c, side, _ = input_shape(self.dataset, self.pad_to, self.channels)
        return model_kwargs(c, dataset_info(self.dataset).num_classes, side)

    def holdout(self, train_images: int) -> Holdout:
        """This run's hold-out from a training split of ``train_images`` examples (before train_subset)."""
        pool = train_images if self.train_subset is None else min(self.train_subset, train_images)
        return Holdout(images=self.validation_images, seed=self.seed, pool=pool)

    def data_record(self) -> dict[str, Any]:
        """The checkpoint's ``data`` entry."""
        return {"dataset": self.dataset, "pad_to": self.pad_to, "channels": self.channels}
