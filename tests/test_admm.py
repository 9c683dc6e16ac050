"""ADMM steps, masked retraining with parametrizations, baking, and the resumable pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from compress_helpers import make_float_checkpoint, tiny_spec
from forms.compress import phases, pipeline, state
from forms.compress.admm import grow_rho, init_state, penalty_fn, projected_weights, zu_step
from forms.compress.constraints import layer_constraints
from forms.compress.result import CompressResult
from forms.compress.retrain import attach, bake, load_projected
from forms.compress.spec import CompressSpec
from forms.errors import CheckpointError, ConfigError, UnsupportedLayerError
from forms.geometry import weight_to_matrix
from forms.intweights import integer_layers_from_checkpoint
from forms.nn.checkpoint import load_checkpoint, model_from_checkpoint


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5)
    )


@pytest.fixture(scope="module")
def float_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_float_checkpoint(tmp_path_factory.mktemp("admm"))


def test_zu_step_identities_and_rho_rescaling() -> None:
    model = small_net()
    spec = CompressSpec.from_dict(
        {"crossbar": {"fragment_size": 2}, "schedule": {"rho": 0.1, "rho_max": 0.15}}
    )
    cons = layer_constraints(model, spec)
    state = init_state(model, cons, spec)
    w = {c.name: model.get_submodule(c.name).weight.detach().clone() for c in cons}
    assert all(torch.equal(state.U[n], torch.zeros_like(w[n])) for n in w)  # warm start: U = 0, Z = proj(W)
    z_expected, _ = projected_weights(model, cons, spec, offsets=state.U)
    u_before = {n: u.clone() for n, u in state.U.items()}
    residuals = zu_step(model, cons, spec, state)
    for n in w:
        assert torch.equal(state.Z[n], z_expected[n])
        torch.testing.assert_close(state.U[n], u_before[n] + w[n] - state.Z[n])
        assert residuals[n] == pytest.approx(float((w[n] - state.Z[n]).norm() / w[n].norm()))
    dual = {n: state.rho * u for n, u in state.U.items()}
    grow_rho(state, spec)
    assert state.rho == pytest.approx(0.15)  # 0.1 * 1.5 = 0.15, the cap
    for n in dual:
        torch.testing.assert_close(state.rho * state.U[n], dual[n])  # unscaled dual unchanged
    grow_rho(state, spec)
    assert state.rho == pytest.approx(0.15)


def test_penalty_matches_its_formula_and_gradient() -> None:
    model = small_net()
    spec = CompressSpec.from_dict({"crossbar": {"fragment_size": 2}, "schedule": {"rho": 0.3}})
    cons = layer_constraints(model, spec)
    state = init_state(model, cons, spec)
    state.U = {n: torch.randn_like(z) for n, z in state.Z.items()}
    loss = penalty_fn(state, torch.device("cpu"))(model)
    expected = sum(
        0.15 * (model.get_submodule(n).weight - state.Z[n] + state.U[n]).square().sum() for n in state.Z
    )
    torch.testing.assert_close(loss, expected)
    loss.backward()
    for n in state.Z:
        w = model.get_submodule(n).weight
        torch.testing.assert_close(w.grad, 0.3 * (w.detach() - state.Z[n] + state.U[n]))


def test_admm_w_step_drives_residual_down() -> None:
    torch.manual_seed(1)
    model = small_net()
    x, y = torch.randn(64, 2, 6, 6), torch.randint(0, 5, (64,))
    spec = CompressSpec.from_dict({"crossbar": {"fragment_size": 4}, "quant": {"weight_bits": 3}})
    cons = layer_constraints(model, spec)
    state = init_state(model, cons, spec)
    state.rho = 1.0
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    history = []
    for _ in range(4):
        extra = penalty_fn(state, torch.device("cpu"))
        for _ in range(8):
            loss = nn.functional.cross_entropy(model(x), y) + extra(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
        history.append(max(zu_step(model, cons, spec, state).values()))
        grow_rho(state, spec)
    assert history[-1] < 0.75 * history[0]


def test_parametrized_retraining_keeps_types_constraints_and_bakes_exactly() -> None:
    model = small_net()
    spec = CompressSpec.from_dict(
        {
            "crossbar": {"fragment_size": 4},
            "quant": {"weight_bits": 4},
            "prune": {"ratio": 0.25, "last_layer": True},
        }
    )
    cons = layer_constraints(model, spec)
    _, proj = projected_weights(model, cons, spec)
    load_projected(model, cons, proj)
    attach(model, cons, proj)
    assert isinstance(model[0], nn.Conv2d) and parametrize.is_parametrized(model[0], "weight")
    # the parametrized weight equals the projection right after attaching (latent = projected)
    for c in cons:
        weight = model.get_submodule(c.name).weight.detach()
        torch.testing.assert_close(weight_to_matrix(weight, c.groups), proj[c.name].matrix)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(32, 2, 6, 6), torch.randint(0, 5, (32,))
    for _ in range(5):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        latent = model[0].parametrizations["weight"].original
        assert latent.grad is not None and float(latent.grad.abs().sum()) > 0  # STE lets gradients through
        opt.step()
    out_param = model(x).detach()
    layers = bake(model, cons)
    assert not parametrize.is_parametrized(model[0])
    torch.testing.assert_close(model(x).detach(), out_param)
    for layer, c in zip(layers, cons, strict=True):
        weight = model.get_submodule(c.name).weight.detach()
        assert torch.equal(weight, layer.dequantized_weight())
        assert layer.mixed_sign_fragments() == 0
        assert int(layer.weight_int.abs().max()) <= 15
        assert torch.all(layer.weight_int[~proj[c.name].keep] == 0)  # pruned zeros stayed zero
        # no entry crossed to the other side of its fragment's sign chosen at the projection
        signs = proj[c.name].signs
        assert signs is not None and bool(torch.all(layer.weight_int * signs >= 0))


def test_constrained_weight_keeps_the_latent_memory_format() -> None:
    spec = CompressSpec.from_dict({"crossbar": {"fragment_size": 4}, "quant": {"weight_bits": 4}})
    nets = [small_net(), small_net().to(memory_format=torch.channels_last)]
    weights = []
    for model in nets:
        cons = layer_constraints(model, spec)
        _, proj = projected_weights(model, cons, spec)
        load_projected(model, cons, proj)
        attach(model, cons, proj)
        weights.append(model[0].weight)
    assert weights[0].is_contiguous() and weights[1].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(weights[0], weights[1])  # same values, only the layout differs


def test_first_and_last_layer_options() -> None:
    model = small_net()
    spec = CompressSpec.from_dict({"polarize": {"first_layer": False}})
    cons = layer_constraints(model, spec)
    assert cons[0].fragment_size is None and cons[0].integer_fragment_size == 1
    assert cons[1].fragment_size == 8
    prune = CompressSpec.from_dict({"prune": {"ratio": 0.5}})
    c2 = layer_constraints(model, prune)
    assert c2[0].prune_ratio == 0.0 and c2[-1].prune_ratio == 0.0  # first layer and logits kept by default
    both = layer_constraints(model, CompressSpec.from_dict({"prune": {"ratio": 0.5, "first_layer": True}}))
    assert both[0].prune_ratio == 0.5


def test_model_without_mapped_layers_is_refused() -> None:
    with pytest.raises(UnsupportedLayerError, match="no layer to map"):
        layer_constraints(nn.Sequential(nn.ReLU()), CompressSpec())


def test_unknown_layer_ratio_is_refused() -> None:
    with pytest.raises(ConfigError, match="does not have"):
        layer_constraints(small_net(), CompressSpec.from_dict({"prune": {"layer_ratios": {"nope": 0.5}}}))


def test_pipeline_end_to_end_and_resume_is_bit_identical(
    float_ckpt: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt, data_dir = float_ckpt
    spec = tiny_spec(data_dir, prune={"ratio": 0.5})
    full = pipeline.compress(spec, ckpt, tmp_path / "full", progress=False)
    assert full.fragments_mixed_sign == 0 and full.fragments_total > 0
    f = full.crossbars["factors"]
    assert f["pruning"] * f["quantization"] * f["polarization"] == pytest.approx(f["total"])
    assert len(full.admm.history) == 2
    assert set(full.admm.history[0].residuals) == {c.name for c in full.layers}
    written = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert written["accuracy_after"] == full.accuracy_after
    assert list(written) == list(full.to_dict())
    assert CompressResult.from_dict(full.to_dict()) == full
    old = full.to_dict()  # metrics.json of a run from before validation hold-outs
    del old["retrain"]["validation_images"], old["retrain"]["selected_epoch"]
    assert CompressResult.from_dict(old) == full
    del old["reduction"]  # ... and before both reduction counts: recomputed from the crossbar tables
    assert CompressResult.from_dict(old) == full
    assert full.reduction.physical.total == f["total"]
    w = full.reduction.per_weight
    assert w.total == pytest.approx(w.pruning * w.quantization * w.polarization)
    assert w.pruning > 1.0 and 0 < w.area_equivalent <= full.crossbars["final"]["polarized"]
    saved = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    assert saved["stage"] == "compressed" and "Z" in saved["admm"]
    model = model_from_checkpoint(saved)
    for layer in integer_layers_from_checkpoint(saved):
        assert torch.equal(model.get_submodule(layer.name).weight.detach(), layer.dequantized_weight())
    assert not (tmp_path / "full" / state.STATE_NAME).exists()

    # interrupt during ADMM round 2, then during retraining; each resume reaches identical weights
    calls = {"n": 0}
    real_zu = phases.zu_step

    def failing_zu(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_zu(*args, **kwargs)

    monkeypatch.setattr(phases, "zu_step", failing_zu)
    with pytest.raises(KeyboardInterrupt):
        pipeline.compress(spec, ckpt, tmp_path / "cut", progress=False)
    assert (tmp_path / "cut" / state.STATE_NAME).is_file()
    assert not (tmp_path / "cut" / "checkpoint.pt").exists()
    with pytest.raises(ConfigError, match="--resume"):
        pipeline.compress(spec, ckpt, tmp_path / "cut", progress=False)
    monkeypatch.setattr(phases, "zu_step", real_zu)
    with pytest.raises(ConfigError, match="settings differ"):
        pipeline.compress(spec.replace(seed=5), ckpt, tmp_path / "cut", resume=True, progress=False)
    resumed = pipeline.compress(spec, ckpt, tmp_path / "cut", resume=True, progress=False)
    assert resumed.accuracy_after == full.accuracy_after
    a = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["state_dict"]
    for key, value in saved["state_dict"].items():
        assert torch.equal(a[key], value), key
    again = pipeline.compress(spec, ckpt, tmp_path / "cut", resume=True, progress=False)  # finished: reused
    assert again.accuracy_after == resumed.accuracy_after


def test_validation_split_keeps_the_best_epoch_and_resumes(
    float_ckpt: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt, data_dir = float_ckpt
    held = 64  # of the 384 synthetic training images; the test set has 128, so sizes tell them apart
    spec = tiny_spec(
        data_dir,
        validation_images=held,
        schedule={"retrain_epochs": 4, "weight_decay": 1e-4, "retrain_weight_decay": 0.0},
    )
    real_eval, real_train, real_opt = phases.evaluate, phases.train_epoch, phases.phase_optimizer
    decays: list[float] = []

    def recording_opt(spec, model, lr, weight_decay):  # type: ignore[no-untyped-def]
        decays.append(weight_decay)
        return real_opt(spec, model, lr, weight_decay)

    monkeypatch.setattr(phases, "phase_optimizer", recording_opt)

    def scripted(values: list[float]):  # type: ignore[no-untyped-def]
        """evaluate() that answers the validation set from ``values`` in turn and measures the rest."""
        it = iter(values)

        def fake(model, dataset, **kw):  # type: ignore[no-untyped-def]
            return next(it) if len(dataset) == held else real_eval(model, dataset, **kw)

        return fake

    script = [0.5, 0.7, 0.7, 0.6]  # best at epochs 2 and 3: the tie goes to the later epoch
    monkeypatch.setattr(phases, "evaluate", scripted(script))
    full = pipeline.compress(spec, ckpt, tmp_path / "full", progress=False)
    history = full.retrain.history
    assert [h.validation_accuracy for h in history] == script
    assert CompressResult.from_dict(full.to_dict()) == full
    assert full.retrain.selected_epoch == 3 and full.retrain.validation_images == held
    # the baked model is the epoch-3 model: its test accuracy is the one measured after epoch 3
    assert full.accuracy_after == history[2].accuracy
    assert full.fragments_mixed_sign == 0
    assert decays == [1e-4, 0.0]  # the W-step's weight decay, then retraining's own

    # interrupted in retraining epoch 4 (train_epoch call 2 ADMM + 4 retraining), then resumed
    calls = {"n": 0}

    def failing_train(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(phases, "evaluate", scripted(script))
    monkeypatch.setattr(phases, "train_epoch", failing_train)
    with pytest.raises(KeyboardInterrupt):
        pipeline.compress(spec, ckpt, tmp_path / "cut", progress=False)
    resumed = pipeline.compress(spec, ckpt, tmp_path / "cut", resume=True, progress=False)
    assert resumed.retrain.selected_epoch == 3
    assert resumed.accuracy_after == full.accuracy_after
    a = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["state_dict"]
    for key, value in load_checkpoint(tmp_path / "full" / "checkpoint.pt")["state_dict"].items():
        assert torch.equal(a[key], value), key

    with pytest.raises(ConfigError, match="cannot hold out"):
        pipeline.compress(spec.replace(validation_images=384), ckpt, tmp_path / "too-many", progress=False)
    assert not (tmp_path / "too-many").exists()


def test_settings_saved_before_a_field_existed_resume_at_its_default() -> None:
    spec = CompressSpec.from_dict({"schedule": {"retrain_epochs": 2}})
    now = state.run_config(spec)
    old = {k: v for k, v in now.items() if k != "validation_images"}
    old["schedule"] = {k: v for k, v in now["schedule"].items() if k != "retrain_weight_decay"}
    assert state.saved_run_config(old) == now
    assert state.saved_run_config(old) != state.run_config(spec.replace(validation_images=10))


def test_compressed_checkpoint_is_refused_as_input(float_ckpt: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, data_dir = float_ckpt
    spec = tiny_spec(data_dir, schedule={"admm_rounds": 0, "retrain_epochs": 0})
    pipeline.compress(spec, ckpt, tmp_path / "a", progress=False)
    with pytest.raises(CheckpointError, match="compressed"):
        pipeline.compress(spec, tmp_path / "a" / "checkpoint.pt", tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()


def test_channels_last_compression_keeps_every_constraint(
    float_ckpt: tuple[Path, Path], tmp_path: Path
) -> None:
    ckpt, data_dir = float_ckpt
    spec = tiny_spec(data_dir, prune={"ratio": 0.5}, schedule={"admm_rounds": 1})
    plain = pipeline.compress(spec, ckpt, tmp_path / "nchw", progress=False)
    last = pipeline.compress(spec.replace(channels_last=True), ckpt, tmp_path / "nhwc", progress=False)
    assert last.fragments_mixed_sign == 0 and last.fragments_total == plain.fragments_total
    # the same float model; rounding may flip one borderline test image
    assert abs(last.accuracy_before - plain.accuracy_before) <= 1 / 128
    saved = load_checkpoint(tmp_path / "nhwc" / "checkpoint.pt")
    model = model_from_checkpoint(saved)
    for layer in integer_layers_from_checkpoint(saved):
        assert torch.equal(model.get_submodule(layer.name).weight.detach(), layer.dequantized_weight())
    # the memory order is an execution choice: a run resumes under the other one
    again = pipeline.compress(spec, ckpt, tmp_path / "nhwc", resume=True, progress=False)
    assert again.accuracy_after == last.accuracy_after


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _quick(data_dir: Path, **schedule: object) -> CompressSpec:
    """A compression without ADMM rounds or retraining epochs (unless ``schedule`` asks for them)."""
    return tiny_spec(data_dir, schedule={"admm_rounds": 0, "retrain_epochs": 0, **schedule})


def test_a_damaged_resume_state_is_refused_naming_the_file(
    float_ckpt: tuple[Path, Path], tmp_path: Path
) -> None:
    ckpt, data_dir = float_ckpt
    spec = _quick(data_dir)
    out = tmp_path / "run"
    out.mkdir()
    path = out / state.STATE_NAME
    cases = [
        (
            lambda: path.write_bytes(b"PK\x03\x04 half a zip"),
            r"compress_state.pt is damaged or not a PyTorch",
        ),
        (lambda: torch.save(torch.zeros(3), path), r"not a usable compression state \(it holds a Tensor"),
        (
            lambda: torch.save({"format": state.STATE_FORMAT}, path),
            r"usable compression state \(it lacks phase",
        ),
    ]
    for write, message in cases:
        write()
        before = _files(out)
        with pytest.raises(CheckpointError, match=message):
            pipeline.compress(spec, ckpt, out, resume=True, progress=False)
        with pytest.raises(ConfigError, match="unfinished compression; pass --resume"):
            pipeline.compress(spec, ckpt, out, progress=False)
        assert _files(out) == before


@pytest.mark.parametrize("damage", ["{ not json", "[1, 2]", '{"model": "lenet5"}'])
def test_damaged_metrics_of_a_finished_run_are_refused_naming_the_file(
    float_ckpt: tuple[Path, Path], tmp_path: Path, damage: str
) -> None:
    ckpt, data_dir = float_ckpt
    spec = _quick(data_dir)
    pipeline.compress(spec, ckpt, tmp_path, progress=False)
    (tmp_path / "metrics.json").write_text(damage)
    before = _files(tmp_path)
    with pytest.raises(CheckpointError, match=r"metrics.json is damaged .*delete both files"):
        pipeline.compress(spec, ckpt, tmp_path, resume=True, progress=False)
    assert _files(tmp_path) == before


def test_a_folder_holding_something_else_is_refused_saying_what(
    float_ckpt: tuple[Path, Path], tmp_path: Path
) -> None:
    ckpt, data_dir = float_ckpt
    spec = _quick(data_dir)
    float_run = ckpt.parent
    before = _files(float_run)
    for resume in (False, True):
        with pytest.raises(ConfigError, match=r"is the folder of the float checkpoint being compressed"):
            pipeline.compress(spec, ckpt, float_run, resume=resume, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "checkpoint.pt").write_bytes(ckpt.read_bytes())
    with pytest.raises(ConfigError, match=r"already holds a float lenet5 model on mnist, 2 of 2 epochs"):
        pipeline.compress(spec, ckpt, other, resume=True, progress=False)
    (other / "checkpoint.pt").write_bytes(b"junk")
    with pytest.raises(ConfigError, match=r"holds a checkpoint.pt that is not a readable FORMS checkpoint"):
        pipeline.compress(spec, ckpt, other, progress=False)
    (other / "checkpoint.pt").unlink()
    (other / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"holds a metrics.json but no checkpoint.pt"):
        pipeline.compress(spec, ckpt, other, progress=False)
    assert _files(float_run) == before


def test_a_checkpoint_with_non_finite_weights_is_refused(
    float_ckpt: tuple[Path, Path], tmp_path: Path
) -> None:
    from forms.nn.checkpoint import save_checkpoint

    ckpt, data_dir = float_ckpt
    src = load_checkpoint(ckpt)
    name = next(k for k in src["state_dict"] if k.endswith("weight"))
    src["state_dict"][name][0].view(-1)[0] = float("nan")
    save_checkpoint(src, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=rf"its weight {name} holds NaN or infinite values"):
        pipeline.compress(_quick(data_dir), tmp_path / "nan.pt", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("schedule", "where"),
    [
        ({"admm_rounds": 1, "lr": 1e38}, "ADMM round 1, W-step epoch 1"),
        ({"retrain_epochs": 1, "retrain_lr": 1e38}, "retraining epoch 1"),
    ],
)
def test_a_diverging_compression_stops_naming_the_step(
    float_ckpt: tuple[Path, Path], tmp_path: Path, schedule: dict[str, object], where: str
) -> None:
    ckpt, data_dir = float_ckpt
    spec = _quick(data_dir, optimizer="sgd", **schedule)
    with pytest.raises(ConfigError, match=rf"training diverged in {where}: "):
        pipeline.compress(spec, ckpt, tmp_path, progress=False)
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "metrics.json").exists()


def test_compression_clears_the_temporary_files_a_kill_left(
    float_ckpt: tuple[Path, Path], tmp_path: Path
) -> None:
    ckpt, data_dir = float_ckpt
    for name in ("checkpoint.pt", "metrics.json", state.STATE_NAME):
        (tmp_path / f".{name}.abc.tmp").write_bytes(b"half")
    pipeline.compress(_quick(data_dir), ckpt, tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "metrics.json"]
