"""The in-memory API re-exported from ``forms``: project, crossbars and back, estimate, export, check."""

from __future__ import annotations

import doctest
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import forms
from _simhelpers import Block
from forms.cost.arch import load_arch
from forms.errors import CheckpointError, UnsupportedLayerError
from forms.sim.simulate import simulate_model

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
IMAGES = torch.randn(24, 1, 8, 8, generator=torch.Generator().manual_seed(1))
LABELS = torch.randint(0, 10, (24,), generator=torch.Generator().manual_seed(2))


def compressed_block(prune: float = 0.0) -> tuple[nn.Module, list[forms.intweights.IntegerLayer]]:
    """A :class:`Block` projected to 6-bit integers polarized in fragments of 4 rows."""
    torch.manual_seed(0)
    net = Block().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.1, 0.1)
        net.bn.running_var.uniform_(0.5, 1.5)
    spec = forms.CompressSpec.model_validate(
        {
            "crossbar": {"rows": 32, "fragment_size": 4},
            "quant": {"weight_bits": 6},
            "prune": {"ratio": prune, "granularity": "filter"},
        }
    )
    return net, forms.project(net, spec)


def sim_spec(**fields: object) -> forms.SimSpec:
    """A small SimSpec: 32-row crossbars, 10-bit inputs, batches of 8."""
    return forms.SimSpec.model_validate({"rows": 32, "cols": 32, "input_bits": 10, "batch_size": 8, **fields})


def test_project_polarizes_and_quantizes_in_place() -> None:
    net, layers = compressed_block()
    assert [layer.name for layer in layers] == ["stem", "grouped", "down", "fc"]
    for layer in layers:
        assert layer.mixed_sign_fragments() == 0 and layer.fragment_size == 4
        assert int(layer.weight_int.abs().max()) <= 63
        assert torch.equal(net.get_submodule(layer.name).weight, layer.dequantized_weight())


@pytest.mark.parametrize("encoding", ["polarized", "offset", "differential"])
@pytest.mark.parametrize("bit_level", [False, True])
def test_lossless_crossbars_give_exactly_the_integer_models_outputs(encoding: str, bit_level: bool) -> None:
    net, layers = compressed_block()
    chip = forms.to_crossbars(
        net, sim_spec(encoding=encoding, bit_level=bit_level), calibration=IMAGES[:8], layers=layers
    )
    with torch.no_grad():
        simulated = chip(IMAGES)
        chip.set_mode("reference")
        integer = chip(IMAGES)
        digital = net(IMAGES)
    assert torch.equal(simulated, integer)
    torch.testing.assert_close(simulated, digital, atol=5e-2, rtol=0)


def test_to_digital_round_trips_and_the_users_model_is_untouched() -> None:
    net, layers = compressed_block()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    chip = forms.to_crossbars(net, sim_spec(adc_bits=3), calibration=IMAGES[:8], layers=layers)
    assert isinstance(chip, forms.CrossbarModel)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    digital = forms.to_digital(chip)
    assert digital is not net and type(digital) is Block
    with torch.no_grad():
        assert torch.equal(digital(IMAGES), net(IMAGES))


def test_the_crossbar_model_is_chip_zero_of_forms_simulate() -> None:
    net, layers = compressed_block()
    spec = sim_spec(adc_bits=3, devices={"variation": 0.1}, seed=3)
    result = simulate_model(spec, net, layers, IMAGES, LABELS, IMAGES[:8], device="cpu")
    chip = forms.to_crossbars(net, spec, calibration=IMAGES[:8], layers=layers)
    with torch.no_grad():
        predictions = torch.cat([chip(IMAGES[s : s + 8]).argmax(-1) for s in range(0, 24, 8)])
    assert float((predictions == LABELS).float().mean()) == result.runs.accuracy[0]
    stats = chip.stats()
    assert stats.clipped == sum(layer.clipped_all_runs for layer in result.layers.values()) > 0
    assert stats.zero_skip == result.zero_skip


def test_stats_count_clips_and_zero_skips_and_reset() -> None:
    net, layers = compressed_block()
    chip = forms.to_crossbars(net, sim_spec(adc_bits=2), calibration=IMAGES[:8], layers=layers)
    with torch.no_grad():
        chip(IMAGES)
    stats = chip.stats()
    assert list(stats.layers) == ["stem", "grouped", "down", "fc"]
    assert stats.conversions > 0 and 0 < stats.clip_rate <= 1
    for z in stats.layers.values():
        skip = z.zero_skip
        assert 0 <= skip.conversions_skipped_leading <= skip.conversions_skipped_bitplane
    fractions = stats.activity("bitplane").skip_fraction
    assert set(fractions) == set(stats.layers) and all(0 <= f <= 1 for f in fractions.values())
    chip.reset_stats()
    assert chip.stats().conversions == 0


