"""Whole networks through the simulator: exact agreement in ideal mode, conv geometry, CLI, errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from typer.testing import CliRunner

import forms
from _simhelpers import Block, projection_spec
from forms.cli.app import app
from forms.errors import ConfigError, UnsupportedLayerError
from forms.sim.quant_inputs import InputQuantizer
from forms.sim.result import SimulationResult
from forms.sim.simnet import SimulatedLayer, build_simulated_model
from forms.sim.simulate import simulate, simulate_model
from forms.sim.spec import SimSpec


def tiny_net(seed: int = 0) -> tuple[nn.Module, list]:
    torch.manual_seed(seed)
    net = Block().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.1, 0.1)
        net.bn.running_var.uniform_(0.5, 1.5)
    return net, forms.project(net, projection_spec(weight_bits=6, fragment_size=4))


IMAGES = torch.randn(24, 1, 8, 8, generator=torch.Generator().manual_seed(1))
LABELS = torch.randint(0, 10, (24,), generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("encoding", ["polarized", "offset", "differential"])
@pytest.mark.parametrize("bit_level", [False, True])
def test_ideal_network_agrees_exactly(encoding: str, bit_level: bool) -> None:
    net, layers = tiny_net()
    spec = SimSpec.from_dict(
        {
            "encoding": encoding,
            "bit_level": bit_level,
            "rows": 32,
            "cols": 32,
            "input_bits": 10,
            "batch_size": 8,
        }
    )
    r = simulate_model(spec, net, layers, IMAGES, LABELS, IMAGES[:8], device="cpu")
    assert r.prediction_agreement == 1.0
    assert r.accuracy == r.reference_accuracy
    assert r.clip_rate == 0.0
    assert set(r.zero_skip) == {"stem", "grouped", "down", "fc"}
    for z in r.zero_skip.values():
        assert 0 <= z.conversions_skipped_leading <= z.conversions_skipped_bitplane <= z.conversions_total
    assert all(v.setup.path == ("bit_level" if bit_level else "exact_fast") for v in r.layers.values())
    assert r.layers["stem"].setup.input_signed and not r.layers["fc"].setup.input_signed


def test_narrow_adc_and_monte_carlo() -> None:
    net, layers = tiny_net()
    spec = SimSpec.from_dict(
        {"adc_bits": 2, "rows": 32, "input_bits": 8, "devices": {"variation": 0.1}, "runs": 3, "seed": 4}
    )
    r1 = simulate_model(spec, net, layers, IMAGES, LABELS, IMAGES[:8], device="cpu")
    r2 = simulate_model(spec, net, layers, IMAGES, LABELS, IMAGES[:8], device="cpu")
    assert r1.runs.accuracy == r2.runs.accuracy  # seeded
    assert r1.to_dict()["runs"]["count"] == 3 and r1.accuracy_std >= 0
    assert r1.clip_rate > 0
    assert all(v.setup.path == "bit_level" for v in r1.layers.values())
    assert SimulationResult.from_dict(r1.to_dict()).to_dict() == r1.to_dict()


@settings(max_examples=25, deadline=None)
@given(
    groups=st.sampled_from([1, 2, 3]),
    k=st.integers(1, 3),
    stride=st.integers(1, 2),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    size=st.integers(5, 8),
)
def test_conv_geometry_equals_integer_conv(groups, k, stride, padding, dilation, size) -> None:
    torch.manual_seed(groups * 100 + k)
    conv = nn.Conv2d(2 * groups, 3 * groups, k, stride, padding, dilation, groups, bias=True)
    (layer,) = forms.project(
        nn.Sequential(conv), projection_spec(weight_bits=5, fragment_size=1, scale="layer")
    )
    layer.name = "0"
    q = InputQuantizer(scale=0.25, bits=8, signed=True)
    spec = SimSpec.from_dict({"rows": 8, "input_bits": 8, "bit_level": True})
    sim = SimulatedLayer(conv, layer, q, spec)
    x = torch.randn(2, 2 * groups, size, size)
    codes = q.codes(x)
    w_int = conv.weight.detach().double() / float(layer.scale)
    want = F.conv2d(codes, w_int.round(), None, stride, padding, dilation, groups)
    vec, shape = sim.vectors(codes)
    got = sim.assemble(sim.array(vec), shape)
    assert torch.equal(got, want)
    out = sim(x)
    torch.testing.assert_close(out, (want * 0.25 * float(layer.scale)).float() + conv.bias.view(-1, 1, 1))


def test_unsupported_layer_is_named() -> None:
    net = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Linear(2, 2))
    with pytest.raises(UnsupportedLayerError, match=r"'0' \(Conv1d\).*nn.Conv2d, nn.Linear"):
        build_simulated_model(net, [], {}, SimSpec.from_dict({}))


def test_bad_specs() -> None:
    with pytest.raises(ConfigError, match="adc_bits"):
        SimSpec.from_dict({"adc_bits": 0})
    assert SimSpec.from_dict({"flipped": True, "encoding": "polarized"}).flipped  # every encoding flips
    with pytest.raises(ConfigError, match="must divide"):
        SimSpec.from_dict({"fragment_size": 3})


def test_polarized_refuses_an_unpolarized_checkpoint() -> None:
    torch.manual_seed(0)
    net = Block().eval()
    mixed = forms.project(net, projection_spec(weight_bits=6, fragment_size=4, polarize=False))
    layers = [dataclasses.replace(layer, fragment_size=4) for layer in mixed]  # claims R=4, holds both signs
    spec = SimSpec.from_dict({"encoding": "polarized", "rows": 32})
    with pytest.raises(ConfigError, match="encoding the checkpoint cannot provide"):
        simulate_model(spec, net, layers, IMAGES, LABELS, IMAGES[:8], device="cpu")
    ok = simulate_model(
        spec.replace(encoding="offset"), net, layers, IMAGES[:4], LABELS[:4], IMAGES[:4], device="cpu"
    )
    assert ok.prediction_agreement == 1.0


def fake_mnist(root: Path, n: int = 40) -> None:
    from forms.nn.data import write_idx

    d = root / "mnist"
    d.mkdir(parents=True)
    gen = np.random.default_rng(0)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(gen.integers(0, 256, (n, 28, 28), dtype=np.uint8), d / f"{prefix}-images-idx3-ubyte")
        write_idx(gen.integers(0, 10, n, dtype=np.uint8), d / f"{prefix}-labels-idx1-ubyte")
        del split


def fake_checkpoint(path: Path) -> None:
    from forms.nn.checkpoint import save_checkpoint
    from forms.nn.models import build_model

    torch.manual_seed(0)
    model = build_model("lenet5")
    layers = forms.project(model, projection_spec(weight_bits=8, fragment_size=8))
    save_checkpoint(
        {
            "stage": "compressed",
            "model": {"name": "lenet5", "kwargs": {}},
            "state_dict": model.state_dict(),
            "data": {"dataset": "mnist", "pad_to": None, "channels": None},
            "integer_layers": [layer.state() for layer in layers],
        },
        path,
    )


def test_cli_end_to_end(tmp_path: Path) -> None:
    fake_mnist(tmp_path / "data")
    fake_checkpoint(tmp_path / "c.pt")
    out = tmp_path / "sim"
    args = [
        "simulate",
        "--checkpoint",
        str(tmp_path / "c.pt"),
        "--out",
        str(out),
        "--data-dir",
        str(tmp_path / "data"),
        "--limit",
        "16",
        "--quiet",
        "--device",
        "cpu",
    ]
    res = CliRunner().invoke(app, [*args, "--encoding", "polarized"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    for key in (
        "accuracy",
        "reference_accuracy",
        "prediction_agreement",
        "adc_clip_rate",
        "zero_skip",
        "mapping",
    ):
        assert key in m
    assert m["prediction_agreement"] == 1.0 and m["images"] == 16
    assert set(m["zero_skip"]["features.0"]) >= {
        "conversions_total",
        "conversions_skipped_leading",
        "conversions_skipped_bitplane",
        "rows",
        "fragment_size",
    }
    res = CliRunner().invoke(
        app, [*args, "--encoding", "offset", "--adc-bits", "6", "--variation", "0.1", "--runs", "2"]
    )
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["runs"]["count"] == 2 and "accuracy_std" in m and m["adc_clip_rate"]["overall"] > 0
    again = simulate(
        SimSpec.from_dict(
            {"encoding": "offset", "adc_bits": 6, "devices": {"variation": 0.1}, "runs": 2, "limit": 16}
        ),
        tmp_path / "c.pt",
        out,
        resume=True,
        data_dir=tmp_path / "data",
        device="cpu",
    )
    assert list(again.runs.accuracy) == m["runs"]["accuracy"]  # resumed from runs.json
    assert SimulationResult.from_dict(m).to_dict() == m  # metrics.json reads back to the same dict


def _chips_run(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the index of every chip simulate_model programs (resumed chips are not programmed)."""
    import forms.sim.simulate as S

    calls: list[int] = []
    real = S._run_chip

    def counting(sim, test, reference, run, seed):  # type: ignore[no-untyped-def]
        calls.append(run)
        return real(sim, test, reference, run, seed)

    monkeypatch.setattr(S, "_run_chip", counting)
    return calls


