"""One-shot compression in memory: project a model onto the FORMS constraints without training.

:func:`project` applies the hard projection that ends ADMM (:mod:`forms.compress.constraints`: prune,
polarize each fragment of R rows, quantize) to the model's current weights, in place, and returns the
integer layers. It is the quick way to put a trained model on crossbars; the ADMM pipeline
(``forms compress``) recovers the accuracy this loses.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from forms.compress.constraints import layer_constraints, model_matrices, project_all
from forms.compress.spec import CompressSpec
from forms.intweights import IntegerLayer


def project(model: nn.Module, spec: CompressSpec) -> list[IntegerLayer]:
    """Prune, polarize and quantize every Conv2d and Linear of ``model`` in place, as ``spec`` says.

    Each weight becomes ``scale * weight_int`` (exactly :meth:`IntegerLayer.dequantized_weight`); the
    returned integer layers are what :func:`forms.api.to_crossbars`, :func:`forms.api.export` and
    :func:`forms.api.estimate` take. Raises :class:`~forms.errors.UnsupportedLayerError` naming a layer
    the mapping cannot place.

    >>> import forms
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(16, 8))
    >>> spec = forms.CompressSpec.model_validate(
    ...     {"crossbar": {"fragment_size": 4}, "quant": {"weight_bits": 4}}
    ... )
    >>> (layer,) = forms.project(net, spec)
    >>> layer.mixed_sign_fragments(), int(layer.weight_int.abs().max()) <= 15
    (0, True)
    """
    constraints = layer_constraints(model, spec)
    projections = project_all(model_matrices(model, constraints), constraints, spec)
    layers = []
    with torch.no_grad():
        for c in constraints:
            p = projections[c.name]
            layer = IntegerLayer(
                name=c.name,
                weight_int=p.weight_int.cpu(),
                scale=p.scale.detach().cpu().clone(),
                weight_shape=tuple(c.weight_shape),
                weight_bits=c.weight_bits,
                fragment_size=c.integer_fragment_size,
            )
            weight = model.get_submodule(c.name).weight
            assert isinstance(weight, Tensor)
            weight.copy_(layer.dequantized_weight().to(weight))
            layers.append(layer)
    return layers
