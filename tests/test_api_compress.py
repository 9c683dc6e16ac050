"""``forms.compress`` (the ADMM pipeline on a user's model and loaders, in memory) and BatchNorm folding."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import forms
from _simhelpers import Block
from compress_helpers import make_float_checkpoint, tiny_spec
from forms.api.compression import LoaderEpochs
from forms.compress.pipeline import compress as compress_checkpoint
from forms.compress.pipeline import load_data
from forms.errors import ConfigError, UnsupportedLayerError
from forms.nn.checkpoint import load_checkpoint, model_from_checkpoint

IMAGES = torch.randn(48, 1, 8, 8, generator=torch.Generator().manual_seed(1))
LABELS = torch.randint(0, 10, (48,), generator=torch.Generator().manual_seed(2))


def quick_spec(**sections: Any) -> forms.CompressSpec:
    """One ADMM round, one retraining epoch, 4-bit integers polarized in fragments of 4 rows, on the CPU."""
    data: dict[str, Any] = {
        "crossbar": {"rows": 32, "fragment_size": 4},
        "quant": {"weight_bits": 4},
        "schedule": {"admm_rounds": 1, "retrain_epochs": 1, "batch_size": 16, "bn_recalibration_batches": 2},
        "device": "cpu",
        **sections,
    }
    return forms.CompressSpec.model_validate(data)


def test_compress_in_memory_gives_feasible_polarized_layers() -> None:
    torch.manual_seed(0)
    net = Block()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    loader = DataLoader(TensorDataset(IMAGES, LABELS), batch_size=16, shuffle=True)
    done = forms.compress(net, loader, quick_spec(prune={"ratio": 0.25}), TensorDataset(IMAGES, LABELS))
    assert isinstance(done, forms.Compressed) and done.model is not net
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert [layer.name for layer in done.layers] == ["stem", "grouped", "down", "fc"]
    for layer in done.layers:
        assert layer.mixed_sign_fragments() == 0 and layer.fragment_size == 4
        assert int(layer.weight_int.abs().max()) <= 15
        assert torch.equal(done.model.get_submodule(layer.name).weight, layer.dequantized_weight())
    r = done.result
    assert r.fragments_mixed_sign == 0 < r.fragments_total and r.unpolarized_layers == []
    assert r.test_images == 48 and r.admm.rounds == 1 and r.retrain.epochs == 1
    assert r.sparsity >= 0.2 and all(0 <= a <= 1 for a in (r.accuracy_before, r.accuracy_after))
    assert (r.source_checkpoint, r.checkpoint, r.dataset) == ("", "", "val_loader")
    assert forms.check(done.layers, forms.CrossbarSpec(rows=32, fragment_size=4)).ok


def test_in_memory_equals_the_cli_path_for_the_same_seed_and_data(tmp_path: Path) -> None:
    """The checkpoint path is a wrapper over the in-memory core: same integers, same measurements."""
    ckpt, data_dir = make_float_checkpoint(tmp_path, epochs=1)
    spec = tiny_spec(data_dir, schedule={"distill_weight": 0.5}, prune={"ratio": 0.25})
    on_disk = compress_checkpoint(spec, ckpt, tmp_path / "out", progress=False)
    src = load_checkpoint(ckpt)
    data = load_data(src, spec)
    done = forms.compress(model_from_checkpoint(src), data.train, spec, data.test)
    saved = load_checkpoint(tmp_path / "out" / "checkpoint.pt")["integer_layers"]
    assert len(saved) == len(done.layers)
    for record, layer in zip(saved, done.layers, strict=True):
        assert torch.equal(record["weight_int"], layer.weight_int) and torch.equal(
            record["scale"], layer.scale
        )
    timing = ("seconds", "wstep_epoch_seconds")
    identity = ("model", "dataset", "source_checkpoint", "checkpoint")

    def measured(d: Any) -> Any:
        if isinstance(d, dict):
            return {k: measured(v) for k, v in d.items() if k not in timing + identity}
        return [measured(v) for v in d] if isinstance(d, list) else d

    assert measured(done.result.to_dict()) == measured(on_disk.to_dict())


def test_a_loaders_sampler_follows_the_epochs() -> None:
    """A DistributedSampler's epoch is set before every W-step and retraining epoch, so its order changes."""
    sampler = DistributedSampler(TensorDataset(IMAGES, LABELS), num_replicas=1, rank=0, seed=3)
    epochs = LoaderEpochs(DataLoader(TensorDataset(IMAGES, LABELS), batch_size=16, sampler=sampler))
    epochs.set_epoch(5)
    first = torch.cat([y for _, y in epochs])
    epochs.set_epoch(6)
    assert (
        sampler.epoch == 6 and len(epochs) == 3 and not torch.equal(first, torch.cat([y for _, y in epochs]))
    )


