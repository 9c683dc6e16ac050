"""Held-out validation images: forms train records them, compress and search validate on the same ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import forms.nn.train as T
from compress_helpers import tiny_spec
from forms.cli import app
from forms.compress.pipeline import compress, load_data
from forms.compress.spec import CompressSpec
from forms.compress.validation_split import resolve_validation
from forms.errors import ConfigError
from forms.nn.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from forms.nn.epoch import evaluate
from forms.nn.holdout import HOLDOUT_KEY, Holdout, recorded_holdout, split_train
from nn_helpers import train_interrupted_after_epoch_1

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def held_run(tiny_mnist_root: Path, tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Path:
    """A float LeNet-5 trained 3 epochs on the first 160 images, 48 of them held out."""
    out = tmp_path_factory.mktemp("held") / "float"
    T.train(_spec(tiny_mnist_root), out, progress=False)
    return out


def _spec(root: Path, **kw: object) -> T.TrainSpec:
    base: dict[str, object] = {
        "epochs": 3,
        "batch_size": 32,
        "optimizer": "adam",
        "lr": 0.005,
        "seed": 3,
        "train_subset": 160,
        "validation_images": 48,
        "data_dir": str(root),
        "device": "cpu",
    }
    return T.TrainSpec.from_dict({**base, **kw})


def _rows(dataset: torch.utils.data.TensorDataset) -> set[bytes]:
    """Each image of ``dataset`` as bytes: sets of images compare across splits."""
    return {bytes(x.numpy().tobytes()) for x in dataset.tensors[0]}


def test_train_records_its_hold_out_and_compress_validates_on_the_same_images(
    tiny_mnist_root: Path, held_run: Path
) -> None:
    spec = _spec(tiny_mnist_root)
    trained = T.load_train_test(spec)
    src = load_checkpoint(held_run)
    assert recorded_holdout(src) == Holdout(images=48, seed=3, pool=160)
    # The train hold-out is drawn from the train_subset-limited set with the run's seed.
    assert trained.validation is not None
    full = T.load_dataset("mnist", "train", data_dir=str(tiny_mnist_root))
    rest, held = split_train(full, 160, Holdout(48, 3, 160))
    assert torch.equal(held.tensors[0], trained.validation.tensors[0])
    assert torch.equal(rest.tensors[0], trained.train.tensors[0])
    # Compress, whatever its own seed and training subset, validates on exactly those images and
    # trains on none of them.
    for subset in (None, 100):
        data = load_data(src, tiny_spec(tiny_mnist_root, seed=0, train_subset=subset))
        assert data.validation is not None and torch.equal(data.validation.tensors[0], held.tensors[0])
        assert not _rows(data.train) & _rows(held)
        assert data.plan.holdout.indices() == recorded_holdout(src).indices()  # type: ignore[union-attr]
        assert data.plan.seen_by_float_model is False
        assert (data.plan.spec.validation_images, data.plan.spec.validation_seed) == (48, 3)


def test_train_keeps_the_epoch_of_best_validation_accuracy(tiny_mnist_root: Path, held_run: Path) -> None:
    metrics = json.loads((held_run / "metrics.json").read_text())
    history = metrics["per_epoch"]
    best = max(h["validation_accuracy"] for h in history)
    kept = max(h["epoch"] for h in history if h["validation_accuracy"] == best)  # ties: the later
    assert metrics["selected_epoch"] == kept and metrics["validation_accuracy"] == best
    assert metrics["test_accuracy"] == history[kept - 1]["test_accuracy"]
    # The checkpoint holds that epoch's weights: they score its validation accuracy again.
    src = load_checkpoint(held_run)
    validation = T.load_train_test(_spec(tiny_mnist_root)).validation
    assert validation is not None
    assert evaluate(model_from_checkpoint(src), validation) == pytest.approx(best)
    assert src["selected_epoch"] == kept


def test_an_interrupted_run_with_a_hold_out_resumes_bit_identically(
    tiny_mnist_root: Path, held_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_interrupted_after_epoch_1(monkeypatch, _spec(tiny_mnist_root), tmp_path / "cut")
    T.train(_spec(tiny_mnist_root), tmp_path / "cut", resume=True, progress=False)
    a, b = load_checkpoint(held_run)["state_dict"], load_checkpoint(tmp_path / "cut")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # The hold-out is part of the run's key: another one does not resume it.
    with pytest.raises(ConfigError, match="validation_images: checkpoint 48 vs now 32"):
        T.train(_spec(tiny_mnist_root, validation_images=32), tmp_path / "cut", resume=True, progress=False)


def test_compress_refuses_a_hold_out_with_images_the_float_model_trained_on(
    tiny_mnist_root: Path, held_run: Path
) -> None:
    src = load_checkpoint(held_run)
    for bad in ({"validation_images": 60}, {"validation_images": 48, "validation_seed": 4}):
        with pytest.raises(ConfigError, match="images the float model trained on") as err:
            load_data(src, tiny_spec(tiny_mnist_root, **bad))
        assert "--validation-images 48" in str(err.value) and "unset" in str(err.value)
    # Fewer images of the same draw are a subset of the float model's hold-out: accepted.
    fewer = load_data(src, tiny_spec(tiny_mnist_root, validation_images=20))
    assert fewer.plan.holdout.indices() <= recorded_holdout(src).indices()  # type: ignore[union-attr]
    # No hold-out at all is always allowed.
    assert load_data(src, tiny_spec(tiny_mnist_root, validation_images=0)).validation is None


def test_an_old_checkpoint_loads_and_its_validation_is_flagged_as_seen(
    tiny_mnist_root: Path, held_run: Path, tmp_path: Path
) -> None:
    """A float checkpoint from before the record keeps today's hold-out (seed, training set), flagged."""
    old = {k: v for k, v in load_checkpoint(held_run).items() if k not in (HOLDOUT_KEY, "format", "version")}
    old["config"] = {k: v for k, v in old["config"].items() if k != "validation_images"}
    save_checkpoint(old, tmp_path / "old.pt")
    src = load_checkpoint(tmp_path / "old.pt")
    assert recorded_holdout(src) is None
    spec = tiny_spec(tiny_mnist_root, validation_images=40, seed=5, train_subset=150)
    data = load_data(src, spec)
    prefix = T.load_dataset("mnist", "train", data_dir=str(tiny_mnist_root))
    _, today = split_train(prefix, 150, Holdout(40, 5, 150))
    assert data.validation is not None and torch.equal(data.validation.tensors[0], today.tensors[0])
    assert data.plan.seen_by_float_model is True
    assert (data.plan.spec.validation_seed, data.plan.spec.validation_pool) == (None, None)
    result = compress(spec, tmp_path / "old.pt", tmp_path / "run", progress=False)
    assert result.retrain.validation_seen_by_float_model is True
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["retrain"]["validation_seen_by_float_model"] is True


