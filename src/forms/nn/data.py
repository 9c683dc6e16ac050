"""Datasets: IDX (MNIST, Fashion-MNIST) and CIFAR-10/100 (:mod:`forms.nn.cifar`) files, normalised tensors.

Where the files live: ``data_dir`` argument > ``$FORMS_DATA`` > ``~/.cache/forms/data``. Dataset
``name`` is read from ``<root>/<name>/``, or from ``<root>`` itself when it directly holds the files
(so ``--data-dir`` may point at any folder of IDX files). IDX files may be raw or gzipped.

:func:`load_dataset` returns a ``TensorDataset`` of float32 images (N, C, H, W) normalised with the
dataset's training-set mean/std, and int64 labels. ``pad_to`` zero-pads images (black border, before
normalisation) to a square side; ``channels`` repeats a grey channel (e.g. 1 -> 3) so CIFAR-shaped
models can train on MNIST-like data.

Every missing or corrupt file raises :class:`DataError` naming the file, what is wrong, and the
command that fetches it. A ``name`` that is a path (a folder of images, a ``.npz`` or ``.pt`` file)
is the user's own data, read by :mod:`forms.nn.user_data`.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from forms.errors import ConfigError, DataError
from forms.nn.cifar import CIFAR_FILES, load_cifar_split

if TYPE_CHECKING:  # torch is imported where tensors are made: `forms data fetch` and the CLI start without it
    import torch
    from torch.utils.data import TensorDataset

Split = Literal["train", "test"]


@dataclass(frozen=True)
class DatasetInfo:
    """Shape and normalisation constants of a dataset as stored (before padding/channel repeat)."""

    channels: int
    image_size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return asdict(self)


# Per-channel mean/std of each training set's pixels scaled to [0, 1]. MNIST: the widely used
# (0.1307, 0.3081) (PyTorch examples, mnist/main.py); Fashion-MNIST: (0.2860, 0.3530); CIFAR-10/100:
# the commonly quoted training-set statistics. tests/test_data.py recomputes them on the real files.
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(1, 28, 10, (0.1307,), (0.3081,)),
    "fashion-mnist": DatasetInfo(1, 28, 10, (0.2860,), (0.3530,)),
    "cifar10": DatasetInfo(3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetInfo(3, 32, 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
"""Every dataset :func:`load_dataset` knows."""

DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)

IDX_FILES: dict[Split, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
"""Standard IDX file names (optionally with ``.gz``) of each split."""


# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


DATASET_CHOICES = f"one of {', '.join(DATASET_NAMES)}, or a path to your own data (folder, .npz or .pt)"
"""What ``--dataset`` accepts, for help texts and error messages."""


def dataset_info(name: str) -> DatasetInfo:
    """Shape and normalisation of dataset ``name`` (a built-in name or a path to user data).

    Raises :class:`ConfigError` for an unknown name, :class:`DataError` for unreadable user data.
    """
    info = DATASETS.get(name)
    if info is not None:
        return info
    from forms.nn.user_data import is_user_source, user_data

    if is_user_source(name):
        return user_data(name).info
    raise ConfigError(f"unknown dataset '{name}'; choose {DATASET_CHOICES}")


def default_data_root() -> Path:
    """``$FORMS_DATA`` when set, else ``~/.cache/forms/data``."""
    env = os.environ.get("FORMS_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "forms" / "data"


def data_root(data_dir: str | Path | None = None) -> Path:
    """The data root: ``data_dir`` when given, else :func:`default_data_root`."""
    return Path(data_dir).expanduser() if data_dir is not None else default_data_root()


def fetch_hint(name: str, root: Path) -> str:
    """The command (or instruction) that puts dataset ``name`` under ``root``."""
    if name in ("mnist", "fashion-mnist"):
        return f"run `forms data fetch {name} --data-dir {root}`"
    folder, _, _ = CIFAR_FILES[name]
    archive = "cifar-10-python.tar.gz" if name == "cifar10" else "cifar-100-python.tar.gz"
    return (
        f"download {archive} from https://www.cs.toronto.edu/~kriz/cifar.html and extract it so that "
        f"{root / name / folder} exists"
    )


def read_idx(path: str | Path, hint: str = "") -> np.ndarray:
    """Read one IDX file (raw or gzip-compressed, judged by content) into a numpy array.

    Raises :class:`DataError` naming ``path`` when it is missing, not gzip/IDX, has an unknown type
    code, or holds fewer/more bytes than its header declares. ``hint`` (how to re-fetch) is appended.
    """
    p = Path(path)
    suffix = f"; {hint}" if hint else ""
    if not p.is_file():
        raise DataError(f"{p}: file not found{suffix}")
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise DataError(f"{p}: corrupt gzip data ({exc}){suffix}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{p}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'}){suffix}")
    code, ndim = raw[2], raw[3]
    dtype = IDX_DTYPES.get(code)
    if dtype is None:
        raise DataError(f"{p}: unknown IDX type code 0x{code:02x}{suffix}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{p}: truncated IDX header{suffix}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{p}: IDX header declares shape {shape} ({expected} bytes of data) but the file holds "
            f"{len(raw) - header} (truncated or corrupt){suffix}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def idx_header(path: str | Path) -> tuple[tuple[int, ...], bool] | None:
    """Cheap check of an IDX file without reading its data: (shape, size matches header), or None.

    Reads only the header (for gzip, the first block and the ISIZE trailer, i.e. the uncompressed
    size mod 2^32). None when the file is missing or its header does not parse.
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        with opener(p, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] not in IDX_DTYPES:
                return None
            dims = fh.read(4 * head[3])
        if gz:
            with p.open("rb") as fh:
                fh.seek(-4, os.SEEK_END)
                size = int.from_bytes(fh.read(4), "little")
        else:
            size = p.stat().st_size
    except (OSError, EOFError):
        return None
    if len(dims) < 4 * head[3]:
        return None
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(head[3]))
    expected = 4 + len(dims) + int(np.prod(shape, dtype=np.int64)) * IDX_DTYPES[head[2]].itemsize
    return shape, size == (expected % 2**32 if gz else expected)


