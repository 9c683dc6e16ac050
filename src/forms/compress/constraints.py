"""From a model and a :class:`CompressSpec` to per-layer constraints, and model-wide projection."""

from __future__ import annotations

from torch import Tensor, nn

from forms.compress.projections import (
    LayerConstraint,
    Projection,
    TileSize,
    global_prune_masks,
    group_block,
    project,
)
from forms.compress.spec import CompressSpec
from forms.encoding import Encoding
from forms.geometry import layer_geometry, mapped_layers, weight_to_matrix


def layer_constraints(model: nn.Module, spec: CompressSpec) -> list[LayerConstraint]:
    """One :class:`LayerConstraint` per mapped layer of ``model``, in module order.

    Raises :class:`forms.errors.UnsupportedLayerError` for a model without Conv2d/Linear layers.
    """
    layers = mapped_layers(model)
    last = len(layers) - 1
    constraints = []
    for i, (name, module) in enumerate(layers):
        geo = layer_geometry(name, module)
        polarized = spec.polarize.enabled and (
            (i != 0 or spec.polarize.first_layer) and (i != last or spec.polarize.last_layer)
        )
        prunable = excluding_option(i, last, spec) is None
        units = spec.prune.unit_ratios(name) if prunable else {}
        ratio = max(units.values(), default=0.0)
        constraints.append(
            LayerConstraint(
                name=name,
                weight_shape=geo.weight_shape,
                groups=geo.groups,
                weight_bits=spec.quant.weight_bits,
                fragment_size=spec.crossbar.fragment_size if polarized else None,
                scale_mode=spec.quant.scale,
                scale_method=spec.quant.scale_method,
                scale_iterations=spec.quant.scale_iterations,
                prune_ratio=ratio,
                prune_unit_ratios=tuple(units.items()) if len(set(units.values())) > 1 else (),
                prune_granularity=spec.prune.granularity,
                prune_block=group_block(
                    spec.prune.granularity, geo.weight_shape, geo.groups, spec.crossbar.fragment_size
                ),
                prune_tile=prune_tile(spec),
            )
        )
    check_layer_ratios(spec, [c.name for c in constraints])
    return constraints


def prune_tile(spec: CompressSpec) -> TileSize | None:
    """The polarized tile of ``spec``'s crossbar in weights when ``prune.round_to_tiles`` is set."""
    if not spec.prune.round_to_tiles:
        return None
    xbar = spec.crossbar
    return TileSize(xbar.rows, xbar.cols // Encoding.POLARIZED.slices(spec.quant.weight_bits, xbar.cell_bits))


def check_layer_ratios(spec: CompressSpec, names: list[str]) -> None:
    """Refuse a per-layer ratio that would be ignored: for a layer the model does not map, or a nonzero
    ratio for the first or last mapped layer while ``prune.first_layer`` / ``prune.last_layer`` is off.

    Raises :class:`forms.errors.ConfigError` naming the option that includes the layer.
    """
    from forms.errors import ConfigError

    ratios = spec.prune.layer_ratios
    given = {name: max(spec.prune.unit_ratios(name).values()) for name in ratios}
    unknown = set(ratios) - set(names)
    if unknown:
        raise ConfigError(
            f"prune.layer_ratios names layers the model does not have: {sorted(unknown)}; "
            f"mapped layers are {names}"
        )
    for i, name in enumerate(names):
        option = excluding_option(i, len(names) - 1, spec)
        if option is not None and given.get(name, 0.0) > 0:
            raise ConfigError(
                f"a pruning ratio is given for layer '{name}', the {option.split('_')[0]} mapped layer, "
                f"which is not pruned unless prune.{option} is set (--prune-{option.replace('_', '-')})"
            )


def excluding_option(index: int, last: int, spec: CompressSpec) -> str | None:
    """The option ('first_layer' or 'last_layer') that is off and so keeps the mapped layer at
    ``index`` (of 0..``last``) from being pruned, or None when the layer is pruned."""
    if index == 0 and not spec.prune.first_layer:
        return "first_layer"
    if index == last and not spec.prune.last_layer:
        return "last_layer"
    return None


def project_all(
    matrices: dict[str, Tensor],
    constraints: list[LayerConstraint],
    spec: CompressSpec,
    keeps: dict[str, Tensor] | None = None,
) -> dict[str, Projection]:
    """Project every layer's matrices; a global pruning ratio ranks groups across layers first."""
    if keeps is None and spec.prune.scope == "global" and spec.prune.ratio > 0:
        prunable = [c for c in constraints if c.prune_ratio > 0]
        keeps = global_prune_masks(
            {c.name: matrices[c.name] for c in prunable},
            spec.prune.ratio,
            spec.prune.granularity,
            {c.name: c.prune_block for c in prunable},
        )
    keeps = keeps or {}
    return {c.name: project(matrices[c.name], c, keeps.get(c.name)) for c in constraints}


def model_matrices(model: nn.Module, constraints: list[LayerConstraint]) -> dict[str, Tensor]:
    """Detached crossbar matrices of the constrained layers."""
    out = {}
    for c in constraints:
        weight = model.get_submodule(c.name).weight
        assert isinstance(weight, Tensor)
        out[c.name] = weight_to_matrix(weight.detach().cpu(), c.groups)
    return out
