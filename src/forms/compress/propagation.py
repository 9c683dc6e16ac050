"""Which output channel of a mapped layer feeds which crossbar rows of the next: pruning that propagates.

A filter whose crossbar column is all zero outputs a constant (its bias, through BatchNorm and ReLU;
pooling a constant gives the constant), so the rows of the next mapped layer that read that channel
multiply a constant: :func:`fold_dead_channels` adds it to the next layer's bias and zeroes those rows,
and the network computes the same function. An input channel whose rows of the next layer are all
zero makes the filter that produces it useless: it is zeroed too. :func:`propagate_pruning` does both
to a baked model and its integers (``prune.propagate``), so the crossbar counts see the removed rows.

Links are found only where the next layer is unambiguous: a chain in the traced graph (:mod:`torch.fx`)
from a mapped layer to the next through modules that act per channel and keep a constant channel
constant, each value used once: Conv -> [BatchNorm] -> [ReLU] -> [Pool] -> Conv,
Conv -> ... -> Flatten -> Linear (the channel's spatial block of rows), Linear -> ReLU -> Linear. Not
linked: a value used twice (residual adds, concatenations), grouped convolutions, a next Conv with
zero padding (the border would see zeros, not the constant), an average pool that counts its padding,
and any model :mod:`torch.fx` cannot trace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor, fx, nn

from forms.geometry import mapped_layers, weight_to_matrix
from forms.intweights import IntegerLayer

CHANNEL_WISE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.MaxPool2d, nn.Dropout, nn.Identity)
"""Modules between two linked layers: per channel, and a constant channel stays constant (BatchNorm
only with running statistics)."""
CONSTANT_PRESERVING = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten)
"""Further modules between two linked layers (pools without padding, channel-major flatten)."""
RELU_FUNCTIONS = (torch.relu, nn.functional.relu)
"""Functions between two linked layers (see :data:`CHANNEL_WISE`)."""
RELU_STEP = "relu"
"""The name a functional ReLU has in :attr:`ChannelLink.steps`."""


@dataclass(frozen=True)
class ChannelLink:
    """Output channel c of ``source`` feeds rows [c*k, (c+1)*k) of ``target``'s crossbar matrix, k =
    ``rows_per_channel`` (kh*kw for a Conv, the flattened spatial size for a Linear after Flatten)."""

    source: str
    target: str
    rows_per_channel: int
    steps: tuple[str, ...] = ()
    """What lies between, in order: module names, or :data:`RELU_STEP` for a functional ReLU."""


def _step_name(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """The name of a per-channel, constant-preserving step (a flatten is ''), or None for any other."""
    if node.op == "call_module":
        module = modules[str(node.target)]
        if isinstance(module, nn.AvgPool2d):
            keeps = module.padding in (0, (0, 0)) or not module.count_include_pad
        elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            keeps = module.track_running_stats
        else:
            keeps = isinstance(module, CHANNEL_WISE + CONSTANT_PRESERVING)
        return str(node.target) if keeps else None
    relu = node.target in RELU_FUNCTIONS if node.op == "call_function" else node.target in ("relu", "relu_")
    if node.op in ("call_function", "call_method") and relu:
        return RELU_STEP
    if node.target is torch.flatten or (node.op == "call_method" and node.target == "flatten"):
        return ""
    return None


def _next_mapped(
    node: fx.Node, modules: dict[str, nn.Module], mapped: set[str]
) -> tuple[str, tuple[str, ...]] | None:
    """The mapped layer that alone reads ``node``'s output through per-channel steps, and those steps."""
    steps: list[str] = []
    while len(node.users) == 1:
        (node,) = node.users
        if node.op == "call_module" and str(node.target) in mapped:
            return str(node.target), tuple(steps)
        step = _step_name(node, modules)
        if step is None:
            return None
        if step:
            steps.append(step)
    return None