def write_idx(array: np.ndarray, path: str | Path, compress: bool = False) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``compress``); inverse of :func:`read_idx`."""
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    code = codes[native]
    big = array.astype(IDX_DTYPES[code], copy=False)
    header = bytes([0, 0, code, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + big.tobytes()
    Path(path).write_bytes(gzip.compress(payload, mtime=0) if compress else payload)


def find_file(directory: Path, filename: str) -> Path | None:
    """``directory/filename`` or ``directory/filename.gz``, whichever exists (raw first)."""
    for candidate in (directory / filename, directory / f"{filename}.gz"):
        if candidate.is_file():
            return candidate
    return None


def dataset_dir(name: str, root: Path) -> Path:
    """Where dataset ``name`` lives under ``root``: ``root/name`` unless ``root`` holds it directly."""
    sub = root / name
    if sub.is_dir():
        return sub
    marker = IDX_FILES["train"][0] if name in ("mnist", "fashion-mnist") else CIFAR_FILES[name][0]
    if find_file(root, marker) is not None or (root / marker).is_dir():
        return root
    return sub


def load_idx_split(
    directory: Path, split: Split, hint: str, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) uint8 and labels (N,) of one IDX split; validated against each other."""
    arrays = []
    for filename in IDX_FILES[split]:
        path = find_file(directory, filename)
        if path is None:
            raise DataError(f"{directory / filename}[.gz]: file not found; {hint}")
        arrays.append((path, read_idx(path, hint)))
    (ipath, images), (lpath, labels) = arrays
    if images.ndim != 3 or images.dtype != np.uint8:
        found = f"{images.dtype} {images.shape}"
        raise DataError(f"{ipath}: expected uint8 images (N, H, W), got {found}; {hint}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{lpath}: {labels.shape} labels do not match the {len(images)} images in {ipath}; {hint}"
        )
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DataError(f"{lpath}: labels outside 0..{num_classes - 1}; {hint}")
    return images, labels.astype(np.int64)


