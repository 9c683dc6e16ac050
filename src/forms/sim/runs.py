"""Resumable run records: what each Monte Carlo chip measured, kept in ``runs.json``.

A simulation programs ``spec.runs`` chips one after another; after each, its :class:`ChipRun` (accuracy,
agreement with the reference, and every layer's setup, conversions, clips and zero-skips) is appended
to ``out_dir/runs.json`` together with the spec, the number of images and the content digest of the
weights, integer layers and images (:func:`forms.nn.fingerprint.content_digest`). A resumed run
(:meth:`RunLog.load`) skips the chips recorded there only when all three are identical, so chips of
another checkpoint or image set are never reused; a damaged ``runs.json`` is an error naming it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forms.errors import CheckpointError
from forms.io import write_json_atomic
from forms.sim.result import LayerSetup, LayerZeroSkip
from forms.sim.simnet import SimulatedLayer
from forms.sim.spec import SimSpec


@dataclass(frozen=True)
class ChipLayer:
    """One layer's measurements on one chip."""

    setup: LayerSetup
    conversions: int
    """Partial sums converted (no skipping)."""
    clipped: int
    """Conversions that clipped."""
    zero_skip: LayerZeroSkip

    @classmethod
    def measure(cls, layer: SimulatedLayer) -> ChipLayer:
        """The record of ``layer``'s counters since its chip was programmed."""
        array, stats = layer.array, layer.array.stats
        setup = LayerSetup(
            path="bit_level" if stats.bit_level_calls else "exact_fast",
            engine=array.engine,
            adc_bits=array.adc.bits,
            adc_step=array.adc.step,
            adc_group_rows=array.encoded.group_rows,
            max_partial_sum=array.max_partial,
            input_scale=layer.quantizer.scale,
            input_signed=layer.quantizer.signed,
        )
        zero_skip = LayerZeroSkip.from_counts(
            stats.zero_skip, stats.columns, array.plan.steps, array.fragment_size
        )
        return cls(setup, stats.conversions, stats.clipped, zero_skip)

    def to_dict(self) -> dict[str, Any]:
        """The setup's fields, then ``conversions``, ``clipped`` and ``zero_skip``."""
        return {
            **self.setup.to_dict(),
            "conversions": self.conversions,
            "clipped": self.clipped,
            "zero_skip": self.zero_skip.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChipLayer:
        """Read back :meth:`to_dict`."""
        return cls(
            LayerSetup.from_dict(data),
            data["conversions"],
            data["clipped"],
            LayerZeroSkip.from_dict(data["zero_skip"]),
        )


@dataclass(frozen=True)
class ChipRun:
    """One programmed chip's results."""

    run: int
    """Index of the chip (0 first)."""
    seed: int
    """Seed it was programmed with (spec seed + run)."""
    accuracy: float
    prediction_agreement: float
    """Fraction of images whose prediction equals the exact integer reference's."""
    layers: dict[str, ChipLayer]

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (an entry of runs.json's ``runs``)."""
        return {
            "run": self.run,
            "seed": self.seed,
            "accuracy": self.accuracy,
            "prediction_agreement": self.prediction_agreement,
            "layers": {name: layer.to_dict() for name, layer in self.layers.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChipRun:
        """Read back :meth:`to_dict`."""
        layers = {name: ChipLayer.from_dict(layer) for name, layer in data["layers"].items()}
        return cls(data["run"], data["seed"], data["accuracy"], data["prediction_agreement"], layers)


def _read_record(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; :class:`CheckpointError` naming it when it is not one."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # invalid JSON or UTF-8
        record, problem = None, f"{type(exc).__name__}: {exc}"
    else:
        problem = f"it holds a JSON {type(record).__name__}, not an object"
    if not isinstance(record, dict):
        raise CheckpointError(
            f"{path} is not a record of simulated chips ({problem}); delete it to simulate every chip again, "
            "or choose another --out"
        )
    return record


@dataclass(frozen=True)
class RunLog:
    """``runs.json`` of one simulation: its finished chips and the spec, images and content they are for."""

    path: Path
    spec: SimSpec
    images: int
    content: str
    """Content digest of the weights, integer layers, test and calibration images the chips ran on."""

    def load(self) -> list[ChipRun]:
        """The chips recorded for this spec, image count and content (none when the file is absent or
        records another simulation); :class:`CheckpointError` naming the file when it is damaged."""
        if not self.path.is_file():
            return []
        saved = _read_record(self.path)
        same = (
            saved.get("spec") == self.spec.model_dump(mode="json")
            and saved.get("images") == self.images
            and saved.get("content") == self.content
        )
        if not same:
            return []
        try:
            runs = [ChipRun.from_dict(run) for run in saved["runs"]]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            runs, problem = [], f"{type(exc).__name__}: {exc}"
        else:
            problem = "" if [r.run for r in runs] == list(range(len(runs))) else "chips out of order"
        if problem or len(runs) > self.spec.runs:
            raise CheckpointError(
                f"{self.path} holds damaged chip records ({problem or 'more chips than --runs'}); "
                "delete it to simulate every chip again, or choose another --out"
            )
        return runs

    def save(self, runs: list[ChipRun]) -> None:
        """Write ``runs`` (atomically)."""
        record = {
            "spec": self.spec.model_dump(mode="json"),
            "images": self.images,
            "content": self.content,
            "runs": [run.to_dict() for run in runs],
        }
        write_json_atomic(record, self.path)
