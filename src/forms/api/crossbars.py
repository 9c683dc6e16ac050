"""Run any model on simulated crossbars in memory: :func:`to_crossbars` and back with :func:`to_digital`.

The model must already hold the integer weights it is given (``scale * weight_int`` in every Conv2d and
Linear, e.g. from :func:`forms.api.project` or a compressed checkpoint). :func:`to_crossbars` calibrates
one input scale per layer on a few images (:func:`forms.sim.quant_inputs.calibrate_inputs`), swaps every
mapped layer of a copy for a :class:`~forms.sim.simnet.SimulatedLayer`
(:func:`~forms.sim.simnet.build_simulated_model`) and programs chip ``sim_spec.seed``, exactly as chip 0
of ``forms simulate``. The user's model is not touched.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from forms.cost.activity import Activity, activity_from_metrics
from forms.intweights import IntegerLayer, check_layers_fit
from forms.sim.result import LayerZeroSkip
from forms.sim.runs import ChipLayer
from forms.sim.simnet import (
    Mode,
    program_chip,
    reset_stats,
    set_mode,
    simulated_layers,
)
from forms.sim.simulate import simulated_model
from forms.sim.spec import SimSpec

Calibration = Tensor | Iterable[Any]
"""Calibration images: one tensor of images, or an iterable of batches (tensors, or (images, labels))."""


@dataclass(frozen=True)
class CrossbarStats:
    """What every simulated layer counted since its chip was programmed or its counters were reset."""

    layers: dict[str, ChipLayer]
    """Per layer, in module order: setup, conversions, clipped conversions and zero-skip counts."""

    @property
    def conversions(self) -> int:
        """ADC conversions of all layers (no skipping)."""
        return sum(layer.conversions for layer in self.layers.values())

    @property
    def clipped(self) -> int:
        """Conversions whose code exceeded the ADC's largest code, all layers."""
        return sum(layer.clipped for layer in self.layers.values())

    @property
    def clip_rate(self) -> float:
        """Fraction of conversions that clipped (0 before any conversion)."""
        return self.clipped / self.conversions if self.conversions else 0.0

    @property
    def zero_skip(self) -> dict[str, LayerZeroSkip]:
        """Per-layer conversions with and without input zero-skipping."""
        return {name: layer.zero_skip for name, layer in self.layers.items()}

    def activity(self, rule: str = "leading") -> Activity:
        """The measured skip fractions under zero-skip ``rule`` (``leading`` or ``bitplane``), for
        :func:`forms.api.estimate`."""
        counts = {name: skip.to_dict() for name, skip in self.zero_skip.items()}
        return activity_from_metrics({"zero_skip": counts}, rule, "to_crossbars stats")


class CrossbarModel(nn.Module):
    """A model whose Conv2d and Linear layers run on simulated crossbars; call it like the original.

    ``simulated`` is the converted copy; the digital model it came from is kept (unregistered) for
    :func:`to_digital`.
    """

    def __init__(self, simulated: nn.Module, digital: nn.Module) -> None:
        super().__init__()
        self.simulated = simulated
        self._digital = (digital,)  # a tuple: not a submodule, so not in state_dict() or .to()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The simulated model's forward."""
        return self.simulated(*args, **kwargs)

    def stats(self) -> CrossbarStats:
        """Conversions, clips and zero-skip counts of every layer since the last program or reset."""
        return CrossbarStats({layer.name: ChipLayer.measure(layer) for layer in simulated_layers(self)})

    def reset_stats(self) -> None:
        """Zero every layer's counters."""
        reset_stats(self)

    def program(self, seed: int) -> None:
        """Program a fresh chip (device faults and variation drawn from ``seed``); counters restart."""
        program_chip(self, seed)
        reset_stats(self)

    def set_mode(self, mode: Mode) -> None:
        """``simulate`` (crossbars, ADC, devices) or ``reference`` (the same integers, exact matmuls)."""
        set_mode(self, mode)


def _device(model: nn.Module) -> torch.device:
    """Where ``model``'s first parameter or buffer lives (CPU for a model without any)."""
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def calibration_batches(calibration: Calibration, spec: SimSpec, device: torch.device) -> list[Tensor]:
    """The first ``spec.calibration_images`` images of ``calibration``, in batches of ``spec.batch_size``
    (a tensor) or as the iterable batches them, on ``device``."""
    if isinstance(calibration, Tensor):
        images = calibration[: spec.calibration_images]
        return [
            images[s : s + spec.batch_size].to(device) for s in range(0, images.shape[0], spec.batch_size)
        ]
    batches, left = [], spec.calibration_images
    for batch in calibration:
        images = batch[0] if isinstance(batch, list | tuple) else batch
        batches.append(images[:left].to(device))
        left -= batches[-1].shape[0]
        if left <= 0:
            break
    return batches


def to_crossbars(
    model: nn.Module,
    sim_spec: SimSpec | None = None,
    *,
    calibration: Calibration,
    layers: Sequence[IntegerLayer],
) -> CrossbarModel:
    """A copy of ``model`` in which every Conv2d and Linear runs on simulated crossbars.

    ``layers`` are the model's integer weights (one per mapped layer), ``calibration`` a few images that
    set each layer's input scale, ``sim_spec`` the encoding, converters and devices (default:
    ``SimSpec()``, FORMS' polarized encoding with lossless ADCs). The copy sits on ``model``'s device.
    Raises :class:`~forms.errors.UnsupportedLayerError` naming a layer the mapping cannot place and
    :class:`~forms.errors.CheckpointError` when ``layers`` do not fit the model.

    >>> import torch, forms
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    >>> layers = forms.project(net, forms.CompressSpec.model_validate({"crossbar": {"fragment_size": 4}}))
    >>> x = torch.randn(32, 16)
    >>> chip = forms.to_crossbars(net, calibration=x, layers=layers)
    >>> bool(torch.allclose(chip(x), net(x), atol=1e-3))
    True
    >>> chip.stats().clipped
    0
    """
    spec = sim_spec if sim_spec is not None else SimSpec.model_validate({})
    check_layers_fit(list(layers), model, "model")
    device = _device(model)
    batches = calibration_batches(calibration, spec, device)
    simulated = simulated_model(spec, model, list(layers), batches, device)
    chip = CrossbarModel(simulated, copy.deepcopy(model))
    chip.program(spec.seed)
    return chip


def to_digital(model: CrossbarModel) -> nn.Module:
    """The digital model ``model`` was made from (a fresh copy, on the device ``model`` sits on).

    >>> import torch, forms
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(16, 4))
    >>> layers = forms.project(net, forms.CompressSpec.model_validate({"crossbar": {"fragment_size": 4}}))
    >>> digital = forms.to_digital(forms.to_crossbars(net, calibration=torch.randn(8, 16), layers=layers))
    >>> x = torch.randn(2, 16)
    >>> bool(torch.equal(digital(x), net(x)))
    True
    """
    return copy.deepcopy(model._digital[0]).to(_device(model))
