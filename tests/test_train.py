"""Training: seed determinism, bit-identical resume, loader identities, metrics and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset
from typer.testing import CliRunner

import forms.nn.train as T
from forms.cli import app
from forms.errors import ConfigError
from forms.nn.checkpoint import load_checkpoint
from nn_helpers import train_interrupted_after_epoch_1

pytestmark = pytest.mark.usefixtures("one_thread")


def _spec(root: Path, **kw: object) -> T.TrainSpec:
    base: dict[str, object] = {
        "model": "lenet5",
        "dataset": "mnist",
        "epochs": 3,
        "batch_size": 32,
        "optimizer": "adam",
        "lr": 0.005,
        "shift": 1,
        "data_dir": str(root),
        "device": "cpu",
    }
    return T.TrainSpec.from_dict({**base, **kw})


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / "checkpoint.pt")["state_dict"]


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_writes_metrics_and_learns(tiny_mnist_root: Path, tmp_path: Path) -> None:
    metrics = T.train(_spec(tiny_mnist_root, epochs=4), tmp_path, progress=False)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics.to_dict()))
    assert list(saved) == list(metrics.to_dict())
    assert T.TrainResult.from_dict(metrics.to_dict()) == metrics
    assert T.TrainResult.from_dict(saved) == metrics
    assert saved["epochs"] == 4 and saved["seed"] == 0 and len(saved["per_epoch"]) == 4
    assert 0.0 <= saved["test_accuracy"] <= 1.0 and saved["train_seconds"] > 0
    assert saved["test_accuracy"] > 0.5  # the bar-position task is easy; chance is 0.1
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["stage"] == "float" and ckpt["epoch"] == 4 and ckpt["seed"] == 0
    assert ckpt["data"] == {"dataset": "mnist", "pad_to": None, "channels": None}
    assert ckpt["model"] == {
        "name": "lenet5",
        "kwargs": {"in_channels": 1, "num_classes": 10, "image_size": 28},
    }


def test_same_seed_same_weights_other_seed_differs(tiny_mnist_root: Path, tmp_path: Path) -> None:
    T.train(_spec(tiny_mnist_root, epochs=1), tmp_path / "a", progress=False)
    T.train(_spec(tiny_mnist_root, epochs=1), tmp_path / "b", progress=False)
    T.train(_spec(tiny_mnist_root, epochs=1, seed=1), tmp_path / "c", progress=False)
    assert _equal(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    assert not _equal(_weights(tmp_path / "a"), _weights(tmp_path / "c"))


def test_resume_after_interruption_is_bit_identical(
    tiny_mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(
        tiny_mnist_root, model="resnet20", pad_to=32, epochs=3, train_subset=96, test_subset=32, flip=True
    )
    T.train(spec, tmp_path / "full", progress=False)

    train_interrupted_after_epoch_1(monkeypatch, spec, tmp_path / "cut")
    assert load_checkpoint(tmp_path / "cut")["epoch"] == 1
    resumed = T.train(spec, tmp_path / "cut", resume=True, progress=False)
    assert _equal(_weights(tmp_path / "full"), _weights(tmp_path / "cut"))
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert [h.test_accuracy for h in resumed.per_epoch] == [h["test_accuracy"] for h in full["per_epoch"]]
    # A finished run resumes to the same result without training again.
    again = T.train(spec, tmp_path / "cut", resume=True, progress=False)
    assert again.per_epoch == resumed.per_epoch


def test_resume_with_another_config_is_refused(tiny_mnist_root: Path, tmp_path: Path) -> None:
    T.train(_spec(tiny_mnist_root, epochs=1, train_subset=32), tmp_path, progress=False)
    with pytest.raises(ConfigError, match=r"config differs \(lr: checkpoint 0.005 vs now 0.01\)"):
        T.train(
            _spec(tiny_mnist_root, epochs=1, train_subset=32, lr=0.01), tmp_path, resume=True, progress=False
        )


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 50),
    batch=st.integers(1, 16),
    world=st.integers(1, 4),
    seed=st.integers(0, 2**31),
    epoch=st.integers(0, 100),
)
def test_loader_epoch_is_a_permutation_split_across_ranks(
    n: int, batch: int, world: int, seed: int, epoch: int
) -> None:
    ds = TensorDataset(torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1), torch.arange(n))
    loaders = [T.EpochLoader(ds, batch * world, seed=seed, rank=r, world_size=world) for r in range(world)]
    for loader in loaders:
        loader.set_epoch(epoch)
    per_rank = [list(loader) for loader in loaders]
    assert all(len(batches) == len(loaders[0]) for batches in per_rank)  # DDP needs equal batch counts
    single = T.EpochLoader(ds, batch * world, seed=seed, world_size=1)
    single.set_epoch(epoch)
    single_batches = [y for _, y in single]
    seen: list[int] = []
    for i, batches in enumerate(zip(*per_rank, strict=True)):
        ys = torch.cat([y for _, y in batches])
        seen += ys.tolist()
        assert len({len(y) for _, y in batches}) == 1  # every rank gets as many samples
        if (n % world) == 0:  # no wrap-around padding: the ranks split exactly the single-process batch
            assert sorted(ys.tolist()) == sorted(single_batches[i].tolist())
    assert sorted(set(seen)) == list(range(n))
    assert len(seen) == n + (-n) % world


@settings(max_examples=25, deadline=None)
@given(dy=st.integers(-3, 3), dx=st.integers(-3, 3))
def test_shift_moves_pixels_and_fills_the_border(dy: int, dx: int) -> None:
    x = torch.randn(1, 2, 9, 9)
    out = T.shift_images(x, torch.tensor([dy]), torch.tensor([dx]), 3, (-1.0, -2.0))
    for i in range(9):
        for j in range(9):
            si, sj = i - dy, j - dx
            if 0 <= si < 9 and 0 <= sj < 9:
                assert torch.equal(out[0, :, i, j], x[0, :, si, sj])
            else:
                assert out[0, :, i, j].tolist() == [-1.0, -2.0]


def test_extra_loss_is_added(tiny_mnist_root: Path) -> None:
    torch.manual_seed(0)
    model = T.build_model("mlp")
    ds = TensorDataset(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))
    loader = T.EpochLoader(ds, 8, shuffle=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    target = model.net[1].weight.detach().clone() + 1.0

    def pull(m: torch.nn.Module) -> torch.Tensor:
        return 1e3 * (m.net[1].weight - target).pow(2).sum()  # type: ignore[index]

    before = (model.net[1].weight - target).norm().item()
    T.train_epoch(model, loader, opt, extra_loss=pull)
    assert (model.net[1].weight - target).norm().item() != before


def test_cli_train_and_bad_options(tiny_mnist_root: Path, tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(f"epochs: 1\ntrain_subset: 64\ntest_subset: 32\ndata_dir: {tiny_mnist_root}\n")
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--config", str(config), "--out", str(tmp_path / "r"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["epochs"] == 1
    resumed = runner.invoke(app, ["train", "--out", str(tmp_path / "r"), "--resume", "--quiet"])
    assert resumed.exit_code == 0, resumed.output  # the saved config is reused; the run is complete
    assert "after 1 epochs" in resumed.output
    bad = runner.invoke(
        app, ["train", "--config", str(config), "--out", str(tmp_path / "r2"), "--model", "x"]
    )
    assert isinstance(bad.exception, ConfigError) and "unknown model 'x'" in str(bad.exception)


def test_place_model_channels_last_runs_convolutions_in_nhwc() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
    x = torch.randn(2, 3, 8, 8)
    want = net(x)
    placed = T.place_model(net, torch.device("cpu"), channels_last=True)
    got = placed(x)
    assert placed[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, want)


def test_result_of_a_run_from_before_cpu_time_was_measured_reads_back() -> None:
    epoch = {"epoch": 1, "loss": 0.5, "train_accuracy": 0.8, "test_accuracy": 0.75, "seconds": 2.0}
    old = {
        "model": "lenet5",
        "dataset": "mnist",
        "test_accuracy": 0.75,
        "epochs": 1,
        "seed": 0,
        "train_seconds": 2.0,
        "mean_epoch_seconds": 2.0,
        "parameters": 100,
        "world_size": 1,
        "torch_threads": 1,
        "checkpoint": "checkpoint.pt",
        "per_epoch": [{**epoch, "eval_seconds": 0.1, "lr": 0.01}],
        "config": {},
    }
    result = T.TrainResult.from_dict(old)
    assert result.mean_epoch_cpu_seconds == 0.0 and result.per_epoch[0].cpu_seconds is None
    assert result.to_dict()["per_epoch"] == old["per_epoch"]  # no cpu_seconds invented per epoch


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_folder_holding_a_run_is_refused_without_resume(tiny_mnist_root: Path, tmp_path: Path) -> None:
    T.train(_spec(tiny_mnist_root, epochs=1, train_subset=32, test_subset=16), tmp_path, progress=False)
    before = _files(tmp_path)
    with pytest.raises(
        ConfigError, match=r"already holds a float lenet5 model on mnist, 1 of 1 epochs.*--resume"
    ):
        T.train(_spec(tiny_mnist_root, model="mlp", epochs=1), tmp_path, progress=False)
    (tmp_path / "checkpoint.pt").unlink()
    before.pop("checkpoint.pt")
    for resume in (False, True):  # a metrics.json of some other run is not overwritten either
        with pytest.raises(ConfigError, match=r"holds a metrics.json but no checkpoint.pt"):
            T.train(_spec(tiny_mnist_root, epochs=1), tmp_path, resume=resume, progress=False)
    assert _files(tmp_path) == before


def test_resume_refuses_a_checkpoint_that_is_not_a_training_run(
    tiny_mnist_root: Path, tmp_path: Path
) -> None:
    from forms.errors import CheckpointError
    from forms.nn.checkpoint import save_checkpoint

    spec = _spec(tiny_mnist_root, epochs=1)
    state = {"stage": "compressed", "model": {"name": "lenet5", "kwargs": {}}, "state_dict": {}}
    save_checkpoint({**state, "config": spec.model_dump(mode="json")}, tmp_path / "c" / "checkpoint.pt")
    before = _files(tmp_path / "c")
    with pytest.raises(CheckpointError, match=r"holds a compressed lenet5 model .*not a training run"):
        T.train(spec, tmp_path / "c", resume=True, progress=False)
    with pytest.raises(ConfigError, match=r"already holds a compressed lenet5 model.*choose another --out"):
        T.train(spec, tmp_path / "c", progress=False)
    save_checkpoint({**state, "stage": "float"}, tmp_path / "f" / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"lacks the training state \(optimizer, scheduler, rng"):
        T.train(spec, tmp_path / "f", resume=True, progress=False)
    assert _files(tmp_path / "c") == before


@pytest.mark.parametrize("lr", [float("inf"), float("nan")])
def test_a_non_finite_learning_rate_is_refused(tiny_mnist_root: Path, lr: float) -> None:
    with pytest.raises(ConfigError, match="lr: Input should be a finite number"):
        _spec(tiny_mnist_root, lr=lr)


def test_a_diverging_run_stops_naming_the_epoch_and_saves_nothing(
    tiny_mnist_root: Path, tmp_path: Path
) -> None:
    spec = _spec(tiny_mnist_root, epochs=2, optimizer="sgd", schedule="constant", lr=1e38, train_subset=64)
    with pytest.raises(ConfigError, match=r"training diverged in epoch 1: parameter \S+ holds NaN or inf"):
        T.train(spec, tmp_path, progress=False)
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "metrics.json").exists()


def test_a_run_clears_the_temporary_files_a_kill_left(tiny_mnist_root: Path, tmp_path: Path) -> None:
    tmp_path.joinpath(".checkpoint.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    tmp_path.joinpath(".metrics.json.x.tmp").write_text("{")
    tmp_path.joinpath(".notes.txt.x.tmp").write_text("not ours")
    T.train(_spec(tiny_mnist_root, epochs=1, train_subset=32, test_subset=16), tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.txt.x.tmp", "checkpoint.pt", "metrics.json"]
