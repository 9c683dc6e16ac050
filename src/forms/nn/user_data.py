"""A user's own data as a ``--dataset``: an image folder, or a ``.npz`` / ``.pt`` file of arrays.

A dataset that is not a built-in name but a path (it names an existing folder, contains a ``/``, or
ends in ``.npz`` / ``.pt``) is read from there; the train/test split is the user's:

- **image folder**: ``<dir>/train/<class>/*.png`` and ``<dir>/test/<class>/*.png`` (PNG or JPEG,
  decoded by Pillow, which matplotlib installs). Classes are the sorted subfolder names of ``train/``,
  numbered from 0; ``test/`` may hold any of them. Images are read as grey (1 channel) when every
  image of the training split is grey, else as RGB (3 channels).
- **arrays**: a ``.npz`` (``numpy.savez``) or ``.pt`` (``torch.save`` of a dict of tensors) holding
  ``train_images``, ``train_labels``, ``test_images``, ``test_labels``. Images are (N, H, W) or
  (N, C, H, W), uint8 (0..255) or floating point in [0, 1]; labels are N integers from 0; the
  number of classes is the largest training label + 1.

Images must be square and both splits of one shape. Normalisation uses the per-channel mean and
standard deviation of the training images. Every problem raises :class:`DataError` naming the file
and what is expected, as the built-in data does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forms.errors import DataError
from forms.nn.data import DatasetInfo, Split

ARRAY_SUFFIXES = (".npz", ".pt")
"""File types of array datasets."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""File types an image-folder dataset may hold."""
SPLITS: tuple[Split, ...] = ("train", "test")
LAYOUT_HINT = (
    "expected a folder with train/<class>/*.png and test/<class>/*.png, or a .npz/.pt file holding "
    "train_images, train_labels, test_images, test_labels"
)


@dataclass(frozen=True)
class UserData:
    """A user dataset as loaded: its shape and normalisation, and uint8 or float images per split."""

    info: DatasetInfo
    splits: dict[Split, tuple[np.ndarray, np.ndarray]]


def is_user_source(name: str) -> bool:
    """Whether dataset ``name`` is a path to user data rather than a built-in dataset name."""
    path = Path(name).expanduser()
    return "/" in name or path.suffix in ARRAY_SUFFIXES or path.is_dir()


def user_source_path(name: str) -> str:
    """The absolute path of user data ``name``, as recorded in specs and checkpoints."""
    return str(Path(name).expanduser().resolve())


