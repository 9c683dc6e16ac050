"""``examples/device_variation.py`` runs at a small size: compressed, simulated under variation, costed."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "device_variation.py"


def test_example_device_variation(capsys: pytest.CaptureFixture[str]) -> None:
    main = runpy.run_path(str(EXAMPLE))["main"]
    accuracy = main(images=128, epochs=1, sigmas=(0.0, 1.0))
    assert set(accuracy) == {0.0, 1.0} and all(0.0 <= a <= 1.0 for a in accuracy.values())
    out = capsys.readouterr().out
    assert all(f"{arch}:" in out for arch in ("forms-8", "isaac-opt", "prime"))
