"""Library entry point of ``forms simulate``: evaluate a compressed checkpoint on simulated crossbars.

:func:`simulate` loads the checkpoint and its dataset and calls :func:`simulate_model`, which

1. checks the mapping (refusing, e.g., a polarized encoding of mixed-sign fragments) and builds the
   mapping table;
2. calibrates one input scale per layer on ``calibration_images`` images (see
   :mod:`forms.sim.quant_inputs`);
3. runs the test images through the float model (dequantized weights), the *reference* (the same integer
   model as exact integer matmuls) and, for each Monte Carlo chip, the *simulator*;
4. returns (and writes to ``out_dir/metrics.json``) accuracy, reference_accuracy,
   prediction_agreement, adc_clip_rate, zero_skip per layer, per-run accuracies with mean and std, and
   the mapping table. Statistics (zero-skip) come from chip 0; clip rates sum over all chips.

Runs are resumable: each finished chip is recorded in ``out_dir/runs.json`` together with the spec, and
``resume=True`` skips chips already recorded for an identical spec.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from forms.errors import CheckpointError
from forms.intweights import IntegerLayer, integer_layers_from_checkpoint
from forms.sim.crossbar import LayerStats
from forms.sim.mapping import mapping_table
from forms.sim.quant_inputs import calibrate_inputs
from forms.sim.simnet import (
    build_simulated_model,
    program_chip,
    reset_stats,
    set_mode,
    simulated_layers,
)
from forms.sim.spec import SimSpec


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _predict(model: nn.Module, images: Tensor, batch_size: int, device: torch.device, tick: Any) -> Tensor:
    preds = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size].to(device)
            preds.append(model(x).argmax(-1).cpu())
            tick(x.shape[0])
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.int64)


def _layer_record(name: str, stats: LayerStats, layer: Any) -> dict[str, Any]:
    arr = layer.array
    return {
        "path": "bit_level" if stats.bit_level_calls else "exact_fast",
        "engine": arr.engine,
        "adc_bits": arr.adc.bits,
        "adc_step": arr.adc.step,
        "adc_group_rows": arr.encoded.group_rows,
        "max_partial_sum": arr.max_partial,
        "input_scale": layer.quantizer.scale,
        "input_signed": layer.quantizer.signed,
        "conversions": stats.conversions,
        "clipped": stats.clipped,
    }


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
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Simulate ``model`` (whose mapped layers hold ``layers``) on ``images``; return the metrics dict.

    ``calibration`` images set the activation scales; ``info`` entries (e.g. the checkpoint path) are
    copied into the metrics. See the module docstring for the metrics.
    """
    started = time.perf_counter()
    dev = resolve_device(device)
    mapping = mapping_table(layers, spec).to_dict()
    model = model.to(dev).eval()
    names = [layer.name for layer in layers]
    batches = [
        calibration[s : s + spec.batch_size].to(dev) for s in range(0, calibration.shape[0], spec.batch_size)
    ]
    quantizers = calibrate_inputs(model, names, batches, spec.input_bits, spec.input_percentile)
    sim = build_simulated_model(model, layers, quantizers, spec).to(dev)
    n = int(images.shape[0])
    run_file = Path(out_dir) / "runs.json" if out_dir is not None else None
    spec_json = spec.model_dump(mode="json")
    done: list[dict[str, Any]] = []
    if resume and run_file is not None and run_file.is_file():
        saved = json.loads(run_file.read_text())
        if saved.get("spec") == spec_json and saved.get("images") == n:
            done = saved["runs"]

    from forms.io import write_json_atomic
    from forms.nn.progress import make_progress

    with make_progress(progress) as bar:
        task = bar.add_task("simulate", total=n * (2 + spec.runs - len(done)), status="float")

        def tick(k: int) -> None:
            bar.advance(task, k)

        float_pred = _predict(model, images, spec.batch_size, dev, tick)
        bar.update(task, status="reference")
        set_mode(sim, "reference")
        ref_pred = _predict(sim, images, spec.batch_size, dev, tick)
        set_mode(sim, "simulate")
        for run in range(len(done), spec.runs):
            bar.update(task, status=f"chip {run + 1}/{spec.runs}")
            program_chip(sim, spec.seed + run)
            reset_stats(sim)
            pred = _predict(sim, images, spec.batch_size, dev, tick)
            record: dict[str, Any] = {
                "run": run,
                "seed": spec.seed + run,
                "accuracy": float((pred == labels).float().mean()) if n else 0.0,
                "prediction_agreement": float((pred == ref_pred).float().mean()) if n else 0.0,
                "layers": {},
            }
            for layer in simulated_layers(sim):
                st = layer.array.stats
                entry = _layer_record(layer.name, st, layer)
                entry["zero_skip"] = st.zero_skip_dict()
                entry["zero_skip"].update(
                    rounds_total=st.zero_skip.rounds_total,
                    columns=st.columns,
                    steps=layer.array.plan.steps,
                    rows=layer.array.fragment_size,
                    fragment_size=layer.array.fragment_size,
                )
                record["layers"][layer.name] = entry
            done.append(record)
            if run_file is not None:
                write_json_atomic({"spec": spec_json, "images": n, "runs": done}, run_file)
    metrics = _metrics(spec, done, labels, float_pred, ref_pred, mapping)
    metrics["elapsed_s"] = time.perf_counter() - started
    metrics["device"] = str(dev)
    metrics.update(info or {})
    if out_dir is not None:
        write_json_atomic(metrics, Path(out_dir) / "metrics.json")
    return metrics


