"""Fold inference BatchNorm into the crossbar layer before it: :func:`fold_batchnorm`.

Simulated as they are (:mod:`forms.sim.simnet`), a model's BatchNorm layers stay digital float stages
after the crossbar layers. A chip without a BatchNorm unit computes them in the layer itself: in eval
mode ``bn(conv(x)) = f * (conv(x) - mean) + beta`` with ``f = gamma / sqrt(var + eps)`` per output
channel, so the conv's integer weights keep their magnitudes (each output channel's column changes
sign where ``f < 0``, which keeps every fragment of R rows one sign), its per-channel scale becomes
``scale * |f|`` and its bias ``f * (bias - mean) + beta``. Exact up to float rounding.

A BatchNorm2d is folded when :mod:`torch.fx` finds that its only input is a Conv2d's output that
nothing else reads, and each module is called once; every other BatchNorm is left as it is.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence

import torch
from torch import Tensor, fx, nn

from forms.errors import ConfigError
from forms.intweights import IntegerLayer, check_layers_fit


def foldable_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv name, BatchNorm name) of every BatchNorm2d of ``model`` that only normalizes one Conv2d's output.

    Raises :class:`ConfigError` when :func:`torch.fx.symbolic_trace` cannot trace the model.
    """
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as exc:  # fx raises many types for untraceable Python
        raise ConfigError(
            f"model: torch.fx cannot trace {type(model).__name__} to find its Conv2d -> BatchNorm2d pairs "
            f"({type(exc).__name__}: {exc}); fold them by hand or keep BatchNorm digital"
        ) from None
    modules = dict(model.named_modules())
    calls = Counter(str(node.target) for node in graph.nodes if node.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[str(node.target)], nn.BatchNorm2d):
            continue
        source = node.args[0]
        if not isinstance(source, fx.Node) or source.op != "call_module" or len(source.users) != 1:
            continue
        conv, bn = str(source.target), str(node.target)
        if isinstance(modules[conv], nn.Conv2d) and calls[conv] == 1 and calls[bn] == 1:
            pairs.append((conv, bn))
    return pairs


def _channel_factor(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """(f, shift) of ``bn`` in eval mode: ``bn(y) = f * y + shift`` per channel."""
    if bn.running_mean is None or bn.running_var is None:
        raise ConfigError("model: a BatchNorm2d without running statistics cannot be folded")
    f = torch.rsqrt(bn.running_var.double() + bn.eps)
    shift = -bn.running_mean.double() * f
    if bn.affine:
        f, shift = f * bn.weight.double(), shift * bn.weight.double() + bn.bias.double()
    return f, shift


@torch.no_grad()
def _fold_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d, layer: IntegerLayer) -> IntegerLayer:
    """Fold ``bn`` into ``conv`` (weight and bias, in place) and return ``conv``'s new integer layer."""
    f, shift = _channel_factor(bn)
    groups, _, cols = layer.weight_int.shape
    per_column = f.reshape(groups, 1, cols)
    sign = torch.where(per_column < 0, -1, 1)
    magnitude = per_column.abs()
    folded = IntegerLayer(
        name=layer.name,
        weight_int=layer.weight_int * sign * (magnitude > 0),
        scale=(layer.column_scale.double() * torch.where(magnitude > 0, magnitude, 1.0))
        .reshape(groups, cols)
        .float(),
        weight_shape=layer.weight_shape,
        weight_bits=layer.weight_bits,
        fragment_size=layer.fragment_size,
    )
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(f)
    new_bias = (f * bias + shift).to(conv.weight)
    conv.weight.copy_(folded.dequantized_weight().to(conv.weight))
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)
    return folded


def fold_batchnorm(model: nn.Module, layers: Sequence[IntegerLayer]) -> tuple[nn.Module, list[IntegerLayer]]:
    """A copy of ``model`` with each Conv2d -> BatchNorm2d pair folded into the conv, and its integer layers.

    ``layers`` are ``model``'s integer weights (from :func:`forms.project` or :func:`forms.compress`);
    folded convolutions get a per-channel scale, the same integer magnitudes and a bias, their
    BatchNorm becomes ``nn.Identity``. In eval mode the copy computes what ``model`` does (up to float
    rounding); the folding uses the running statistics, so train the copy no further.

    >>> import torch, forms
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    >>> layers = forms.project(net, forms.CompressSpec.model_validate({"crossbar": {"fragment_size": 4}}))
    >>> folded, folded_layers = forms.fold_batchnorm(net, layers)
    >>> type(folded[1]).__name__, folded_layers[0].mixed_sign_fragments()
    ('Identity', 0)
    >>> x = torch.randn(2, 1, 6, 6)
    >>> bool(torch.allclose(folded(x), net(x), atol=1e-5))
    True
    """
    check_layers_fit(list(layers), model, "model")
    copied = copy.deepcopy(model)
    by_name = {layer.name: layer for layer in layers}
    for conv_name, bn_name in foldable_pairs(copied):
        if conv_name not in by_name:
            continue
        conv, bn = copied.get_submodule(conv_name), copied.get_submodule(bn_name)
        assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
        by_name[conv_name] = _fold_pair(conv, bn, by_name[conv_name])
        parent, _, attribute = bn_name.rpartition(".")
        setattr(copied.get_submodule(parent), attribute, nn.Identity())
    return copied, [by_name[layer.name] for layer in layers]