class Batches:
    """A sized iterable yielding bare image tensors, not (images, labels) pairs."""

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Any:
        yield IMAGES


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"model": "lenet5"}, "model: expected a torch.nn.Module"),
        ({"spec": {"crossbar": {}}}, "spec: expected a forms.CompressSpec"),
        ({"train_loader": object()}, "train_loader: a object is not a sized iterable"),
        (
            {"train_loader": DataLoader(TensorDataset(IMAGES[:0], LABELS[:0]))},
            "train_loader: it holds no batches",
        ),
        ({"train_loader": Batches()}, "train_loader: a batch is a Tensor"),
        (
            {"val_loader": DataLoader(TensorDataset(IMAGES[:0], LABELS[:0]))},
            "val_loader: it holds no batches",
        ),
        ({"spec": quick_spec(validation_images=8)}, "spec.validation_images: chooses the data"),
        ({"spec": quick_spec(train_subset=8)}, "spec.train_subset"),
    ],
)
def test_bad_arguments_are_named(arguments: dict[str, Any], message: str) -> None:
    call = {
        "model": Block(),
        "train_loader": TensorDataset(IMAGES, LABELS),
        "spec": quick_spec(),
        **arguments,
    }
    with pytest.raises(ConfigError, match=message):
        forms.compress(**call)


def test_unmappable_layers_are_named() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ConvTranspose2d(2, 2, 3))
    with pytest.raises(UnsupportedLayerError, match=r"'1' \(ConvTranspose2d\)"):
        forms.compress(net, TensorDataset(IMAGES, LABELS), quick_spec())


def test_forms_compress_is_callable_and_its_modules_import() -> None:
    """``forms.compress`` runs the in-memory compression and is the subpackage, in every import order."""
    orders = [
        "import sys, forms; f = forms.compress; assert 'torch' not in sys.modules; "
        "from forms.compress import spec as s",
        "import forms.compress.spec as s; import forms; f = forms.compress",
        "from forms import compress as f; import forms.compress.spec as s; import forms",
    ]
    check = (
        "; import sys; assert callable(f) and f is forms.compress is sys.modules['forms.compress']"
        "; assert s.CompressSpec is forms.CompressSpec"
    )
    for order in orders:
        subprocess.run([sys.executable, "-c", order + check], check=True, timeout=120)
    assert forms.compress.pipeline.compress is compress_checkpoint
    assert list(inspect.signature(forms.compress).parameters)[:4] == [
        "model",
        "train_loader",
        "spec",
        "val_loader",
    ]
    assert forms.compress.spec.CompressSpec is forms.CompressSpec
    with pytest.raises(ConfigError, match="model:"):
        forms.compress(None, [], quick_spec())


def bn_block(negative_gamma: bool) -> tuple[nn.Module, list[forms.intweights.IntegerLayer]]:
    """A projected :class:`Block` whose BatchNorm has running statistics and (some negative) gammas."""
    torch.manual_seed(0)
    net = Block().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
        net.bn.weight.uniform_(-1.5 if negative_gamma else 0.5, 1.5)
        net.bn.bias.uniform_(-0.3, 0.3)
    spec = forms.CompressSpec.model_validate(
        {"crossbar": {"rows": 32, "fragment_size": 4}, "quant": {"scale": "layer"}}
    )
    return net, forms.project(net, spec)


@pytest.mark.parametrize("negative_gamma", [False, True])
def test_folding_batchnorm_keeps_the_outputs_and_the_polarization(negative_gamma: bool) -> None:
    net, layers = bn_block(negative_gamma)
    folded, folded_layers = forms.fold_batchnorm(net, layers)
    assert isinstance(folded.bn, nn.Identity) and isinstance(net.bn, nn.BatchNorm2d)
    with torch.no_grad():
        torch.testing.assert_close(folded(IMAGES), net(IMAGES), atol=1e-5, rtol=1e-5)
    stem, folded_stem = layers[0], folded_layers[0]
    assert folded_stem.scale.shape == (1, 8) and folded_stem.mixed_sign_fragments() == 0
    assert torch.equal(folded_stem.weight_int.abs(), stem.weight_int.abs())
    assert torch.equal(folded.stem.weight, folded_stem.dequantized_weight())
    assert all(
        a is b for a, b in zip(folded_layers[1:], layers[1:], strict=True)
    )  # only the conv the BatchNorm normalizes changes
    chip = forms.to_crossbars(folded, calibration=IMAGES[:16], layers=folded_layers)
    with torch.no_grad():
        simulated = chip(IMAGES)
        chip.set_mode("reference")
        assert torch.equal(simulated, chip(IMAGES))


def test_only_a_batchnorm_that_reads_a_conv_alone_is_folded() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.bn(y) + y  # the conv's output is read twice: no folding

    net = Shared().eval()
    layers = forms.project(net, forms.CompressSpec.model_validate({"crossbar": {"fragment_size": 1}}))
    folded, folded_layers = forms.fold_batchnorm(net, layers)
    assert isinstance(folded.bn, nn.BatchNorm2d) and folded_layers[0] is layers[0]


def test_an_untraceable_model_is_named() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) if x.sum() > 0 else -self.conv(x)

    net = Branchy()
    layers = forms.project(net, forms.CompressSpec.model_validate({"crossbar": {"fragment_size": 1}}))
    with pytest.raises(ConfigError, match=r"model: torch\.fx cannot trace Branchy"):
        forms.fold_batchnorm(net, layers)
