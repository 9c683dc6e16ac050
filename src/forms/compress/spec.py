"""Typed specification of a compression run: constraints (polarize, quantize, prune) and schedule.

Every field is validated on load; impossible combinations (R not dividing the crossbar rows,
bits out of range, a pruning ratio outside [0, 1)) and infinite or NaN numbers are refused here,
before any file is written.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from forms.config import CrossbarSpec, Spec
from forms.encoding import MAX_WEIGHT_BITS
from forms.nn.train import CHANNELS_LAST_DOC

FINITE = ConfigDict(allow_inf_nan=False)
"""Config of the compression specs with float fields: they refuse NaN and infinities."""

PRUNE_GRANULARITIES = ("filter", "channel", "fragment", "rows")
"""filter: a whole output channel (a crossbar column); channel: a whole input channel (kh*kw crossbar
rows, or one row of a Linear layer); fragment: R consecutive rows of one column (one sign fragment);
rows: R consecutive rows aligned to fragments, in every column (a whole fragment of each column: the
unit whose removal frees crossbar rows on a polarized design, which keeps partly-zero fragments whole)."""

PruneUnit = Literal["filter", "channel", "fragment", "rows"]
"""One unit of :data:`PRUNE_GRANULARITIES`."""

PruneGranularity = Literal[
    "filter", "channel", "fragment", "rows", "filter+channel", "filter+fragment", "filter+rows"
]
"""One unit of :data:`PRUNE_GRANULARITIES`, or filters and one row-axis unit pruned in the same layer
(filters first, then the row groups of the filter-pruned matrix, each at the layer's ratio)."""


class QuantSpec(Spec):
    """Symmetric uniform quantization of every mapped layer to signed integers."""

    weight_bits: int = Field(
        8, ge=1, le=MAX_WEIGHT_BITS, description="Magnitude bits b: integers satisfy |q| <= 2^b - 1."
    )
    scale: Literal["channel", "layer"] = Field(
        "channel",
        description="One step size per output channel (crossbar column; digital per-column scaling "
        "after the ADC) or one per layer.",
    )
    scale_method: Literal["lsq", "maxabs"] = Field(
        "lsq",
        description="How the step size is chosen: 'maxabs' maps the largest |w| to 2^b - 1; 'lsq' starts "
        "there and alternates nearest-integer rounding with the least-squares step (error never grows).",
    )
    scale_iterations: int = Field(
        8, ge=0, le=100, description="Alternations of the 'lsq' step-size search (0 = max-abs)."
    )


class PolarizeSpec(Spec):
    """Fragment polarization: every fragment of R rows of one crossbar column is >= 0 or <= 0."""

    enabled: bool = Field(True, description="Enforce single-signed fragments (FORMS).")
    first_layer: bool = Field(
        True,
        description="Polarize the first mapped layer too. FORMS maps every layer on crossbars, so the "
        "default polarizes all; set false to keep it mixed-sign (its IntegerLayer then has R = 1).",
    )
    last_layer: bool = Field(True, description="Polarize the last mapped layer too (see first_layer).")


class PruneSpec(Spec):
    """Structured pruning at crossbar-friendly granularity."""

    model_config = FINITE

    ratio: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Fraction of groups (filters/channels/fragments/row blocks) set to zero.",
    )
    granularity: PruneGranularity = Field(
        "filter",
        description="What is removed as a unit: " + "; ".join(PRUNE_GRANULARITIES) + ". 'filter+channel' "
        "(or the list [filter, channel]), 'filter+fragment' and 'filter+rows' remove both in the same layer, "
        "each at the layer's ratio: filters first, then the rows of the filter-pruned matrix.",
    )
    scope: Literal["layer", "global"] = Field(
        "layer",
        description="'layer': the ratio applies to each layer (exact Euclidean projection per layer); "
        "'global': groups of all layers are ranked together by RMS relative to their layer's RMS (a layer "
        "in layer_ratios may then only have ratio 0, which takes it out of the ranking).",
    )
    layer_ratios: dict[str, float | dict[PruneUnit, float]] = Field(
        default_factory=dict,
        description="Per-layer ratio overrides by qualified module name ('layer' scope): a ratio for every "
        "unit of the granularity, or a ratio per unit ({filter: 0.9, channel: 0.3} with 'filter+channel'; "
        "a unit left out is not pruned). A ratio for the first or last mapped layer is refused unless "
        "first_layer or last_layer includes it.",
    )
    first_layer: bool = Field(
        False,
        description="Prune the first mapped layer too. Off by default: it holds few filters over the "
        "image channels, is the most sensitive to pruning, and fits one crossbar in small networks anyway.",
    )
    last_layer: bool = Field(
        False, description="Prune the last mapped layer (its outputs are the class logits)."
    )
    round_to_tiles: bool = Field(
        False,
        description="Round each layer's kept filters and input channels down to a crossbar tile "
        "boundary (crossbar.rows rows; crossbar.cols / cells per weight columns) when they spill past "
        "one, which saves a row or column of crossbars; layers within one tile are left as they are. "
        "'layer' scope, ungrouped layers, filter and channel units. Rows are saved on the polarized "
        "design only where whole fragments fall empty (a fragment's zero rows share its sign bit; "
        "docs/design.md, 'Two reduction counts'): removed input channels whose rows do not fill whole "
        "fragments save rows on the differential and offset designs only.",
    )
    propagate: bool = Field(
        False,
        description="After retraining, remove a pruned filter's channel from the next mapped layer's "
        "rows too (its constant output folded into that layer's bias, so the network computes the same "
        "function), and a filter whose rows of the next layer are all pruned, where the next layer is "
        "unambiguous (forms.compress.propagation).",
    )

    @field_validator("granularity", mode="before")
    @classmethod
    def _canonical_granularity(cls, value: Any) -> Any:
        """A list of units ([filter, channel]) or a combination in any order ('channel+filter') is
        written in the canonical order of :data:`PRUNE_GRANULARITIES` ('filter+channel')."""
        parts = value if isinstance(value, list) else value.split("+") if isinstance(value, str) else None
        if parts is None or not all(p in PRUNE_GRANULARITIES for p in parts):
            return value  # the Literal check names the choices
        return "+".join(sorted(set(parts), key=PRUNE_GRANULARITIES.index))

    @field_validator("layer_ratios")
    @classmethod
    def _ratios_in_range(
        cls, value: dict[str, float | dict[PruneUnit, float]]
    ) -> dict[str, float | dict[PruneUnit, float]]:
        for name, ratios in value.items():
            for unit, ratio in ratios.items() if isinstance(ratios, dict) else [("", ratios)]:
                if not 0.0 <= ratio < 1.0:
                    what = f"{unit} ratio" if unit else "ratio"
                    raise ValueError(f"{what} of layer '{name}' must lie in [0, 1), got {ratio}")
        return value

    @model_validator(mode="after")
    def _tiles_need_layer_scope(self) -> PruneSpec:
        if self.round_to_tiles and self.scope == "global":
            raise ValueError(
                "prune.round_to_tiles needs prune.scope 'layer' (a global ranking sets the counts)"
            )
        return self

    @model_validator(mode="after")
    def _global_scope_takes_no_layer_ratio(self) -> PruneSpec:
        sized = sorted(name for name in self.layer_ratios if max(self.unit_ratios(name).values()) > 0)
        if self.scope == "global" and sized:
            raise ValueError(
                f"prune.layer_ratios gives nonzero ratios for {', '.join(sized)}, which prune.scope 'global' "
                "would not use (one ratio, prune.ratio, ranks the groups of all layers together); set "
                "prune.scope 'layer' to prune each layer at its own ratio, or keep 'global' and give those "
                "layers ratio 0 (which only takes them out of the ranking)"
            )
        return self

    @model_validator(mode="after")
    def _units_of_the_granularity(self) -> PruneSpec:
        units = self.granularity.split("+")
        for name, ratios in self.layer_ratios.items():
            other = sorted(set(ratios) - set(units)) if isinstance(ratios, dict) else []
            if other:
                raise ValueError(
                    f"prune.layer_ratios of layer '{name}' gives a ratio for {', '.join(other)}, which "
                    f"prune.granularity '{self.granularity}' does not prune; set the granularity (e.g. "
                    f"filter+{other[0]}) or give ratios for {' and '.join(units)} only"
                )
        return self

    def unit_ratios(self, name: str) -> dict[str, float]:
        """Layer ``name``'s pruning ratio per unit of the granularity (``ratio`` unless overridden)."""
        units = self.granularity.split("+")
        ratios = self.layer_ratios.get(name, self.ratio)
        if isinstance(ratios, dict):
            return {unit: ratios.get(unit, 0.0) for unit in units}  # type: ignore[call-overload]
        return dict.fromkeys(units, ratios)

    @property
    def active(self) -> bool:
        """Whether any layer is pruned."""
        return self.ratio > 0 or any(max(self.unit_ratios(name).values()) > 0 for name in self.layer_ratios)


