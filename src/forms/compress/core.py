"""The in-memory core of compression: ADMM, projection, masked retraining and baking, end to end.

:func:`run_phases` takes a model already on its device and a :class:`~forms.compress.phases.PhaseContext`
(its data, settings, progress display and how it saves state) and returns what the phases measured
with the baked integer layers (:class:`PhaseResults`). Both entry points share it: the CLI's checkpoint
path (:func:`forms.compress.pipeline.compress`, which adds the run folder, resume and files) and the
Python API (:func:`forms.api.compression.compress`, which runs it on a user's model and loaders).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forms.compress.admm import ADMMState
from forms.compress.phases import Criterion, PhaseContext, project, restore_projection, run_admm, run_retrain
from forms.compress.propagation import propagate_pruning
from forms.compress.result import AdmmSummary, RetrainSummary, RunOutcome
from forms.compress.retrain import bake
from forms.intweights import IntegerLayer
from forms.nn.epoch import evaluate_counts


@dataclass(frozen=True)
class PhaseResults:
    """What the phases of one run measured, and the integer layers they ended with."""

    layers: list[IntegerLayer]
    """The baked integer weights, one per mapped layer (pruning propagated when the spec asks)."""
    accuracy_admm: float
    """Accuracy after the last ADMM round (the accuracy before, without rounds)."""
    accuracy_projected: float
    """Accuracy right after the hard projection, before retraining."""
    accuracy_after: float
    """Accuracy of the baked model."""
    test_images: int
    """Images every accuracy was measured on."""
    bn_recalibrated: bool
    """Whether BatchNorm statistics were re-estimated after the projection."""
    admm: AdmmSummary
    """The ADMM rounds."""
    retrain: RetrainSummary
    """The masked-retraining epochs and the one kept."""

    def outcome(
        self, model: str, dataset: str, source: str, world_size: int, accuracy_before: float
    ) -> RunOutcome:
        """The run's :class:`RunOutcome`: these measurements under the run's names."""
        return RunOutcome(
            model=model,
            dataset=dataset,
            source_checkpoint=source,
            world_size=world_size,
            accuracy_before=accuracy_before,
            accuracy_admm=self.accuracy_admm,
            accuracy_projected=self.accuracy_projected,
            accuracy_after=self.accuracy_after,
            test_images=self.test_images,
            bn_recalibrated=self.bn_recalibrated,
            admm=self.admm,
            retrain=self.retrain,
        )


def run_phases(
    ctx: PhaseContext,
    admm: ADMMState,
    accuracy_before: float,
    saved: dict[str, Any] | None = None,
    criterion: Criterion | None = None,
) -> PhaseResults:
    """ADMM rounds, hard projection, masked retraining and baking of ``ctx.model``, in place.

    ``admm`` is the state ADMM starts (or, with ``saved``, resumes) from; ``saved`` a run state to
    continue (:mod:`forms.compress.state`), or None; ``criterion`` the retraining loss (distillation),
    or None for cross-entropy. With a validation set the weights of the best retraining epoch are kept.
    Accuracies are measured on ``ctx.test_set``.
    """
    retrain_state = _admm_and_projection(ctx, admm, saved)
    run_retrain(ctx, retrain_state, saved, criterion)
    best = retrain_state.get("best")
    if best is not None:
        ctx.model.load_state_dict(best["state_dict"])
    layers = bake(ctx.model, ctx.constraints)
    if ctx.spec.prune.propagate:
        layers = propagate_pruning(ctx.model, layers)
    correct, total = evaluate_counts(ctx.model, ctx.test_set, ctx.spec.schedule.eval_batch_size, ctx.device)
    return PhaseResults(
        layers=layers,
        accuracy_admm=admm.history[-1]["accuracy"] if admm.history else accuracy_before,
        accuracy_projected=retrain_state["accuracy_projected"],
        accuracy_after=correct / total,
        test_images=total,
        bn_recalibrated=retrain_state["bn_recalibrated"],
        admm=AdmmSummary.from_state(admm),
        retrain=RetrainSummary.from_state(
            retrain_state, ctx.spec.held_out_images, ctx.validation_seen_by_float_model
        ),
    )


def _admm_and_projection(ctx: PhaseContext, admm: ADMMState, saved: dict[str, Any] | None) -> dict[str, Any]:
    """ADMM and the hard projection, or, for a run saved in retraining, its restored projection.

    Returns the retraining state.
    """
    if saved is not None and saved["phase"] != "admm":
        return restore_projection(ctx, saved)
    if saved:
        ctx.model.load_state_dict(saved["state_dict"])
    run_admm(ctx, admm, saved)
    return project(ctx)