def test_resume_reuses_chips_only_of_the_same_weights_and_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = SimSpec.from_dict({"rows": 32, "input_bits": 8, "devices": {"variation": 0.2}, "runs": 2})
    net, layers = tiny_net()
    other_net, other_layers = tiny_net(seed=1)
    fresh = simulate_model(spec, other_net, other_layers, IMAGES, LABELS, IMAGES[:8], device="cpu")
    chips = _chips_run(monkeypatch)
    first = simulate_model(spec, net, layers, IMAGES, LABELS, IMAGES[:8], tmp_path, device="cpu")
    again = simulate_model(spec, net, layers, IMAGES, LABELS, IMAGES[:8], tmp_path, resume=True, device="cpu")
    assert chips == [0, 1] and again.runs == first.runs  # every chip reused
    other = simulate_model(
        spec, other_net, other_layers, IMAGES, LABELS, IMAGES[:8], tmp_path, resume=True, device="cpu"
    )
    assert chips == [0, 1, 0, 1] and other.runs == fresh.runs  # another model: nothing reused
    flipped = LABELS.flip(0)
    simulate_model(
        spec, other_net, other_layers, IMAGES, flipped, IMAGES[:8], tmp_path, resume=True, device="cpu"
    )
    assert chips == [0, 1, 0, 1, 0, 1]  # other labels: nothing reused


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda log: "{ not json", r"runs.json is not a record of simulated chips \(JSONDecodeError"),
        (lambda log: "[]", r"runs.json is not a record of simulated chips \(it holds a JSON list"),
        (lambda log: json.dumps({**log, "runs": [{"run": 0}]}), r"runs.json holds damaged chip records"),
        (
            lambda log: json.dumps({**log, "runs": [log["runs"][0]] * 2}),
            r"damaged chip records \(chips out of",
        ),
    ],
)
def test_a_damaged_run_log_is_refused_naming_it(tmp_path: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    from forms.errors import CheckpointError

    spec = SimSpec.from_dict({"rows": 32, "input_bits": 8, "runs": 2})
    net, layers = tiny_net()
    simulate_model(spec, net, layers, IMAGES[:4], LABELS[:4], IMAGES[:4], tmp_path, device="cpu")
    log = json.loads((tmp_path / "runs.json").read_text())
    (tmp_path / "runs.json").write_text(damage(log))
    before = (tmp_path / "runs.json").read_bytes()
    with pytest.raises(CheckpointError, match=message):
        simulate_model(
            spec, net, layers, IMAGES[:4], LABELS[:4], IMAGES[:4], tmp_path, resume=True, device="cpu"
        )
    assert (tmp_path / "runs.json").read_bytes() == before


def test_integer_layers_that_do_not_fit_the_model_are_refused(tmp_path: Path) -> None:
    from forms.errors import CheckpointError
    from forms.nn.checkpoint import load_checkpoint, save_checkpoint

    fake_mnist(tmp_path / "data")
    fake_checkpoint(tmp_path / "c.pt")
    ckpt = load_checkpoint(tmp_path / "c.pt")
    first = ckpt["integer_layers"][0]
    assert first["name"] == "features.0" and tuple(first["weight_int"].shape) == (1, 25, 6)
    spec = SimSpec.from_dict({"limit": 4})
    cases = [
        (
            {"weight_int": first["weight_int"][:, :10]},
            r"shape \(1, 10, 6\), but a weight of shape \(6, 1, 5, 5\)",
        ),
        (
            {"weight_int": first["weight_int"][:, :10], "weight_shape": [6, 1, 2, 5]},
            r"'features.0' holds a weight of shape \(6, 1, 2, 5\) in 1 groups, the model's is \(6, 1, 5, 5\)",
        ),
        ({"name": "features.1"}, r"integer layer 'features.1' is a ReLU"),
        ({"scale": torch.tensor(float("nan"))}, "scale holds NaN"),
        ({"weight_int": first["weight_int"] * 0.5}, "weight_int must hold integers, got dtype torch.float32"),
    ]
    for change, message in cases:
        layers = [{**first, **change}, *ckpt["integer_layers"][1:]]
        save_checkpoint({**ckpt, "integer_layers": layers}, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match=message):
            simulate(spec, tmp_path / "bad.pt", tmp_path / "out", data_dir=tmp_path / "data", device="cpu")
    assert not (tmp_path / "out").exists()
