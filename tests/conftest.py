"""Fixtures shared by several test modules (each module opts in by naming them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nn_helpers import write_idx_dataset


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Run a module's tests on one torch thread: tiny models train far faster so than on oversubscribed
    cores (shared CI machine), and module fixtures that train (request this fixture) then run on the
    same thread count as the tests that compare with them. A module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding a generated MNIST of 192 training and 64 test images."""
    root = tmp_path_factory.mktemp("data")
    write_idx_dataset(root / "mnist", 192, 64)
    return root