def _link(
    source: nn.Module, target: nn.Module, names: tuple[str, str], steps: tuple[str, ...]
) -> ChannelLink | None:
    """The link between two mapped layers, or None when their shapes or settings do not allow one
    (the target needs a bias to absorb a constant channel)."""
    if isinstance(source, nn.Conv2d) and source.groups == 1:
        channels = source.out_channels
    elif isinstance(source, nn.Linear):
        channels = source.out_features
    else:
        return None
    if target.bias is None:
        return None
    if isinstance(target, nn.Conv2d):
        if target.groups != 1 or target.in_channels != channels or target.padding not in (0, (0, 0)):
            return None
        return ChannelLink(*names, rows_per_channel=math.prod(target.kernel_size), steps=steps)
    if not isinstance(target, nn.Linear) or target.in_features % channels:
        return None
    return ChannelLink(*names, rows_per_channel=target.in_features // channels, steps=steps)


def channel_links(model: nn.Module) -> list[ChannelLink]:
    """Every link between consecutive mapped layers of ``model`` (none when it cannot be traced)."""
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception:
        return []
    modules = dict(model.named_modules())
    mapped = {name for name, _ in mapped_layers(model)}
    links = []
    for node in graph.nodes:
        if node.op != "call_module" or str(node.target) not in mapped:
            continue
        found = _next_mapped(node, modules, mapped)
        if found is not None:
            target, steps = found
            link = _link(modules[str(node.target)], modules[target], (str(node.target), target), steps)
            if link is not None:
                links.append(link)
    return links


def live_channels(source: Tensor, target: Tensor, rows_per_channel: int) -> Tensor:
    """bool (channels,): linked channels with a non-zero column in ``source`` AND a non-zero row in
    their block of ``target`` (crossbar matrices (1, rows, cols)); the others are dead."""
    live_out = source[0].ne(0).any(dim=0)
    live_in = target[0].ne(0).reshape(-1, rows_per_channel * target.shape[-1]).any(dim=1)
    return live_out & live_in


def removed_channels(ints: dict[str, Tensor], links: list[ChannelLink]) -> dict[str, Tensor]:
    """Integer matrices ``{name: (1, rows, cols)}`` with every linked channel that is dead on either side
    zeroed on both: the source's column and the target's row block (links taken in order).

    Layers without a link are returned unchanged (the same tensors).
    """
    out = dict(ints)
    for link in links:
        source, target = out[link.source], out[link.target]
        live = live_channels(source, target, link.rows_per_channel)
        out[link.source] = source * live.to(source.dtype)
        out[link.target] = target * live.repeat_interleave(link.rows_per_channel).to(target.dtype).unsqueeze(
            -1
        )
    return out


def _tensor(module: nn.Module, name: str) -> Tensor:
    """``module``'s weight or bias (a module without a bias has a zero one for this purpose)."""
    value = getattr(module, name)
    if isinstance(value, Tensor):
        return value
    weight = module.weight
    assert isinstance(weight, Tensor)
    return torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)


def channel_constant(model: nn.Module, link: ChannelLink) -> Tensor:
    """(channels,): what each output channel of ``link.source`` becomes at the target's input when its
    filter is all zero: its bias through the BatchNorm (running statistics) and ReLU steps; pools,
    dropout (evaluation) and flatten keep a constant."""
    value = _tensor(model.get_submodule(link.source), "bias").detach().clone()
    for step in link.steps:
        module = None if step == RELU_STEP else model.get_submodule(step)
        if module is None or isinstance(module, nn.ReLU | nn.ReLU6):
            value = module(value) if module is not None else torch.relu(value)
        elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            assert module.running_mean is not None and module.running_var is not None
            value = (value - module.running_mean) / torch.sqrt(module.running_var + module.eps)
            if module.affine:
                value = value * module.weight + module.bias
    return value


@torch.no_grad()
def fold_dead_channels(model: nn.Module, links: list[ChannelLink]) -> None:
    """Remove every dead linked channel from ``model`` (in place) without changing what it computes
    in evaluation mode: a pruned filter's constant output (:func:`channel_constant`) times its rows of
    the target is added to the target's bias and those rows are zeroed; a filter whose rows of the
    target are all zero is zeroed. The zero pattern is the one :func:`removed_channels` gives."""
    for link in links:
        source, target = model.get_submodule(link.source), model.get_submodule(link.target)
        source_weight, target_weight = _tensor(source, "weight"), _tensor(target, "weight")
        k = link.rows_per_channel
        target_matrix = weight_to_matrix(target_weight)
        live = live_channels(weight_to_matrix(source_weight), target_matrix, k)
        dead_rows = (~live).repeat_interleave(k)
        constant = channel_constant(model, link).to(target_matrix).repeat_interleave(k)
        _tensor(target, "bias").add_((constant * dead_rows) @ target_matrix[0])
        source_weight[~live] = 0
        target_weight[:, ~live if target_weight.dim() == 4 else dead_rows] = 0


def propagate_pruning(model: nn.Module, layers: list[IntegerLayer]) -> list[IntegerLayer]:
    """Fold and remove every dead linked channel of a baked ``model`` (:func:`fold_dead_channels`, in
    place) and return its integer layers with the same channels zeroed (:func:`removed_channels`)."""
    links = channel_links(model)
    fold_dead_channels(model, links)
    ints = removed_channels({layer.name: layer.weight_int for layer in layers}, links)
    return [replace(layer, weight_int=ints[layer.name]) for layer in layers]