def test_reprogramming_draws_a_seeded_chip() -> None:
    net, layers = compressed_block()
    chip = forms.to_crossbars(
        net, sim_spec(devices={"variation": 0.2}), calibration=IMAGES[:8], layers=layers
    )
    with torch.no_grad():
        first = chip(IMAGES)
        chip.program(7)
        other = chip(IMAGES)
        chip.program(0)
        again = chip(IMAGES)
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_calibration_from_a_loader_equals_calibration_from_a_tensor() -> None:
    net, layers = compressed_block()
    loader = DataLoader(TensorDataset(IMAGES, LABELS), batch_size=8)
    spec = sim_spec(adc_bits=3, calibration_images=16)
    from_tensor = forms.to_crossbars(net, spec, calibration=IMAGES, layers=layers)
    from_loader = forms.to_crossbars(net, spec, calibration=loader, layers=layers)
    with torch.no_grad():
        assert torch.equal(from_tensor(IMAGES), from_loader(IMAGES))


def test_unmappable_layers_and_foreign_integers_are_refused() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ConvTranspose2d(2, 2, 3))
    with pytest.raises(UnsupportedLayerError, match=r"'1' \(ConvTranspose2d\).*nn.Conv2d, nn.Linear"):
        forms.project(net, forms.CompressSpec())
    _, layers = compressed_block()
    with pytest.raises(UnsupportedLayerError, match=r"'1' \(ConvTranspose2d\)"):
        forms.to_crossbars(net, calibration=IMAGES, layers=[])
    other = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(CheckpointError, match="'stem' is not in the model"):
        forms.to_crossbars(other, calibration=torch.randn(2, 4), layers=layers)


def test_estimate_takes_a_preset_or_a_spec_and_measured_activity() -> None:
    net, layers = compressed_block(prune=0.5)
    by_name = forms.estimate(net, "forms-8", (1, 8, 8))
    by_spec = forms.estimate(net, load_arch("forms-8"), (1, 8, 8))
    assert isinstance(by_name, forms.cost.estimate.Estimate)
    assert by_name.to_dict() == by_spec.to_dict()
    compacted = forms.estimate(net, "forms-8", (1, 8, 8), layers=layers)
    assert compacted.executed_ops < by_name.executed_ops == by_name.dense_ops
    chip = forms.to_crossbars(net, sim_spec(), calibration=IMAGES[:8], layers=layers)
    with torch.no_grad():
        chip(IMAGES)
    measured = forms.estimate(net, "forms-8", (1, 8, 8), activity=chip.stats(), layers=layers)
    assert all("measured" in layer.skip_source for layer in measured.layers)


def test_export_and_check_in_memory_layers(tmp_path: Path) -> None:
    _, layers = compressed_block()
    crossbar = forms.CrossbarSpec(rows=32, fragment_size=4)
    path = forms.export(layers, tmp_path / "block.npz", crossbar)
    report = forms.check(path)
    assert report.ok and [layer["name"] for layer in report.layers] == ["stem", "grouped", "down", "fc"]
    in_memory = forms.check(layers, crossbar)
    assert in_memory.ok and in_memory.layers == report.layers
    wider = forms.check(layers, forms.CrossbarSpec(rows=32, fragment_size=8))
    assert not wider.ok and "neither the global R=8 nor 1" in wider.violations[0]


def test_import_forms_stays_light() -> None:
    code = "import sys, forms; print('torch' in sys.modules, 'forms.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    assert forms.to_crossbars is forms.api.to_crossbars and "estimate" in dir(forms)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        forms.nonexistent  # noqa: B018


@pytest.mark.parametrize("module", ["project", "crossbars", "cost", "files", "compression", "batchnorm"])
def test_docstring_examples_run(module: str) -> None:
    mod = __import__(f"forms.api.{module}", fromlist=["_"])
    failures, tried = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0


def test_example_encodings_under_a_narrow_adc(capsys: pytest.CaptureFixture[str]) -> None:
    main = runpy.run_path(str(EXAMPLES / "encodings_narrow_adc.py"))["main"]
    clip_rates = main(rows=128, images=8, adc_bits=5)
    assert clip_rates["polarized"] == 0 < clip_rates["differential"] < clip_rates["offset"]
    assert "lossless ADC" in capsys.readouterr().out


def test_example_own_cnn(capsys: pytest.CaptureFixture[str]) -> None:
    main = runpy.run_path(str(EXAMPLES / "own_cnn.py"))["main"]
    stats = main(images=64, epochs=1)
    assert stats.conversions > 0
    out = capsys.readouterr().out
    assert "compressed; 0 of" in out and "fragments hold both signs" in out and "images/s" in out


def test_the_lazy_public_names_are_the_api_names() -> None:
    """``forms.__all__`` lists exactly the lazily imported names, and they cover ``forms.api``'s."""
    import forms.api

    lazy = set(forms._LAZY)
    assert set(forms.__all__) - {"__version__"} == lazy
    assert set(forms.api.__all__) <= lazy
    assert all(getattr(forms, name) is not None for name in lazy)
