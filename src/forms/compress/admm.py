"""The ADMM loop that drives weights toward the FORMS constraint set.

Problem: minimize loss(W) subject to W_l in S_l for every mapped layer l (S_l: polarized, quantized,
pruned; see :mod:`forms.compress.projections`). Scaled-form ADMM (Boyd et al., "Distributed
Optimization and Statistical Learning via ADMM", 2011, Sec. 3.1.1) with the split W = Z:

- W-step: SGD/Adam epochs on loss(W) + sum_l rho/2 * ||W_l - Z_l + U_l||^2;
- Z-step: Z_l = proj_{S_l}(W_l + U_l);
- U-step: U_l += W_l - Z_l.

rho grows by ``rho_growth`` per round up to ``rho_max``; the scaled dual U = y / rho is rescaled by
rho_old / rho_new when rho changes so that the unscaled dual y is unchanged (Boyd et al., Sec. 3.4.1).
The loop is warm-started with Z = proj(W), U = 0. Each round logs every layer's ||W - Z|| / ||W||.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from forms.compress.constraints import model_matrices, project_all
from forms.compress.projections import LayerConstraint, Projection
from forms.compress.spec import CompressSpec
from forms.geometry import matrix_to_weight


@dataclass
class ADMMState:
    """Everything needed to resume ADMM: Z, U (weight-shaped, per layer), rho and rounds done."""

    Z: dict[str, Tensor]
    U: dict[str, Tensor]
    rho: float
    round: int = 0
    """Rounds completed."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One record per completed round (rho, residuals, accuracies, timings)."""

    def state(self) -> dict[str, Any]:
        """Plain-dict form for ``torch.save``."""
        return {
            "Z": {k: v.detach().cpu() for k, v in self.Z.items()},
            "U": {k: v.detach().cpu() for k, v in self.U.items()},
            "rho": self.rho,
            "round": self.round,
            "history": self.history,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ADMMState:
        """Inverse of :meth:`state`."""
        return cls(
            Z=dict(state["Z"]),
            U=dict(state["U"]),
            rho=float(state["rho"]),
            round=int(state["round"]),
            history=list(state["history"]),
        )


def _weight(model: nn.Module, name: str) -> Tensor:
    weight = model.get_submodule(name).weight
    assert isinstance(weight, Tensor)
    return weight


def _weights(model: nn.Module, constraints: list[LayerConstraint]) -> dict[str, Tensor]:
    return {c.name: _weight(model, c.name) for c in constraints}


def projected_weights(
    model: nn.Module,
    constraints: list[LayerConstraint],
    spec: CompressSpec,
    offsets: dict[str, Tensor] | None = None,
) -> tuple[dict[str, Tensor], dict[str, Projection]]:
    """proj(W + offsets) per layer, as weight tensors and as the underlying :class:`Projection`s."""
    mats = model_matrices(model, constraints)
    if offsets is not None:
        from forms.geometry import weight_to_matrix

        mats = {c.name: mats[c.name] + weight_to_matrix(offsets[c.name], c.groups) for c in constraints}
    proj = project_all(mats, constraints, spec)
    weights = {c.name: matrix_to_weight(proj[c.name].matrix, c.weight_shape) for c in constraints}
    return weights, proj


def init_state(model: nn.Module, constraints: list[LayerConstraint], spec: CompressSpec) -> ADMMState:
    """Warm start: Z = proj(W), U = 0, rho = the initial rho."""
    z, _ = projected_weights(model, constraints, spec)
    u = {name: torch.zeros_like(t) for name, t in z.items()}
    return ADMMState(Z=z, U=u, rho=spec.schedule.rho)


def penalty_fn(state: ADMMState, device: torch.device) -> Callable[[nn.Module], Tensor]:
    """``extra_loss(model)`` of the W-step: sum_l rho/2 ||W_l - (Z_l - U_l)||^2.

    Z - U is constant during a W-step, so it is formed once here and each call costs one
    subtraction and one reduction per layer.
    """
    targets = {name: (state.Z[name] - state.U[name]).to(device) for name in state.Z}
    half_rho = state.rho / 2

    def extra_loss(model: nn.Module) -> Tensor:
        total: Tensor | None = None
        for name, target in targets.items():
            term = (_weight(model, name) - target).square().sum()
            total = term if total is None else total + term
        assert total is not None
        return half_rho * total

    return extra_loss


def relative_residuals(
    model: nn.Module, constraints: list[LayerConstraint], z: dict[str, Tensor]
) -> dict[str, float]:
    """||W_l - Z_l|| / ||W_l|| per layer (0 for an all-zero W)."""
    out = {}
    for name, w in _weights(model, constraints).items():
        w = w.detach().cpu()
        norm = float(w.norm())
        out[name] = float((w - z[name]).norm()) / norm if norm > 0 else 0.0
    return out


def zu_step(
    model: nn.Module, constraints: list[LayerConstraint], spec: CompressSpec, state: ADMMState
) -> dict[str, float]:
    """Z = proj(W + U), U += W - Z; return the per-layer relative residual ||W - Z|| / ||W||."""
    w = {name: t.detach().cpu() for name, t in _weights(model, constraints).items()}
    z, _ = projected_weights(model, constraints, spec, offsets=state.U)
    state.Z = z
    state.U = {name: state.U[name] + w[name] - z[name] for name in z}
    return relative_residuals(model, constraints, z)


def grow_rho(state: ADMMState, spec: CompressSpec) -> None:
    """rho <- min(rho * growth, cap), rescaling U so the unscaled dual rho * U is unchanged."""
    new = min(state.rho * spec.schedule.rho_growth, spec.schedule.rho_max)
    if new != state.rho:
        factor = state.rho / new
        state.U = {name: u * factor for name, u in state.U.items()}
        state.rho = new
