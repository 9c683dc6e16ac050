"""Knowledge distillation: the loss's identities, its gradient, the frozen teacher, the pipeline option."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from compress_helpers import make_float_checkpoint, tiny_spec
from forms.compress import pipeline
from forms.compress.distill import distillation_criterion, distillation_loss

shapes = st.tuples(st.integers(1, 6), st.integers(2, 7))


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), t=st.floats(0.5, 8.0), w=st.floats(0.0, 1.0))
def test_loss_identities_and_gradient(shape: tuple[int, int], seed: int, t: float, w: float) -> None:
    g = torch.Generator().manual_seed(seed)
    student = (3 * torch.randn(shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    teacher = 3 * torch.randn(shape, generator=g, dtype=torch.float64)
    labels = torch.randint(0, shape[1], (shape[0],), generator=g)
    ce = F.cross_entropy(student, labels)
    torch.testing.assert_close(distillation_loss(student, teacher, labels, 0.0, t), ce)  # weight 0: CE
    assert float(distillation_loss(student, student.detach(), labels, 1.0, t).detach()) == pytest.approx(
        0, abs=1e-12
    )
    assert float(distillation_loss(student, teacher, labels, 1.0, t).detach()) >= -1e-12  # KL is non-negative
    # d/ds of T^2 KL(p_t || q_s) is T (q_s - p_t) / batch: the T^2 factor keeps gradients T-independent
    loss = distillation_loss(student, teacher, labels, w, t)
    (grad,) = torch.autograd.grad(loss, student)
    (ce_grad,) = torch.autograd.grad(ce, student)
    soft = t * (torch.softmax(student / t, 1) - torch.softmax(teacher / t, 1)) / shape[0]
    torch.testing.assert_close(grad, (1 - w) * ce_grad + w * soft.detach())


def test_criterion_uses_a_frozen_teacher_in_eval_mode() -> None:
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    teacher.train()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    criterion = distillation_criterion(teacher, 0.5, 2.0)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    student = torch.randn(16, 3, requires_grad=True)
    loss = criterion(student, x, y)
    loss.backward()
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k  # BatchNorm statistics untouched
    torch.testing.assert_close(loss, distillation_loss(student, teacher(x), y, 0.5, 2.0))


def test_pipeline_retrains_with_distillation(tmp_path: Path) -> None:
    ckpt, data_dir = make_float_checkpoint(tmp_path)
    spec = tiny_spec(data_dir, schedule={"admm_rounds": 1, "distill_weight": 0.7, "distill_temperature": 3.0})
    m = pipeline.compress(spec, ckpt, tmp_path / "kd", progress=False)
    assert m.fragments_mixed_sign == 0 and m.config["schedule"]["distill_weight"] == 0.7
    plain = pipeline.compress(
        spec.replace(schedule=spec.schedule.replace(distill_weight=0.0)),
        ckpt,
        tmp_path / "ce",
        progress=False,
    )
    # the ADMM phase is identical; only the retraining loss differs
    assert m.accuracy_projected == plain.accuracy_projected
    assert m.retrain.history[0].loss != plain.retrain.history[0].loss