class ScheduleSpec(Spec):
    """ADMM and masked-retraining schedule."""

    model_config = FINITE

    admm_rounds: int = Field(
        4, ge=0, le=1000, description="ADMM rounds (each: W-step epochs, Z and U steps)."
    )
    round_epochs: int = Field(1, ge=1, le=1000, description="W-step training epochs per ADMM round.")
    retrain_epochs: int = Field(
        3, ge=0, le=1000, description="Masked retraining epochs after hard projection."
    )
    rho: float = Field(0.05, gt=0, description="Initial ADMM penalty rho.")
    rho_growth: float = Field(2.0, ge=1.0, description="rho is multiplied by this after every round.")
    rho_max: float = Field(10.0, gt=0, description="Cap of rho.")
    optimizer: Literal["sgd", "adam"] = Field("adam", description="Optimizer of the W-step and retraining.")
    lr: float = Field(1e-3, gt=0, description="Learning rate of the ADMM W-step (constant within ADMM).")
    retrain_lr: float = Field(
        5e-4, gt=0, description="Initial learning rate of retraining; cosine-decayed to 0 over its epochs."
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (ignored by Adam).")
    weight_decay: float = Field(
        0.0,
        ge=0,
        description="Weight decay of the ADMM W-step (and of retraining unless retrain_weight_decay is set).",
    )
    retrain_weight_decay: float | None = Field(
        None, ge=0, description="Weight decay of masked retraining (None = weight_decay)."
    )
    distill_weight: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Weight a of knowledge distillation from the float model during masked retraining: "
        "loss = (1 - a) CE + a T^2 KL(teacher || student) at temperature T (Hinton et al., 2015, "
        "arXiv:1503.02531). 0 = plain cross-entropy.",
    )
    distill_temperature: float = Field(
        4.0, gt=0, description="Softmax temperature T of the distillation term (see distill_weight)."
    )
    batch_size: int = Field(128, ge=1, le=65536, description="Training mini-batch size.")
    eval_batch_size: int = Field(
        128, ge=1, description="Evaluation batch size (128: see forms.nn.train.TrainSpec.eval_batch_size)."
    )
    shift: int = Field(
        0,
        ge=0,
        le=8,
        description="Random-translation augmentation of the ADMM W-step and masked-retraining batches: "
        "max shift in pixels, drawn per image from (seed, epoch) as forms train's shift (0 = none). "
        "Validation, test and BatchNorm re-estimation batches are never shifted: the statistics are "
        "those of the images the model will see.",
    )
    bn_recalibration_batches: int = Field(
        50,
        ge=0,
        description="Training batches used to re-estimate BatchNorm statistics after hard projection "
        "(0 = keep the running statistics).",
    )


