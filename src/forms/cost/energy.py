"""Energy per inference: counted actions charged at the inventory's per-action energies, plus static power.

Each role's energy per action is the sum over the inventory rows of that role (several rows may share
one role). Static power is charged for the time an image occupies the chips (chips / FPS).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from forms.cost.inventory import InventoryItem
from forms.cost.layer_cost import LayerCost
from forms.cost.pipeline import Pipeline


@dataclass(frozen=True)
class EnergyAccount:
    """Actions and energy per image, by component role."""

    actions: dict[str, float]
    """Actions per image of every role the inventory holds (max_pool: pooling-window inputs)."""
    energy_by_role_j: dict[str, float]
    """Dynamic plus static energy per image of each role, J."""

    @property
    def total_j(self) -> float:
        """Energy per inference, J."""
        return sum(self.energy_by_role_j.values())


def account_energy(
    inventory: Sequence[InventoryItem],
    costs: Sequence[LayerCost],
    pool_comparisons: int,
    pipeline: Pipeline,
) -> EnergyAccount:
    """Charge every layer's actions (setting each cost's energy_j) and the static power of the chips."""
    e_per_action: dict[str, float] = defaultdict(float)
    for item in inventory:
        e_per_action[item.role] += item.energy_pj * 1e-12
    actions = dict.fromkeys(e_per_action, 0.0)
    for c in costs:
        for role, n in c.actions.items():
            c.energy_j += n * e_per_action.get(role, 0.0)
            if role in actions:
                actions[role] += n
    actions["max_pool"] = float(pool_comparisons) if "max_pool" in e_per_action else 0.0
    energy_by_role = {role: actions.get(role, 0.0) * e for role, e in e_per_action.items()}
    for item in inventory:
        if item.static_mw > 0:
            energy_by_role[item.role] += item.static_mw * 1e-3 * pipeline.chips / pipeline.fps
    return EnergyAccount(actions, energy_by_role)