def _metrics(
    spec: SimSpec,
    runs: list[dict[str, Any]],
    labels: Tensor,
    float_pred: Tensor,
    ref_pred: Tensor,
    mapping: dict[str, Any],
) -> dict[str, Any]:
    n = int(labels.shape[0])
    accs = [r["accuracy"] for r in runs]
    agrees = [r["prediction_agreement"] for r in runs]
    first = runs[0]["layers"]
    conv = {name: sum(r["layers"][name]["conversions"] for r in runs) for name in first}
    clip = {name: sum(r["layers"][name]["clipped"] for r in runs) for name in first}
    total_conv, total_clip = sum(conv.values()), sum(clip.values())
    zero_skip = {name: entry["zero_skip"] for name, entry in first.items()}
    zs_totals = {
        key: sum(z[key] for z in zero_skip.values())
        for key in ("conversions_total", "conversions_skipped_leading", "conversions_skipped_bitplane")
    }
    layers = {}
    for name, entry in first.items():
        layers[name] = {k: v for k, v in entry.items() if k not in ("zero_skip", "conversions", "clipped")}
        layers[name]["conversions_all_runs"] = conv[name]
        layers[name]["clipped_all_runs"] = clip[name]
    return {
        "spec": spec.model_dump(mode="json"),
        "encoding": spec.encoding,
        "images": n,
        "accuracy": statistics.fmean(accs),
        "accuracy_mean": statistics.fmean(accs),
        "accuracy_std": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
        "float_accuracy": float((float_pred == labels).float().mean()) if n else 0.0,
        "reference_accuracy": float((ref_pred == labels).float().mean()) if n else 0.0,
        "prediction_agreement": statistics.fmean(agrees),
        "runs": {
            "count": len(runs),
            "accuracy": accs,
            "prediction_agreement": agrees,
            "seeds": [r["seed"] for r in runs],
        },
        "adc_clip_rate": {
            "overall": total_clip / total_conv if total_conv else 0.0,
            "layers": {name: (clip[name] / conv[name] if conv[name] else 0.0) for name in first},
        },
        "zero_skip": zero_skip,
        "zero_skip_totals": zs_totals,
        "layers": layers,
        "mapping": mapping,
    }


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
) -> dict[str, Any]:
    """Simulate a compressed checkpoint (path or loaded dict) on its dataset's test split.

    The dataset comes from the checkpoint's ``data`` entry (:func:`forms.nn.data.load_dataset`); the
    integer weights from its ``integer_layers``. Returns the metrics of :func:`simulate_model` and writes
    them to ``out_dir/metrics.json`` when ``out_dir`` is given.
    """
    from forms.nn.checkpoint import load_checkpoint, model_from_checkpoint
    from forms.nn.data import load_dataset

    source = "checkpoint" if isinstance(checkpoint, dict) else str(checkpoint)
    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    layers = integer_layers_from_checkpoint(ckpt, source)
    model = model_from_checkpoint(ckpt, source)
    data = ckpt.get("data")
    if not isinstance(data, dict) or "dataset" not in data:
        raise CheckpointError(f"{source} has no 'data' entry naming its dataset; re-save it with forms train")
    options = {"pad_to": data.get("pad_to"), "channels": data.get("channels")}
    images, labels = _images(load_dataset(data["dataset"], "test", data_dir, **options), spec.limit)
    calib_set = load_dataset(data["dataset"], spec.calibration_split, data_dir, **options)
    calibration, _ = _images(calib_set, spec.calibration_images)
    info = {"checkpoint": source, "dataset": data["dataset"]}
    return simulate_model(
        spec, model, layers, images, labels, calibration, out_dir, resume, device, progress, info
    )