class CompressSpec(Spec):
    """A whole compression run: crossbar geometry, constraints and schedule."""

    crossbar: CrossbarSpec = Field(
        default_factory=CrossbarSpec,
        description="Crossbar geometry; fragment_size is R of the polarization constraint.",
    )
    quant: QuantSpec = Field(default_factory=QuantSpec, description="Weight quantization.")
    polarize: PolarizeSpec = Field(default_factory=PolarizeSpec, description="Fragment polarization.")
    prune: PruneSpec = Field(default_factory=PruneSpec, description="Structured pruning.")
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec, description="ADMM/retraining schedule.")
    seed: int = Field(0, ge=0, description="Seed of data order and every other random choice.")
    data_dir: str | None = Field(None, description="Data root (default: $FORMS_DATA or ~/.cache/forms/data).")
    train_subset: int | None = Field(None, ge=1, description="Use only the first N training images.")
    test_subset: int | None = Field(None, ge=1, description="Use only the first N test images.")
    validation_images: int | None = Field(
        None,
        ge=0,
        description="Training images held out to choose the retraining epoch: the model is taken from the "
        "epoch of best validation accuracy (ties: the later epoch), and these images take no part in the "
        "W-step, BatchNorm re-estimation or retraining. The test set then only measures. Unset: the "
        "images the float model held out (forms train --validation-images), or none when it held none "
        "out. 0 = no hold-out; the last retraining epoch is kept. When the float model held images out, "
        "a hold-out that includes images it trained on is refused.",
    )
    validation_seed: int | None = Field(
        None,
        ge=0,
        description="Seed of the hold-out draw (forms.nn.data.holdout_mask). Unset: the float model's "
        "hold-out seed when it recorded one, else seed.",
    )
    validation_pool: int | None = Field(
        None,
        ge=1,
        description="The hold-out is drawn from the first N training images. Unset: those the float model "
        "drew its hold-out from when it recorded one, else the run's training set (train_subset).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train.")
    channels_last: bool = Field(False, description=CHANNELS_LAST_DOC)

    @property
    def held_out_images(self) -> int:
        """Training images held out for validation (0 while ``validation_images`` is unset)."""
        return self.validation_images or 0

    def with_overrides(self, overrides: dict[str, Any]) -> CompressSpec:
        """Apply dotted-key overrides (``{"crossbar.fragment_size": 16}``), validating the result."""
        data = self.model_dump()
        for key, value in overrides.items():
            if value is None:
                continue
            node = data
            *parents, leaf = key.split(".")
            for part in parents:
                node = node[part]
            node[leaf] = value
        return CompressSpec.from_dict(data, source="command-line options")
