"""Turn a PyTorch model plus its integer layers into a simulated network.

:func:`build_simulated_model` deep-copies the model and swaps every Conv2d/Linear for a
:class:`SimulatedLayer`: it quantizes the incoming activations to integer codes, lowers a convolution to
vectors with one strided copy of its padded input (stride, padding, dilation, groups; F.unfold's row
order), runs the codes through a
:class:`forms.sim.crossbar.CrossbarArray` (``mode="simulate"``) or a plain exact integer matmul
(``mode="reference"``), and dequantizes: ``y = sum * input_scale * weight_scale + bias``. Everything
else (BatchNorm, ReLU, pooling, residual adds) stays ordinary torch. The user's model is not touched.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from forms.errors import CheckpointError, ConfigError
from forms.geometry import mapped_layers
from forms.intweights import IntegerLayer
from forms.sim.adc import Adc
from forms.sim.boundary import check_finite, integer_codes
from forms.sim.crossbar import CrossbarArray
from forms.sim.encodings import encode
from forms.sim.integer_gemm import exact_matmul
from forms.sim.mapping import layer_crossbar
from forms.sim.quant_inputs import InputQuantizer, digit_plan
from forms.sim.spec import SimSpec

Mode = Literal["simulate", "reference"]


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class SimulatedLayer(nn.Module):
    """A Conv2d or Linear computed from integer codes on simulated crossbars (or exactly, as reference)."""

    bias: Tensor | None
    out_scale: Tensor
    weight_int: Tensor

    def __init__(
        self, module: nn.Module, layer: IntegerLayer, quantizer: InputQuantizer, spec: SimSpec
    ) -> None:
        super().__init__()
        if not isinstance(module, nn.Conv2d | nn.Linear):
            raise ConfigError(f"{layer.name}: expected nn.Conv2d or nn.Linear, got {type(module).__name__}")
        weight = module.weight
        if tuple(weight.shape) != tuple(layer.weight_shape):
            raise CheckpointError(
                f"{layer.name}: integer weights have shape {tuple(layer.weight_shape)} but the model layer "
                f"has {tuple(weight.shape)}; the checkpoint does not belong to this model"
            )
        self.name = layer.name
        self.is_conv = isinstance(module, nn.Conv2d)
        self.mode: Mode = "simulate"
        self.quantizer = quantizer
        if isinstance(module, nn.Conv2d):
            if module.padding_mode != "zeros":
                raise ConfigError(
                    f"{layer.name}: padding_mode '{module.padding_mode}' is not supported (use 'zeros')"
                )
            self.kernel = _pair(module.kernel_size)
            self.stride = _pair(module.stride)
            self.dilation = _pair(module.dilation)
            self.padding: tuple[int, int, int, int]
            if isinstance(module.padding, str):
                if module.padding == "valid":
                    self.padding = (0, 0, 0, 0)
                else:  # 'same': total dilation*(k-1), the extra one at the end (as PyTorch)
                    th, tw = (d * (k - 1) for d, k in zip(self.dilation, self.kernel, strict=True))
                    self.padding = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
            else:
                ph, pw = _pair(module.padding)
                self.padding = (pw, pw, ph, ph)
            self.out_channels = module.out_channels
        else:
            self.out_channels = module.out_features
        groups, rows, cols = layer.weight_int.shape
        self.groups, self.rows, self.cols = int(groups), int(rows), int(cols)
        bias = module.bias
        self.register_buffer("bias", bias.detach().clone() if bias is not None else None)
        out_scale = layer.column_scale.reshape(groups, cols).to(torch.float64) * quantizer.scale
        self.register_buffer("out_scale", out_scale)
        self.register_buffer("weight_int", layer.weight_int.to(torch.int64).clone())
        self.weight_max = int(self.weight_int.abs().max()) if self.weight_int.numel() else 0
        """Largest |weight| (the reference GEMM's dtype bound)."""
        xbar = layer_crossbar(layer, spec)
        r = xbar.fragment_size
        encoded = encode(
            layer.weight_int,
            spec.encoding,
            layer.weight_bits,
            spec.cell_bits,
            spec.rows,
            r,
            spec.flipped,
            name=layer.name,
            crossbar_cols=spec.cols,
        )
        bits = spec.adc_bits or spec.encoding.lossless_adc_bits(xbar, spec.dac_bits, spec.flipped)
        if quantizer.bits != spec.input_bits:
            raise ConfigError(
                f"{layer.name}: the input quantizer makes {quantizer.bits}-bit codes but the crossbars "
                f"stream input_bits={spec.input_bits}"
            )
        plan = digit_plan(spec.input_bits, spec.dac_bits, quantizer.signed)
        self.array = CrossbarArray(
            layer.weight_int,
            encoded,
            Adc(bits, spec.adc_step or 1.0),
            plan,
            r,
            devices=spec.devices,
            chunk_elements=spec.chunk_elements,
            force_bit_level=spec.bit_level,
        )

    def vectors(self, codes: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        """Input vectors (V, groups, rows) of integer ``codes`` and what :meth:`assemble` needs.

        The codes are checked once here, before a convolution copies each of them into kernel-area
        vectors: finite integers in the layer's input range (ConfigError otherwise); the vectors hold
        them as integers.
        """
        return self._lowered(integer_codes(codes, self.array.plan, f"{self.name}: input codes"))

    def _lowered(self, codes: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        """:meth:`vectors` of codes known to be integers in the input range, in their dtype."""
        if not self.is_conv:
            lead = tuple(codes.shape[:-1])
            return codes.reshape(-1, 1, codes.shape[-1]), lead
        if any(self.padding):
            codes = F.pad(codes, self.padding)
        codes = codes.contiguous()
        n, c, h, w = codes.shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        ho = (h - dh * (kh - 1) - 1) // sh + 1
        wo = (w - dw * (kw - 1) - 1) // sw + 1
        # A strided view (N, Ho, Wo, G, C/G, kh, kw) of the padded codes, copied once: rows ordered
        # (channel, kernel row, kernel column) as in the weight matrix (F.unfold's order).
        bn, bc, bh, bw = codes.stride()
        patches = codes.as_strided(
            (n, ho, wo, self.groups, c // self.groups, kh, kw),
            (bn, sh * bh, sw * bw, (c // self.groups) * bc, bc, dh * bh, dw * bw),
        )
        return patches.reshape(-1, self.groups, self.rows), (n, ho, wo)

    def assemble(self, y: Tensor, shape: tuple[int, ...]) -> Tensor:
        """Outputs (V, groups, cols) back to the layer's output layout."""
        if not self.is_conv:
            return y.reshape(*shape, self.out_channels)
        n, ho, wo = shape
        return y.reshape(n, ho * wo, self.out_channels).transpose(1, 2).reshape(n, self.out_channels, ho, wo)

    def forward(self, x: Tensor) -> Tensor:
        """Quantize, compute on crossbars (or exactly), dequantize, add the bias.

        Raises :class:`~forms.errors.ConfigError` when the activations entering the layer hold NaN or
        inf (no input code stands for them).
        """
        check_finite(x, f"{self.name}: the activations entering this layer")
        # finite inputs quantize to integers in the input range (rounded, clamped), so the arrays need
        # not check again each of the kernel-area times more codes of the vectors copied from them
        vec, shape = self._lowered(self.quantizer.codes(x))
        if self.mode == "reference":
            sums = exact_matmul(vec, self.weight_int, self.array.max_code, self.weight_max)
        else:
            sums = self.array(vec, checked=True)
        y = self.assemble((sums * self.out_scale).to(x.dtype), shape)
        if self.bias is not None:
            y = y + (self.bias.view(-1, 1, 1) if self.is_conv else self.bias)
        return y


def build_simulated_model(
    model: nn.Module,
    layers: list[IntegerLayer],
    quantizers: dict[str, InputQuantizer],
    spec: SimSpec,
) -> nn.Module:
    """A deep copy of ``model`` with every mapped layer replaced by a :class:`SimulatedLayer`.

    Raises :class:`UnsupportedLayerError` for a layer without crossbar mapping (named, with the supported
    list) and :class:`CheckpointError` when ``layers`` do not match the model's mapped layers.
    """
    sim = copy.deepcopy(model).eval()
    names = [name for name, _ in mapped_layers(sim)]
    by_name = {layer.name: layer for layer in layers}
    missing = [n for n in names if n not in by_name]
    extra = [n for n in by_name if n not in names]
    if missing or extra:
        raise CheckpointError(
            f"integer layers do not match the model: missing {missing or 'none'}, unknown {extra or 'none'}"
        )
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = sim.get_submodule(parent_name) if parent_name else sim
        module = sim.get_submodule(name)
        setattr(parent, child, SimulatedLayer(module, by_name[name], quantizers[name], spec))
    return sim


def simulated_layers(model: nn.Module) -> Iterator[SimulatedLayer]:
    """Every :class:`SimulatedLayer` of a simulated model, in module order."""
    for module in model.modules():
        if isinstance(module, SimulatedLayer):
            yield module


def set_mode(model: nn.Module, mode: Mode) -> None:
    """Run every simulated layer on crossbars (``simulate``) or as exact integer matmuls (``reference``)."""
    for layer in simulated_layers(model):
        layer.mode = mode


def program_chip(model: nn.Module, seed: int) -> None:
    """Program a fresh chip: each layer's faults/variation drawn from its own seed derived from ``seed``."""
    for index, layer in enumerate(simulated_layers(model)):
        layer.array.program(seed * 1_000_003 + index)


def reset_stats(model: nn.Module) -> None:
    """Zero every layer's conversion, clip and zero-skip counters."""
    for layer in simulated_layers(model):
        layer.array.reset_stats()