@settings(max_examples=60, deadline=None)
@given(
    pool=st.integers(2, 300),
    data=st.data(),
    seed=st.integers(0, 2**31),
    train_images=st.integers(300, 400),
)
def test_a_resolved_hold_out_lies_within_the_float_models(
    pool: int, data: st.DataObject, seed: int, train_images: int
) -> None:
    """Unset settings take the float model's hold-out; an explicit count up to its own is a subset of it,
    and one above it is refused."""
    held = data.draw(st.integers(1, pool - 1))
    recorded = Holdout(held, seed, pool)
    subset = data.draw(st.none() | st.integers(1, train_images))
    inherited = resolve_validation(CompressSpec(train_subset=subset), recorded, train_images)
    assert inherited.holdout == recorded and inherited.seen_by_float_model is False
    fewer = data.draw(st.integers(1, held))
    plan = resolve_validation(CompressSpec(validation_images=fewer, seed=seed + 1), recorded, train_images)
    assert plan.holdout.indices() <= recorded.indices() and len(plan.holdout.indices()) == fewer
    if held + 1 < pool:
        with pytest.raises(ConfigError):
            resolve_validation(CompressSpec(validation_images=held + 1), recorded, train_images)


def test_the_cli_holds_images_out_and_compress_takes_them(tiny_mnist_root: Path, tmp_path: Path) -> None:
    """`forms train --validation-images` and a `forms compress` without it: the float model's hold-out."""
    config = tmp_path / "train.yaml"
    config.write_text(
        f"epochs: 2\ntrain_subset: 128\ntest_subset: 32\ndata_dir: {tiny_mnist_root}\ndevice: cpu\n"
    )
    runner = CliRunner()
    args = ["train", "--config", str(config), "--validation-images", "32", "--out", str(tmp_path / "f")]
    trained = runner.invoke(app, [*args, "--quiet"])
    assert trained.exit_code == 0, trained.output
    assert "kept (validation accuracy" in " ".join(trained.output.split())
    assert recorded_holdout(load_checkpoint(tmp_path / "f")) == Holdout(images=32, seed=0, pool=128)
    compressed = runner.invoke(
        app,
        [
            *(
                "compress",
                "--checkpoint",
                str(tmp_path / "f" / "checkpoint.pt"),
                "--out",
                str(tmp_path / "c"),
            ),
            *(
                "--data-dir",
                str(tiny_mnist_root),
                "--device",
                "cpu",
                "--admm-rounds",
                "1",
                "--retrain-epochs",
                "1",
            ),
            *("--shift", "1", "--quiet"),
        ],
    )
    assert compressed.exit_code == 0, compressed.output
    metrics = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert metrics["retrain"]["validation_images"] == 32
    assert metrics["retrain"]["validation_seen_by_float_model"] is False
    assert metrics["config"]["schedule"]["shift"] == 1
