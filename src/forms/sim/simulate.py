"""Library entry point of ``forms simulate``: evaluate a compressed checkpoint on simulated crossbars.

:func:`simulate` loads the checkpoint and its dataset and calls :func:`simulate_model`, which

1. checks the mapping (refusing, e.g., a polarized encoding of mixed-sign fragments) and builds the
   mapping table;
2. calibrates one input scale per layer on ``calibration_images`` images (see
   :mod:`forms.sim.quant_inputs`);
3. runs the test images through the float model (dequantized weights), the *reference* (the same integer
   model as exact integer matmuls) and, for each Monte Carlo chip, the *simulator*;
4. returns a :class:`~forms.sim.result.SimulationResult` (written to ``out_dir/metrics.json``):
   accuracy, reference_accuracy, prediction_agreement, adc_clip_rate, zero_skip per layer, per-run
   accuracies with mean and std, and the mapping table. Statistics (zero-skip) come from chip 0; clip
   rates sum over all chips.

Runs are resumable: each finished chip is recorded in ``out_dir/runs.json`` together with the spec and
the content digest of the weights, integer layers and images, and ``resume=True`` skips chips already
recorded for an identical spec and content (:mod:`forms.sim.runs`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from forms.errors import CheckpointError
from forms.intweights import IntegerLayer, check_layers_fit, integer_layers_from_checkpoint
from forms.io import remove_orphan_temp_files, write_json_atomic
from forms.nn.device import resolve_device
from forms.nn.fingerprint import content_digest
from forms.sim.mapping import MappingTable, mapping_table
from forms.sim.quant_inputs import calibrate_inputs
from forms.sim.result import LayerRecord, RunsSummary, SimulationResult, SimulationSource
from forms.sim.runs import ChipLayer, ChipRun, RunLog
from forms.sim.simnet import (
    build_simulated_model,
    program_chip,
    reset_stats,
    set_mode,
    simulated_layers,
)
from forms.sim.spec import SimSpec


def _fraction_equal(predictions: Tensor, targets: Tensor) -> float:
    """Fraction of ``predictions`` equal to ``targets`` (0 for no images)."""
    return float((predictions == targets).float().mean()) if predictions.shape[0] else 0.0


@dataclass(frozen=True)
class _TestSet:
    """The images a simulation predicts, in batches on one device, ticking a progress bar."""

    images: Tensor
    labels: Tensor
    batch_size: int
    device: torch.device
    tick: Callable[[int], None]

    def predict(self, model: nn.Module) -> Tensor:
        """Predicted classes of every image (CPU, int64)."""
        preds = []
        with torch.no_grad():
            for start in range(0, self.images.shape[0], self.batch_size):
                x = self.images[start : start + self.batch_size].to(self.device)
                preds.append(model(x).argmax(-1).cpu())
                self.tick(x.shape[0])
        return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.int64)

    def accuracy(self, predictions: Tensor) -> float:
        """Fraction of ``predictions`` equal to the labels."""
        return _fraction_equal(predictions, self.labels)


def simulated_model(
    spec: SimSpec, model: nn.Module, layers: list[IntegerLayer], batches: list[Tensor], device: torch.device
) -> nn.Module:
    """A copy of ``model`` with its mapped ``layers`` on crossbars (unprogrammed), each layer's input
    scale calibrated on the image ``batches`` under ``spec``'s input bits, percentile and significant
    bits (:func:`forms.sim.quant_inputs.calibrate_inputs`)."""
    names = [layer.name for layer in layers]
    quantizers = calibrate_inputs(
        model,
        names,
        batches,
        spec.input_bits,
        spec.input_percentile,
        significant_bits=spec.input_significant_bits,
    )
    return build_simulated_model(model, layers, quantizers, spec).to(device)


def _run_chip(sim: nn.Module, test: _TestSet, reference: Tensor, run: int, seed: int) -> ChipRun:
    """Program chip ``run`` with ``seed``, predict the test set on it and record what it measured."""
    program_chip(sim, seed)
    reset_stats(sim)
    pred = test.predict(sim)
    layers = {layer.name: ChipLayer.measure(layer) for layer in simulated_layers(sim)}
    return ChipRun(run, seed, test.accuracy(pred), _fraction_equal(pred, reference), layers)


def _runs_summary(runs: list[ChipRun]) -> RunsSummary:
    """Accuracies, agreements and seeds of the chips, in run order."""
    return RunsSummary(
        tuple(r.accuracy for r in runs),
        tuple(r.prediction_agreement for r in runs),
        tuple(r.seed for r in runs),
    )


def _layer_records(runs: list[ChipRun]) -> dict[str, LayerRecord]:
    """Each layer's setup on chip 0 with its conversions and clips summed over every chip."""
    return {
        name: LayerRecord(
            first.setup,
            sum(r.layers[name].conversions for r in runs),
            sum(r.layers[name].clipped for r in runs),
        )
        for name, first in runs[0].layers.items()
    }


RUNS_NAME = "runs.json"
METRICS_NAME = "metrics.json"


