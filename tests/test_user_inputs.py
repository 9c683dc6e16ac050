"""User models (``--model package.module:factory``) and user data (``--dataset <folder|.npz|.pt>``).

In-process tests cover the resolution and validation rules (:mod:`forms.nn.user_model`,
:mod:`forms.nn.user_data`); real-process tests run the installed ``forms`` on bad input and, end to
end, train a user factory on a generated ``.npz`` for one epoch and cost it with ``forms estimate``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cli_helpers import assert_clean_error, run_forms
from forms.errors import ConfigError, DataError
from forms.nn.checkpoint import load_checkpoint, model_from_checkpoint
from forms.nn.data import dataset_info, input_shape, load_dataset
from forms.nn.train_spec import TrainSpec
from forms.nn.user_model import make_model

FACTORY_MODULE = textwrap.dedent(
    '''
    """User models for the tests."""
    from torch import nn

    def tiny(in_channels, num_classes, image_size):
        return nn.Sequential(
            nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
            nn.Linear(4 * image_size * image_size, num_classes),
        )

    def fixed():
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))

    def broken(**kwargs):
        raise RuntimeError("boom")

    def not_a_model(in_channels):
        return "a string"

    NOT_CALLABLE = 3
    '''
)


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module ``usermodels_<n>`` of factories, importable here and by child processes."""
    folder = tmp_path / "pkg"
    folder.mkdir()
    name = f"usermodels_{abs(hash(str(tmp_path))) % 10**8}"
    (folder / f"{name}.py").write_text(FACTORY_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    return name


def write_npz(path: Path, overrides: dict[str, np.ndarray] | None = None, side: int = 8, n: int = 24) -> Path:
    """A small random uint8 grey 3-class dataset as a .npz; ``overrides`` replace (or add) arrays."""
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {
        "train_images": rng.integers(0, 256, (n, side, side), dtype=np.uint8),
        "train_labels": np.arange(n) % 3,
        "test_images": rng.integers(0, 256, (n // 2, side, side), dtype=np.uint8),
        "test_labels": np.arange(n // 2) % 3,
        **(overrides or {}),
    }
    np.savez(path, **arrays)  # type: ignore[arg-type]  # the stub types **kwds as allow_pickle too
    return path


def write_image_folder(root: Path, classes: tuple[str, ...] = ("cat", "dog"), rgb: bool = True) -> Path:
    """``root/{train,test}/<class>/*.png`` of 6x6 images (two per class and split)."""
    from PIL import Image

    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(2):
                shape = (6, 6, 3) if rgb else (6, 6)
                pixels = rng.integers(0, 256, shape, dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


def test_factory_gets_the_data_shape(user_module: str) -> None:
    model = make_model(f"{user_module}:tiny", in_channels=2, num_classes=5, image_size=6)
    assert model(torch.zeros(1, 2, 6, 6)).shape == (1, 5)
    assert isinstance(make_model(f"{user_module}:fixed", 1, 10, 8), nn.Sequential)


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        ("missing", "has no attribute 'missing'"),
        ("NOT_CALLABLE", "is a int, not a callable"),
        ("broken", "the factory raised RuntimeError: boom"),
        ("not_a_model", "returned a str, expected an nn.Module"),
    ],
)
def test_bad_factories_are_named(user_module: str, attribute: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_model(f"{user_module}:{attribute}")


def test_unimportable_module_and_bad_paths() -> None:
    with pytest.raises(ConfigError, match=r"cannot import module 'no_such_pkg.models'.*PYTHONPATH"):
        make_model("no_such_pkg.models:build")
    with pytest.raises(ConfigError, match=r"package.module:factory"):
        make_model("just_a_module:")
    with pytest.raises(ConfigError, match=r"unknown model 'lenet6'.*package.module:factory"):
        TrainSpec.from_dict({"model": "lenet6"})


def test_npz_dataset_loads_with_training_statistics(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "data.npz")
    info = dataset_info(str(path))
    assert (info.channels, info.image_size, info.num_classes) == (1, 8, 3)
    train = load_dataset(str(path), "train", pad_to=10, channels=3)
    images, labels = train.tensors
    assert images.shape == (24, 3, 10, 10) and labels.dtype == torch.int64
    unpadded = load_dataset(str(path), "train").tensors[0]
    assert abs(float(unpadded.mean())) < 1e-5 and abs(float(unpadded.std()) - 1) < 1e-2
    assert input_shape(str(path), pad_to=10) == (1, 10, 10)


def test_pt_dataset_of_float_images(tmp_path: Path) -> None:
    path = tmp_path / "data.pt"
    torch.save(
        {
            "train_images": torch.rand(6, 3, 4, 4),
            "train_labels": torch.tensor([0, 1, 0, 1, 0, 1]),
            "test_images": torch.rand(2, 3, 4, 4),
            "test_labels": torch.tensor([1, 0]),
        },
        path,
    )
    assert load_dataset(str(path), "test").tensors[0].shape == (2, 3, 4, 4)
    assert dataset_info(str(path)).num_classes == 2


def test_image_folder_dataset(tmp_path: Path) -> None:
    rgb = write_image_folder(tmp_path / "rgb")
    images, labels = load_dataset(str(rgb), "train").tensors
    assert images.shape == (4, 3, 6, 6) and labels.tolist() == [0, 0, 1, 1]
    grey = write_image_folder(tmp_path / "grey", rgb=False)
    assert dataset_info(str(grey)).channels == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train_images": np.zeros((4, 2, 3, 5, 5), np.uint8)}, r"expected train_images of shape"),
        ({"train_images": np.zeros((24, 8, 6), np.uint8)}, "at least one square image"),
        ({"test_images": np.full((12, 8, 8), 2.0)}, r"float test_images must lie in \[0, 1\]"),
        ({"train_labels": np.zeros(5, np.int64)}, "train_labels must be 24 integers"),
        ({"test_labels": np.full(12, 7)}, r"test labels outside 0..2"),
        ({"test_images": np.zeros((12, 6, 6), np.uint8)}, "test images are"),
    ],
)
def test_bad_arrays_are_named(tmp_path: Path, overrides: dict[str, np.ndarray], message: str) -> None:
    path = write_npz(tmp_path / "bad.npz", overrides)
    with pytest.raises(DataError, match=message):
        load_dataset(str(path), "train")


def test_bad_sources_are_named(tmp_path: Path) -> None:
    np.savez(tmp_path / "partial.npz", train_images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DataError, match="lacks train_labels"):
        dataset_info(str(tmp_path / "partial.npz"))
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=r"junk.pt: corrupt or unreadable"):
        dataset_info(str(tmp_path / "junk.pt"))
    folder = write_image_folder(tmp_path / "folder")
    (folder / "train" / "cat" / "2.bmp").write_bytes(b"BM")
    with pytest.raises(DataError, match=r"2.bmp: cannot read '.bmp' images; use PNG or JPEG"):
        dataset_info(str(folder))
    (tmp_path / "notest" / "train" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="notest/test: folder not found"):
        dataset_info(str(tmp_path / "notest"))


def test_cli_rejects_bad_user_model_and_data(tmp_path: Path, user_module: str) -> None:
    data = write_npz(tmp_path / "data.npz")
    bad_model = run_forms(
        "train", "--model", "no_such_pkg:net", "--dataset", str(data), "--out", "run", cwd=tmp_path
    )
    assert_clean_error(bad_model, "cannot import module 'no_such_pkg'")
    wrong = run_forms(
        "train", "--model", f"{user_module}:not_a_model", "--dataset", str(data), "--out", "r", cwd=tmp_path
    )
    assert_clean_error(wrong, "returned a str, expected an nn.Module")
    np.savez(tmp_path / "bad.npz", train_images=np.zeros((2, 4, 4), np.uint8))
    bad_data = run_forms("train", "--dataset", "bad.npz", "--out", "run", cwd=tmp_path)
    assert_clean_error(bad_data, "bad.npz: lacks train_labels")
    estimate = run_forms(
        "estimate", "--arch", "forms-8", "--model", f"{user_module}:NOT_CALLABLE", "--out", "e", cwd=tmp_path
    )
    assert_clean_error(estimate, "'NOT_CALLABLE' is a int, not a callable")
    assert not (tmp_path / "run").exists() and not (tmp_path / "e").exists()


def test_user_factory_trains_on_npz_then_estimates(tmp_path: Path, user_module: str) -> None:
    write_npz(tmp_path / "data.npz")
    model = f"{user_module}:tiny"
    common = ("--epochs", "1", "--batch-size", "8", "--device", "cpu", "--quiet")
    train = run_forms(
        "train", "--model", model, "--dataset", "data.npz", "--out", "run", *common, cwd=tmp_path
    )
    assert train.returncode == 0, train.stderr
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["model"]["name"] == model
    assert ckpt["data"]["dataset"] == str((tmp_path / "data.npz").resolve())
    rebuilt = model_from_checkpoint(ckpt)
    images, _ = load_dataset(ckpt["data"]["dataset"], "test").tensors
    assert rebuilt(images).shape == (12, 3)
    estimate = run_forms(
        "estimate", "--arch", "forms-8", "--model", model, "--input-shape", "1,8,8", "--num-classes", "3",
        "--out", "est", cwd=tmp_path,
    )  # fmt: skip
    assert estimate.returncode == 0, estimate.stderr
    assert (tmp_path / "est" / "estimate.json").is_file()


def test_image_folder_through_train_compress_simulate(tmp_path: Path, user_module: str) -> None:
    """A checkpoint records the user's factory and folder, so compress and simulate rebuild both."""
    write_image_folder(tmp_path / "images", rgb=False)
    steps = [
        ("train", "--model", f"{user_module}:tiny", "--dataset", "images", "--epochs", "1", "--out", "run"),
        ("compress", "--checkpoint", "run", "--admm-rounds", "1", "--round-epochs", "1", "--retrain-epochs",
         "1", "--validation-images", "1", "--out", "comp"),
        ("simulate", "--checkpoint", "comp", "--limit", "4", "--out", "sim"),
    ]  # fmt: skip
    for args in steps:
        proc = run_forms(*args, "--device", "cpu", "--quiet", cwd=tmp_path)
        assert proc.returncode == 0, f"{args[0]}: {proc.stderr}"
    assert load_checkpoint(tmp_path / "comp")["data"]["dataset"] == str((tmp_path / "images").resolve())
    assert (tmp_path / "sim" / "metrics.json").is_file()