def user_data(name: str) -> UserData:
    """Load and validate user dataset ``name`` (cached per path and modification time)."""
    path = Path(name).expanduser().resolve()
    if not path.exists():
        raise DataError(f"{path}: dataset not found; {LAYOUT_HINT}")
    return _load(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _load(path: Path, mtime_ns: int) -> UserData:
    """Both splits of ``path`` validated, with the training set's statistics."""
    if path.is_dir():
        splits, num_classes = _read_folder(path)
    elif path.suffix in ARRAY_SUFFIXES:
        splits = {split: _check_arrays(path, split, *_read_arrays(path, split)) for split in SPLITS}
        num_classes = int(splits["train"][1].max()) + 1
    else:
        raise DataError(f"{path}: cannot read a '{path.suffix}' file as a dataset; {LAYOUT_HINT}")
    train = _unit_float(splits["train"][0])
    _, channels, side, _ = train.shape
    test_shape = splits["test"][0].shape[1:]
    if test_shape != train.shape[1:]:
        raise DataError(f"{path}: test images are {test_shape}, training images {train.shape[1:]}")
    for split, (_, labels) in splits.items():
        if int(labels.max()) >= num_classes:
            raise DataError(f"{path}: {split} labels outside 0..{num_classes - 1}")
    mean = tuple(float(v) for v in train.mean(axis=(0, 2, 3)))
    std = tuple(max(float(v), 1e-6) for v in train.std(axis=(0, 2, 3)))
    return UserData(DatasetInfo(channels, side, num_classes, mean, std), splits)


def _unit_float(images: np.ndarray) -> np.ndarray:
    """Images scaled to [0, 1] as float32."""
    scaled = images.astype(np.float32)
    return scaled / 255.0 if images.dtype == np.uint8 else scaled


def _read_arrays(path: Path, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """The raw ``<split>_images`` and ``<split>_labels`` arrays of a .npz or .pt file."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        else:
            import torch

            loaded = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(loaded, dict):
                raise DataError(
                    f"{path}: holds a {type(loaded).__name__}, not a dict of tensors; {LAYOUT_HINT}"
                )
            arrays = {str(k): np.asarray(v) for k, v in loaded.items()}
    except DataError:
        raise
    except Exception as exc:  # numpy and torch raise many types for foreign or truncated files
        raise DataError(
            f"{path}: corrupt or unreadable ({type(exc).__name__}: {exc}); {LAYOUT_HINT}"
        ) from None
    keys = (f"{split}_images", f"{split}_labels")
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise DataError(
            f"{path}: lacks {', '.join(missing)} (holds {', '.join(sorted(arrays)) or 'nothing'})"
        )
    return arrays[keys[0]], arrays[keys[1]]


def _check_arrays(
    path: Path, split: Split, images: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, C, H, W) and int64 labels of one split, or :class:`DataError` saying what is wrong."""
    if images.ndim == 3:
        images = images[:, None, :, :]
    kind_ok = images.dtype == np.uint8 or np.issubdtype(images.dtype, np.floating)
    if images.ndim != 4 or not kind_ok:
        raise DataError(
            f"{path}: expected {split}_images of shape (N, H, W) or (N, C, H, W), uint8 or float in "
            f"[0, 1]; got {images.dtype} {images.shape}"
        )
    if len(images) == 0 or images.shape[2] != images.shape[3]:
        raise DataError(f"{path}: {split}_images must hold at least one square image, got {images.shape}")
    if images.dtype != np.uint8 and not (
        np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    ):
        raise DataError(f"{path}: float {split}_images must lie in [0, 1]")
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{path}: {split}_labels must be {len(images)} integers (one per image), got {labels.dtype} "
            f"{labels.shape}"
        )
    if int(labels.min()) < 0:
        raise DataError(f"{path}: {split}_labels must be >= 0")
    return images, labels.astype(np.int64)


def _read_folder(root: Path) -> tuple[dict[Split, tuple[np.ndarray, np.ndarray]], int]:
    """Both splits of an image folder, and its number of classes (the training subfolders)."""
    folders = {split: root / split for split in SPLITS}
    for folder in folders.values():
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found; {LAYOUT_HINT}")
    classes = sorted(p.name for p in folders["train"].iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{folders['train']}: no class subfolders; {LAYOUT_HINT}")
    files = {split: _image_files(folder, classes) for split, folder in folders.items()}
    mode = "L" if all(_is_grey(f) for f, _ in files["train"]) else "RGB"
    splits = {split: _decode(pairs, mode) for split, pairs in files.items()}
    return splits, len(classes)


def _image_files(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """(file, class index) of every image under ``folder/<class>/``; refuses other files and classes."""
    pairs: list[tuple[Path, int]] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name not in classes:
            raise DataError(f"{sub}: class '{sub.name}' is not one of the training classes {classes}")
        for file in sorted(p for p in sub.iterdir() if p.is_file()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{file}: cannot read '{file.suffix}' images; use PNG or JPEG")
            pairs.append((file, classes.index(sub.name)))
    if not pairs:
        raise DataError(f"{folder}: no images; {LAYOUT_HINT}")
    return pairs


def _is_grey(file: Path) -> bool:
    """Whether image ``file`` has a single (grey) channel."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            return image.mode in ("1", "L", "I", "I;16", "F")
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{file}: not a readable image ({exc})") from None


def _decode(pairs: list[tuple[Path, int]], mode: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, C, H, W) in ``mode`` ("L" or "RGB") and int64 labels; all of one size."""
    from PIL import Image, UnidentifiedImageError

    images: list[np.ndarray] = []
    for file, _ in pairs:
        try:
            with Image.open(file) as image:
                array = np.asarray(image.convert(mode), dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"{file}: not a readable image ({exc})") from None
        if images and array.shape != images[0].shape:
            raise DataError(
                f"{file}: size {array.shape[:2]} differs from {pairs[0][0]} ({images[0].shape[:2]})"
            )
        images.append(array)
    stacked = np.stack(images)
    stacked = stacked[:, None] if mode == "L" else stacked.transpose(0, 3, 1, 2)
    if stacked.shape[2] != stacked.shape[3]:
        raise DataError(f"{pairs[0][0]}: images must be square, got {stacked.shape[2]}x{stacked.shape[3]}")
    return np.ascontiguousarray(stacked), np.array([label for _, label in pairs], dtype=np.int64)