def _run_log(
    spec: SimSpec,
    model: nn.Module,
    layers: list[IntegerLayer],
    image_sets: tuple[Tensor, Tensor, Tensor],
    out_dir: str | Path | None,
) -> RunLog | None:
    """The chip log in ``out_dir`` (None without one), keyed by the content of everything the chips
    compute from: the model's weights, the integer layers, and the test images, labels and
    calibration images in ``image_sets``."""
    if out_dir is None:
        return None
    content = content_digest(model.state_dict(), [layer.state() for layer in layers], *image_sets)
    return RunLog(Path(out_dir) / RUNS_NAME, spec, int(image_sets[0].shape[0]), content)


def simulate_model(
    spec: SimSpec,
    model: nn.Module,
    layers: list[IntegerLayer],
    images: Tensor,
    labels: Tensor,
    calibration: Tensor,
    out_dir: str | Path | None = None,
    resume: bool = False,
    device: str = "auto",
    progress: bool = False,
    source: SimulationSource | None = None,
) -> SimulationResult:
    """Simulate ``model`` (whose mapped layers hold ``layers``) on ``images``; return its result.

    ``calibration`` images set the activation scales; ``source`` (the checkpoint and dataset) is
    recorded in the result. See the module docstring for the metrics.
    """
    started = time.perf_counter()
    dev = resolve_device(device)
    mapping: MappingTable = mapping_table(layers, spec)
    model = model.to(dev).eval()
    n = int(images.shape[0])
    log = _run_log(spec, model, layers, (images, labels, calibration), out_dir)
    done = log.load() if resume and log is not None else []
    if log is not None:
        remove_orphan_temp_files(log.path.parent, (RUNS_NAME, METRICS_NAME))
    batches = [
        calibration[s : s + spec.batch_size].to(dev) for s in range(0, calibration.shape[0], spec.batch_size)
    ]
    sim = simulated_model(spec, model, layers, batches, dev)

    from forms.nn.progress import make_progress

    with make_progress(progress) as bar:
        task = bar.add_task("simulate", total=n * (2 + spec.runs - len(done)), status="float")
        test = _TestSet(images, labels, spec.batch_size, dev, lambda k: bar.advance(task, k))
        float_pred = test.predict(model)
        bar.update(task, status="reference")
        set_mode(sim, "reference")
        ref_pred = test.predict(sim)
        set_mode(sim, "simulate")
        for run in range(len(done), spec.runs):
            bar.update(task, status=f"chip {run + 1}/{spec.runs}")
            done.append(_run_chip(sim, test, ref_pred, run, spec.seed + run))
            if log is not None:
                log.save(done)
    result = SimulationResult(
        spec=spec,
        images=n,
        float_accuracy=test.accuracy(float_pred),
        reference_accuracy=test.accuracy(ref_pred),
        runs=_runs_summary(done),
        zero_skip={name: layer.zero_skip for name, layer in done[0].layers.items()},
        layers=_layer_records(done),
        mapping=mapping,
        elapsed_s=time.perf_counter() - started,
        device=str(dev),
        source=source,
    )
    if out_dir is not None:
        write_json_atomic(result.to_dict(), Path(out_dir) / METRICS_NAME)
    return result


def _images(dataset: Any, limit: int | None) -> tuple[Tensor, Tensor]:
    x, y = dataset.tensors
    return (x[:limit], y[:limit]) if limit is not None else (x, y)


def simulate(
    spec: SimSpec,
    checkpoint: str | Path | dict[str, Any],
    out_dir: str | Path | None = None,
    resume: bool = False,
    data_dir: str | Path | None = None,
    device: str = "auto",
    progress: bool = False,
) -> SimulationResult:
    """Simulate a compressed checkpoint (path or loaded dict) on its dataset's test split.

    The dataset comes from the checkpoint's ``data`` entry (:func:`forms.nn.data.load_dataset`); the
    integer weights from its ``integer_layers``. Returns the result of :func:`simulate_model` and writes
    its metrics to ``out_dir/metrics.json`` when ``out_dir`` is given.
    """
    from forms.nn.checkpoint import load_checkpoint, model_from_checkpoint
    from forms.nn.data import load_dataset

    source = "checkpoint" if isinstance(checkpoint, dict) else str(checkpoint)
    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    layers = integer_layers_from_checkpoint(ckpt, source)
    model = model_from_checkpoint(ckpt, source)
    check_layers_fit(layers, model, source)
    data = ckpt.get("data")
    if not isinstance(data, dict) or "dataset" not in data:
        raise CheckpointError(f"{source} has no 'data' entry naming its dataset; re-save it with forms train")
    options = {"pad_to": data.get("pad_to"), "channels": data.get("channels")}
    images, labels = _images(load_dataset(data["dataset"], "test", data_dir, **options), spec.limit)
    calib_set = load_dataset(data["dataset"], spec.calibration_split, data_dir, **options)
    calibration, _ = _images(calib_set, spec.calibration_images)
    origin = SimulationSource(checkpoint=source, dataset=data["dataset"])
    return simulate_model(
        spec, model, layers, images, labels, calibration, out_dir, resume, device, progress, origin
    )
