"""Per-layer workload shapes of a model on one input: output positions, activations, pooling.

Computed once per (model, input shape) by a forward pass on *meta* tensors (shape arithmetic only,
no real convolution, the model's own parameters untouched) and reused across design points. For a
zoo model on a common input the shapes come from a packaged table of exactly those forward passes
(:mod:`forms.cost.zoo_shape_table`), so that ``forms estimate`` needs neither the model nor torch.
Crossbar geometry comes from :func:`forms.geometry.model_geometry`; compressed checkpoints shrink
each layer to its rows and columns that are not all zero (:func:`apply_sparsity`), except that a
polarized (FORMS) design keeps every fragment holding a non-zero weight whole
(:mod:`forms.cost.fragment_use`; :meth:`LayerShape.stored` gives each design's rows).

torch is imported inside the functions that need a model: importing this module stays light.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from forms.cost.fragment_use import COUNTED_FRAGMENT_SIZES, FragmentUse, StoredLayer, fragment_uses
from forms.encoding import Encoding
from forms.errors import ConfigError
from forms.geometry_shapes import LayerGeometry

if TYPE_CHECKING:
    from torch import nn

    from forms.intweights import IntegerLayer


@dataclass(frozen=True)
class LayerShape:
    """One mapped layer's workload for one image."""

    geometry: LayerGeometry
    positions: int
    """Output positions per image: H_out x W_out of a conv, leading dims of a Linear (1 for (N, F))."""
    in_activations: int
    """Input elements per image."""
    out_activations: int
    """Output elements per image."""
    rows_used: int
    """Crossbar rows that hold a non-zero weight in some group (= geometry.rows when dense): the rows
    an offset or differential design keeps; a polarized one keeps whole fragments (:meth:`stored`)."""
    cols_used: int
    """Crossbar columns that hold a non-zero weight in some group (= geometry.cols when dense), the
    columns every design keeps (a fragment lies in one column)."""
    fragment_use: tuple[FragmentUse, ...] = ()
    """What a polarized design keeps at each counted fragment size R, from the integer weights
    (:func:`apply_sparsity`); empty for shapes without integer weights (dense: every row kept)."""

    @property
    def name(self) -> str:
        """The layer's qualified module name."""
        return self.geometry.name

    @property
    def dense_macs(self) -> int:
        """MACs per image of the dense layer."""
        g = self.geometry
        return g.groups * g.rows * g.cols * self.positions

    @property
    def mapped_macs(self) -> int:
        """MACs per image of the compacted layer (its non-zero rows and columns), whichever rows a
        design keeps: the pruned network's work."""
        return self.geometry.groups * self.rows_used * self.cols_used * self.positions

    def stored(self, encoding: Encoding, fragment_size: int) -> StoredLayer:
        """How a design of ``encoding`` with fragments of ``fragment_size`` rows stores this layer.

        Offset and differential designs keep :attr:`rows_used`. A polarized design keeps whole
        fragments (:attr:`fragment_use` at ``fragment_size``), or, when a fragment holds both signs,
        stores the layer as the weights allow: on two single-signed sets at :attr:`rows_used`
        (:mod:`forms.cost.fragment_use`). ConfigError for a compacted layer whose fragments were not
        counted at ``fragment_size``.
        """
        if not encoding.signs_per_fragment:
            return StoredLayer(self.rows_used, encoding, mixed=False)
        use = next((u for u in self.fragment_use if u.fragment_size == fragment_size), None)
        if use is None and self.rows_used == self.geometry.rows and not self.fragment_use:
            return StoredLayer(self.rows_used, encoding, mixed=False)
        if use is None:
            counted = ", ".join(str(u.fragment_size) for u in self.fragment_use) or "none"
            raise ConfigError(
                f"layer {self.name} of a compressed checkpoint had its fragments counted at R = {counted}, "
                f"not at R={fragment_size}, so a polarized design of R={fragment_size} cannot be costed "
                "on it; build the workload with zoo_workload(..., fragment_sizes=["
                f"{fragment_size}]) (the CLI counts every --arch's R), or cost a design at a counted R"
            )
        if use.mixed:
            return StoredLayer(self.rows_used, Encoding.DIFFERENTIAL, mixed=True)
        return StoredLayer(use.rows_used, encoding, mixed=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        d = asdict(self)
        d["geometry"]["weight_shape"] = list(self.geometry.weight_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerShape:
        """Inverse of :meth:`to_dict` (a record without ``fragment_use`` reads as dense shapes do)."""
        geometry = LayerGeometry(**{**d["geometry"], "weight_shape": tuple(d["geometry"]["weight_shape"])})
        uses = tuple(
            FragmentUse(int(u["fragment_size"]), int(u["rows_used"]), bool(u["mixed"]))
            for u in d.get("fragment_use", ())
        )
        counts = {k: int(v) for k, v in d.items() if k not in ("geometry", "fragment_use")}
        return cls(geometry, **counts, fragment_use=uses)


@dataclass(frozen=True)
class ModelShapes:
    """Workload of a whole model on one input shape."""

    input_shape: tuple[int, ...]
    layers: tuple[LayerShape, ...]
    pool_comparisons: int
    """Max/avg-pool window inputs per image (charged to the tile's max-pool unit)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return {
            "input_shape": list(self.input_shape),
            "layers": [layer.to_dict() for layer in self.layers],
            "pool_comparisons": self.pool_comparisons,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelShapes:
        """Inverse of :meth:`to_dict`."""
        layers = tuple(LayerShape.from_dict(layer) for layer in d["layers"])
        return cls(tuple(int(x) for x in d["input_shape"]), layers, int(d["pool_comparisons"]))


@dataclass(frozen=True)
class Workload:
    """A network to cost: its layer shapes, the name estimates report, and notes on how it was obtained."""

    shapes: ModelShapes
    name: str = ""
    """Model name an estimate reports."""
    notes: tuple[str, ...] = ()
    """Assumptions behind the shapes (dense zoo weights, a compressed checkpoint...) for the estimate."""


def parse_input_shape(text: str) -> tuple[int, ...]:
    """Parse '3,224,224' into (3, 224, 224); ConfigError on anything else."""
    try:
        dims = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise ConfigError(f"input shape '{text}' must be comma-separated integers, e.g. 3,224,224") from None
    if not dims or any(d < 1 for d in dims):
        raise ConfigError(f"input shape '{text}' must hold positive integers, e.g. 3,224,224")
    return dims


def _kernel_area(module: nn.Module) -> int:
    """Window size of a pooling module (kernel_size squared when given as one int)."""
    k = getattr(module, "kernel_size", 1)
    return int(math.prod(k)) if isinstance(k, tuple) else int(k) ** 2


def layer_shapes(model: nn.Module, input_shape: Sequence[int]) -> ModelShapes:
    """Shapes of every mapped layer of ``model`` for one image of ``input_shape`` (no batch dim).

    Runs ``model`` once in eval mode on meta tensors via :func:`torch.func.functional_call`, so it
    costs shape arithmetic only and leaves the model (weights, buffers, BatchNorm statistics, each
    module's training flag) untouched.
    A module called several times accumulates its positions.
    """
    import torch
    from torch import Tensor, nn

    from forms.geometry import mapped_layers, model_geometry

    geoms = {g.name: g for g in model_geometry(model)}
    mapped = dict(mapped_layers(model))
    positions = dict.fromkeys(geoms, 0)
    in_act = dict.fromkeys(geoms, 0)
    out_act = dict.fromkeys(geoms, 0)
    pool = [0]
    handles = []

    def mapped_hook(name: str):
        def hook(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
            positions[name] += (
                int(out.shape[-2] * out.shape[-1])
                if isinstance(module, nn.Conv2d)
                else out.numel() // out.shape[-1]
            )
            in_act[name] += args[0].numel()
            out_act[name] += out.numel()

        return hook

    def pool_hook(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        pool[0] += out.numel() * _kernel_area(module)

    for name, module in mapped.items():
        handles.append(module.register_forward_hook(mapped_hook(name)))
    for module in model.modules():
        if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
            handles.append(module.register_forward_hook(pool_hook))
    state = {k: torch.empty_like(v, device="meta") for k, v in model.state_dict(keep_vars=True).items()}
    x = torch.empty((1, *input_shape), device="meta")
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()  # inference shapes; a training-mode BatchNorm refuses a 1x1 map of a single image
        with torch.no_grad():
            torch.func.functional_call(model, state, (x,))
    except RuntimeError as exc:
        raise ConfigError(
            f"input shape {tuple(input_shape)} does not fit model {type(model).__name__}: {exc}; "
            "give --input-shape as C,H,W matching the model"
        ) from None
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    missing = [n for n, p in positions.items() if p == 0]
    if missing:
        raise ConfigError(f"layers {missing} were never called in a forward pass; they cannot be costed")
    layers = tuple(
        LayerShape(g, positions[n], in_act[n], out_act[n], g.rows, g.cols) for n, g in geoms.items()
    )
    return ModelShapes(tuple(int(d) for d in input_shape), layers, pool[0])


def apply_sparsity(
    shapes: ModelShapes,
    integer_layers: Sequence[IntegerLayer],
    fragment_sizes: Iterable[int] = COUNTED_FRAGMENT_SIZES,
) -> tuple[ModelShapes, list[str]]:
    """Shrink each layer to its rows and columns holding a non-zero integer weight (structured pruning).

    Returns the new shapes and notes (layers without integer weights stay dense). A row (column) is
    compacted away only when it is zero in every group, so every group keeps the same geometry. These
    are the rows of offset and differential designs; each layer also records, at every R of
    ``fragment_sizes``, the whole fragments a polarized design keeps and whether a fragment mixes signs
    (:attr:`LayerShape.fragment_use`), so each design is costed on the rows it can drop.
    """
    sizes = tuple(fragment_sizes)
    by_name = {layer.name: layer for layer in integer_layers}
    notes: list[str] = []
    out = []
    for layer in shapes.layers:
        il = by_name.get(layer.name)
        if il is None:
            notes.append(f"{layer.name}: no integer weights in the checkpoint, costed dense")
            out.append(layer)
            continue
        g = layer.geometry
        if tuple(il.weight_int.shape) != (g.groups, g.rows, g.cols):
            raise ConfigError(
                f"checkpoint layer {layer.name} has integer matrices {tuple(il.weight_int.shape)} but the "
                f"model "
                f"has {(g.groups, g.rows, g.cols)}; use the checkpoint of this model"
            )
        nz = il.weight_int != 0
        rows_used = int(nz.any(dim=2).any(dim=0).sum())
        cols_used = int(nz.any(dim=1).any(dim=0).sum())
        uses = fragment_uses(il.weight_int, sizes)
        out.append(replace(layer, rows_used=rows_used, cols_used=cols_used, fragment_use=uses))
    return ModelShapes(shapes.input_shape, tuple(out), shapes.pool_comparisons), notes


def default_input_shape(model_name: str) -> tuple[int, ...]:
    """Input shape assumed for a zoo model without one: ImageNet 3x224x224, MNIST 1x28x28, else CIFAR."""
    if model_name.endswith("-imagenet") or model_name == "resnet50":
        return (3, 224, 224)
    if model_name in ("lenet5", "mlp"):
        return (1, 28, 28)
    return (3, 32, 32)


def default_num_classes(input_shape: Sequence[int]) -> int:
    """Classes assumed for a model without a count: 1000 (ImageNet) for 224-pixel inputs, else 10."""
    return 1000 if input_shape[1] >= 224 else 10


def built_model_shapes(model_name: str, input_shape: Sequence[int], num_classes: int) -> ModelShapes:
    """Shapes of model ``model_name`` (zoo name or import path), built on the meta device and run once.

    :func:`forms.nn.user_model.make_model` builds it for ``input_shape`` (C, H, W) and ``num_classes``
    (ConfigError for an unknown name or an input the model does not accept); no weight is allocated.
    """
    import torch

    from forms.nn.user_model import make_model

    c, h = input_shape[0], input_shape[1]
    with torch.device("meta"):  # shapes only: no weights allocated, whatever the input size
        model = make_model(model_name, in_channels=c, num_classes=num_classes, image_size=h)
    return layer_shapes(model, input_shape)


def model_shapes(model_name: str, input_shape: Sequence[int], num_classes: int) -> ModelShapes:
    """:func:`built_model_shapes`, read from the packaged zoo table when it holds them for the zoo in use.

    The table (:mod:`forms.cost.zoo_shape_table`) answers only for a zoo model, input shape and class
    count it was computed for, and only while the zoo's source is the one it was computed from.
    """
    from forms.cost.zoo_shape_table import table_shapes

    shapes = table_shapes(model_name, input_shape, num_classes)
    return shapes if shapes is not None else built_model_shapes(model_name, input_shape, num_classes)


def _checkpoint_workload(
    model_name: str | None, input_shape: Sequence[int] | None, checkpoint: str, fragment_sizes: Iterable[int]
) -> Workload:
    """The compacted workload of a compressed checkpoint's model (see :func:`zoo_workload`)."""
    from forms.intweights import integer_layers_from_checkpoint
    from forms.nn.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(checkpoint)
    name = str(ckpt.get("model", {}).get("name", model_name or "model"))
    if model_name and model_name != name:
        raise ConfigError(
            f"checkpoint {checkpoint} holds model '{name}', not '{model_name}'; drop --model or match it"
        )
    kwargs = ckpt.get("model", {}).get("kwargs", {})
    shape = (
        tuple(input_shape)
        if input_shape
        else (int(kwargs["in_channels"]), *(2 * [int(kwargs["image_size"])]))
    )
    model = model_from_checkpoint(ckpt, source=checkpoint)
    shapes, sparse_notes = apply_sparsity(
        layer_shapes(model, shape),
        integer_layers_from_checkpoint(ckpt, source=checkpoint),
        sorted({*COUNTED_FRAGMENT_SIZES, *fragment_sizes}),
    )
    notes = [
        f"weights from compressed checkpoint {checkpoint}: all-zero rows/columns compacted away "
        "(a polarized design keeps every fragment holding a non-zero weight whole)"
    ]
    return Workload(shapes, name, (*notes, *sparse_notes))


def zoo_workload(
    model_name: str | None,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    checkpoint: str | None = None,
    fragment_sizes: Iterable[int] = (),
) -> Workload:
    """Shapes of a zoo model (or of a compressed checkpoint's model, compacted), its name, and notes.

    With ``checkpoint`` the model is rebuilt from the checkpoint's own record and its all-zero rows
    and columns are compacted away (:func:`apply_sparsity`, the polarized rows counted at
    :data:`~forms.cost.fragment_use.COUNTED_FRAGMENT_SIZES` and at ``fragment_sizes``, the R of the
    designs to be costed); otherwise :func:`model_shapes` gives the
    shapes of ``model_name`` (zoo name or import path) for ``input_shape`` (default
    :func:`default_input_shape`) and ``num_classes`` (default :func:`default_num_classes`).
    """
    if checkpoint is not None:
        return _checkpoint_workload(model_name, input_shape, checkpoint, fragment_sizes)
    if not model_name:
        raise ConfigError(
            "give --model <zoo name or package.module:factory> or --checkpoint <compressed checkpoint>"
        )
    shape = tuple(input_shape) if input_shape else default_input_shape(model_name)
    if len(shape) != 3:
        raise ConfigError(f"input shape must be C,H,W, got {','.join(map(str, shape))}")
    classes = num_classes if num_classes is not None else default_num_classes(shape)
    note = f"model {model_name} ({classes} classes) on input {'x'.join(map(str, shape))}, dense weights"
    return Workload(model_shapes(model_name, shape, classes), model_name, (note,))
