"""What defines a training run: :class:`TrainSpec`, and which of its fields only say where it executes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator
from torch import nn

from forms.config import Spec
from forms.nn.data import DATASET_NAMES, dataset_info, input_shape
from forms.nn.models import MODEL_NAMES, build_model, model_kwargs

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

    model: str = Field("lenet5", description=f"Zoo model: one of {', '.join(MODEL_NAMES)}.")
    dataset: str = Field("mnist", description=f"Dataset: one of {', '.join(DATASET_NAMES)}.")
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
    data_dir: str | None = Field(None, description="Data root (default: $FORMS_DATA or ~/.cache/forms/data).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train.")
    channels_last: bool = Field(False, description=CHANNELS_LAST_DOC)

    @model_validator(mode="after")
    def _known_names(self) -> TrainSpec:
        if self.model not in MODEL_NAMES:
            raise ValueError(f"unknown model '{self.model}'; choose one of: {', '.join(MODEL_NAMES)}")
        if self.dataset not in DATASET_NAMES:
            raise ValueError(f"unknown dataset '{self.dataset}'; choose one of: {', '.join(DATASET_NAMES)}")
        return self

    def build_model(self) -> nn.Module:
        """A freshly initialised model for this dataset's (padded, channel-repeated) inputs."""
        return build_model(self.model, **self.model_kwargs())

    def model_kwargs(self) -> dict[str, int]:
        """``build_model`` keyword arguments for this spec's data."""
        c, side, _ = input_shape(self.dataset, self.pad_to, self.channels)
        return model_kwargs(c, dataset_info(self.dataset).num_classes, side)

    def data_record(self) -> dict[str, Any]:
        """The checkpoint's ``data`` entry."""
        return {"dataset": self.dataset, "pad_to": self.pad_to, "channels": self.channels}
