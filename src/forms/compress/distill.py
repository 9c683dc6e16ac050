"""Knowledge distillation from the float model, the loss of masked retraining when it is enabled.

Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network", arXiv:1503.02531 (2015):
the student (the constrained model) matches the teacher's (the float model's) class probabilities
softened at temperature T, scaled by T^2 so the gradient size does not depend on T, mixed with the
cross-entropy of the labels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def distillation_loss(
    student: Tensor, teacher: Tensor, labels: Tensor, weight: float, temperature: float
) -> Tensor:
    """(1 - weight) * CE(student, labels) + weight * T^2 * KL(softmax(teacher/T) || softmax(student/T)).

    Mean over the batch. ``weight`` 0 is the plain cross-entropy; with ``weight`` 1 and the teacher's
    logits as the student's, the loss is 0.
    """
    t = temperature
    hard = F.cross_entropy(student, labels)
    soft = F.kl_div(
        F.log_softmax(student / t, dim=1),
        F.log_softmax(teacher / t, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return (1 - weight) * hard + weight * t * t * soft


def distillation_criterion(
    teacher: nn.Module, weight: float, temperature: float
) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """``criterion(logits, inputs, labels)`` for :func:`forms.nn.train.train_epoch`: distil ``teacher``.

    The teacher runs in eval mode (BatchNorm running statistics, no dropout) without gradients, and
    its parameters are frozen.
    """
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    def criterion(logits: Tensor, inputs: Tensor, labels: Tensor) -> Tensor:
        with torch.no_grad():
            target = teacher(inputs)
        return distillation_loss(logits, target, labels, weight, temperature)

    return criterion