def load_raw(name: str, split: Split, data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalised images (N, C, H, W) and int64 labels of ``name``/``split`` as stored.

    Built-in images are uint8; a user's may also be floating point in [0, 1].
    """
    info = dataset_info(name)
    if split not in IDX_FILES:
        raise ConfigError(f"unknown split '{split}'; choose 'train' or 'test'")
    if name not in DATASETS:
        from forms.nn.user_data import user_data

        return user_data(name).splits[split]
    root = data_root(data_dir)
    hint = fetch_hint(name, root)
    if name in CIFAR_FILES:
        images, labels = load_cifar_split(name, dataset_dir(name, root), split, hint, info.num_classes)
    else:
        images, labels = load_idx_split(dataset_dir(name, root), split, hint, info.num_classes)
        images = images[:, None, :, :]
    stored = (info.channels, info.image_size, info.image_size)
    if len(images) == 0 or images.shape[1:] != stored:
        raise DataError(
            f"{dataset_dir(name, root)}: the {split} split holds {len(images)} images of (C, H, W) "
            f"{tuple(images.shape[1:])}; {name} needs at least one of {stored}; {hint}"
        )
    return images, labels


def transform_images(
    images: np.ndarray, info: DatasetInfo, pad_to: int | None = None, channels: int | None = None
) -> torch.Tensor:
    """uint8 (0..255) or float ([0, 1]) (N, C, H, W) -> float32 normalised, zero-padded to ``pad_to``
    and channel-repeated."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32)
    if images.dtype == np.uint8:
        x.div_(255.0)
    n, c, h, w = x.shape
    if pad_to is not None:
        if pad_to < max(h, w):
            raise ConfigError(f"pad_to={pad_to} is smaller than the {h}x{w} images; use >= {max(h, w)}")
        top, left = (pad_to - h) // 2, (pad_to - w) // 2
        padded = torch.zeros(n, c, pad_to, pad_to)
        padded[:, :, top : top + h, left : left + w] = x
        x = padded
    mean = torch.tensor(info.mean).view(1, c, 1, 1)
    std = torch.tensor(info.std).view(1, c, 1, 1)
    x = (x - mean) / std
    if channels is not None and channels != c:
        if c != 1 or channels < 1:
            raise ConfigError(
                f"channels={channels}: only single-channel data can be repeated to more channels "
                f"(data has {c})"
            )
        x = x.expand(n, channels, *x.shape[2:]).contiguous()
    return x


def load_dataset(
    name: str,
    split: Split,
    data_dir: str | Path | None = None,
    pad_to: int | None = None,
    channels: int | None = None,
) -> TensorDataset:
    """Dataset ``name`` (mnist, fashion-mnist, cifar10, cifar100, or a path to user data), split
    ``train`` or ``test``.

    Returns a ``TensorDataset`` of (float32 normalised images (N, C, H, W), int64 labels), with
    images zero-padded to ``pad_to`` x ``pad_to`` and grey channels repeated to ``channels`` when set.
    Raises :class:`DataError` for a missing/corrupt file, :class:`ConfigError` for bad options.
    """
    import torch
    from torch.utils.data import TensorDataset

    info = dataset_info(name)
    images, labels = load_raw(name, split, data_dir)
    return TensorDataset(transform_images(images, info, pad_to, channels), torch.from_numpy(labels))


def holdout_mask(n: int, held: int, seed: int) -> torch.Tensor:
    """Boolean mask over ``n`` examples marking the ``held`` that a hold-out draws with ``seed``
    (:class:`forms.nn.holdout.Holdout`): the first ``held`` of a permutation seeded by ``seed`` (so
    fewer held with the same ``n`` and seed are a subset of more)."""
    import torch

    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(n, dtype=torch.bool)
    mask[order[:held]] = True
    return mask


def input_shape(name: str, pad_to: int | None = None, channels: int | None = None) -> tuple[int, int, int]:
    """(C, H, W) of the images :func:`load_dataset` returns for these options."""
    info = dataset_info(name)
    side = pad_to if pad_to is not None else info.image_size
    return (channels if channels is not None else info.channels, side, side)


def background_value(name: str, channels: int | None = None) -> tuple[float, ...]:
    """Per-channel normalised value of a black (0) pixel: the fill for padding augmentation."""
    info = dataset_info(name)
    values = tuple(-m / s for m, s in zip(info.mean, info.std, strict=True))
    if channels is not None and channels != len(values):
        values = values * channels
    return values
