"""Automatic per-layer pruning search: :func:`search` (float checkpoint -> chosen compressed model).

1. Sensitivity scan (:mod:`forms.compress.search_scan`): each prunable layer alone pruned one-shot at
   every ratio of the grid, accuracy on the held-out validation images.
2. Candidate allocations: per-layer ratios at every distinct tolerance the scan measured, nested
   (each prunes every layer at least as much as the one before), with their predicted crossbars and
   per-weight reduction; one that would leave a layer without weights (pruned filters and pruned
   rows of the next layer that miss each other, propagated) is dropped.
3. Trials: a full compression (:func:`forms.compress.pipeline.compress`: ADMM, projection, masked
   retraining with the epoch chosen on the validation images) at a candidate's ratios. With an
   accuracy floor and no budget the trials bisect the candidates for the most pruned one whose
   validation accuracy keeps the floor; with a crossbar budget they take the least pruned candidate
   predicted within the budget, relaxed (:func:`forms.compress.search_scan.relax`: each layer lowered
   to the smallest grid ratio still predicted within it), moving to the next while the trained model
   is over the budget.

The test set only measures: every choice is made on the validation images. Resumable: the scan file
is keyed by what it depends on and rewritten after each layer; each trial is a compression run in
``out/trials/<key>`` (the key covers the float weights and every setting of the run), which
:func:`compress` resumes or returns at once when finished; ``search.json`` is rewritten after every
trial. So rerunning with ``resume`` redoes no finished step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from torch.utils.data import TensorDataset

from forms.compress.constraints import layer_constraints
from forms.compress.counting import final_crossbars
from forms.compress.phases import accuracy
from forms.compress.pipeline import compress, load_data
from forms.compress.result import CompressResult
from forms.compress.search_scan import (
    Prediction,
    Scan,
    candidate_allocations,
    predict,
    prunable,
    relax,
    run_scan,
)
from forms.compress.search_spec import SearchSpec
from forms.compress.spec import CompressSpec
from forms.errors import CheckpointError, ConfigError
from forms.io import write_json_atomic
from forms.nn.checkpoint import load_checkpoint, model_from_checkpoint
from forms.nn.device import resolve_device
from forms.nn.epoch import place_model
from forms.nn.fingerprint import content_digest, fingerprint
from forms.nn.progress import make_progress

SEARCH_NAME = "search.json"
TRIALS_DIR = "trials"
KEY_CHARS = 16
"""Hex characters of a content key used in file and folder names."""


@dataclass(frozen=True)
class Candidate:
    """One allocation: the scan tolerance (points) it comes from, its ratios, its predicted counts."""

    tolerance: float
    """Accuracy loss (points) each layer was allowed in the scan to get these ratios."""
    ratios: dict[str, float]
    """Pruning ratio per layer name."""
    predicted: Prediction
    """Crossbars and reductions predicted from a one-shot projection of the float model."""
    relaxed: bool = False
    """True for an allocation lowered to the least pruning that fits the budget (:func:`relax`)."""


@dataclass(frozen=True)
class Trial:
    """One finished compression at a candidate's ratios, measured."""

    candidate: int
    """Index of the candidate in :attr:`SearchResult.candidates`."""
    folder: str
    """Run folder of the trial's compression (under ``trials/``)."""
    validation_accuracy: float
    """Accuracy on the held-out validation images of the kept retraining epoch."""
    test_accuracy: float
    """Test accuracy of the compressed model."""
    crossbars: int
    """Final crossbars of the usable design (physical count; polarized where fragments allow)."""
    physical_total: float
    """Physical crossbar reduction (whole crossbars per layer)."""
    per_weight_total: float
    """Per-weight reduction: pruning x quantization x polarization."""
    meets_floor: bool
    """Validation accuracy at or above the floor (True without one)."""
    meets_budget: bool
    """Crossbars within the budget (True without one)."""

    @property
    def feasible(self) -> bool:
        """Whether the trial meets every goal of the search."""
        return self.meets_floor and self.meets_budget


@dataclass(frozen=True)
class SearchResult:
    """What a search measured and chose: ``search.json``."""

    source_checkpoint: str
    """The float checkpoint searched."""
    float_validation_accuracy: float
    """The float model's accuracy on the validation images."""
    floor: float | None
    """The validation accuracy floor (from accuracy_floor or max_drop_points), or None."""
    budget: int | None
    """The crossbar budget, or None."""
    scan: Scan
    """The per-layer sensitivity scan."""
    candidates: list[Candidate]
    """Allocations in order of increasing pruning."""
    trials: list[Trial]
    """Compressions run, in the order they ran."""
    chosen: int | None
    """Index in :attr:`trials` of the chosen trial, or None when no trial meets the goals."""

    @property
    def best(self) -> Trial | None:
        """The chosen trial, or None."""
        return None if self.chosen is None else self.trials[self.chosen]

    def to_dict(self) -> dict[str, Any]:
        """The ``search.json`` content."""
        d = {k: v for k, v in asdict(self).items() if k != "scan"}
        d["scan"] = self.scan.to_dict()
        d["met"] = self.chosen is not None
        return d


@dataclass(frozen=True)
class SearchJob:
    """The checked inputs of a search and how it runs its trials."""

    spec: SearchSpec
    """The search settings."""
    checkpoint: str
    """Path of the float checkpoint."""
    out: Path
    """The search's output folder."""
    source_fp: str
    """Fingerprint of the float checkpoint (part of every resumable key)."""
    progress: bool
    """Show progress bars."""
    log: Callable[[str], None]
    """Where progress lines go."""
    predict: Callable[[dict[str, float]], Prediction]
    """Predicted counts of an allocation (:func:`forms.compress.search_scan.predict`, float model)."""


def search(
    spec: SearchSpec,
    checkpoint: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = lambda line: None,
) -> SearchResult:
    """Search per-layer pruning ratios for the float model in ``checkpoint`` (see the module doc).

    Writes ``out_dir/search.json`` and one compression run per trial under ``out_dir/trials``;
    ``log`` receives one line per step. Raises :class:`ConfigError` when ``out_dir`` holds a search
    and ``resume`` is false, :class:`CheckpointError` for a checkpoint that is not a float one.
    """
    out = Path(out_dir)
    _check_fresh(out, resume)
    src = load_checkpoint(checkpoint)
    if src["stage"] != "float":
        raise CheckpointError(
            f"{checkpoint} is a '{src['stage']}' checkpoint; search on the float checkpoint"
        )
    data = load_data(src, spec.compress)
    spec = spec.model_copy(update={"compress": data.plan.spec})  # the float model's hold-out resolved
    cspec, validation = spec.compress, data.validation
    if validation is None:
        raise ConfigError(
            f"{checkpoint} records no held-out images (forms train --validation-images), so the search "
            "has none to measure on: set compress.validation_images"
        )
    device = resolve_device(cspec.device)
    model = place_model(model_from_checkpoint(src, source=str(checkpoint)), device)
    scan_set = _first(validation, spec.scan_images)
    source_fp = fingerprint(src["state_dict"])
    constraints = layer_constraints(model, cspec)
    key = content_digest(source_fp, _scan_settings(spec))
    out.mkdir(parents=True, exist_ok=True)
    with make_progress(progress) as bar:
        scan = run_scan(
            model,
            prunable(constraints, cspec),
            spec.ratios,
            (lambda: accuracy(model, scan_set, cspec, device), len(scan_set)),
            (out / f"scan-{key[:KEY_CHARS]}.json", key),
            bar,
        )
    float_val = accuracy(model, validation, cspec, device)
    floor = spec.accuracy_floor
    if spec.max_drop_points is not None:
        floor = float_val - spec.max_drop_points / 100

    def predicted(ratios: dict[str, float]) -> Prediction:
        return predict(model, constraints, cspec, ratios)

    every = [Candidate(t, ratios, predicted(ratios)) for t, ratios in candidate_allocations(scan)]
    candidates = [c for c in every if c.predicted.empty_layers == 0]
    job = SearchJob(spec, str(checkpoint), out, source_fp, progress, log, predicted)
    log(
        f"float model: validation accuracy {float_val:.4f}; {len(candidates)} candidate allocations "
        f"({len(every) - len(candidates)} more would leave a layer without weights)"
    )
    result = SearchResult(str(checkpoint), float_val, floor, spec.crossbar_budget, scan, candidates, [], None)
    return _run_trials(job, result)


def _check_fresh(out: Path, resume: bool) -> None:
    """Refuse a folder holding a search unless ``resume``."""
    held = (out / SEARCH_NAME).exists() or (out / TRIALS_DIR).exists() or any(out.glob("scan-*.json"))
    if held and not resume:
        raise ConfigError(
            f"{out} already holds a search; pass --resume to continue it or choose another --out"
        )


def _first(dataset: TensorDataset, n: int | None) -> TensorDataset:
    """The first ``n`` examples of ``dataset`` (all of them for None)."""
    return dataset if n is None else TensorDataset(*(t[:n] for t in dataset.tensors))


def _scan_settings(spec: SearchSpec) -> dict[str, Any]:
    """Every setting the scan depends on (its key, with the float weights)."""
    c = spec.compress
    return {
        "crossbar": c.crossbar.model_dump(mode="json"),
        "quant": c.quant.model_dump(mode="json"),
        "prune": c.prune.model_dump(mode="json"),
        "data": [
            c.seed,
            c.validation_images,
            c.validation_seed,
            c.validation_pool,
            c.train_subset,
            c.data_dir,
        ],
        "ratios": spec.ratios,
        "scan_images": spec.scan_images,
    }


def _run_trials(job: SearchJob, result: SearchResult) -> SearchResult:
    """Run the trials the goal calls for (module doc, step 3); the result with the chosen one."""
    trials: list[Trial] = []

    def measure(index: int) -> Trial:
        trial = _trial(job, result, index)
        trials.append(trial)
        write_json_atomic(_with(result, trials).to_dict(), job.out / SEARCH_NAME)
        return trial

    budget = job.spec.crossbar_budget
    if budget is None:
        _bisect(len(result.candidates), measure, job.spec.max_trials)
    else:
        within = [c for c in result.candidates if c.predicted.crossbars <= budget]
        tried: set[int] = set()
        for candidate in within:
            index = _relaxed(job, result.candidates, candidate, budget)
            if index in tried:
                continue
            tried.add(index)
            if measure(index).meets_budget or len(tried) == job.spec.max_trials:
                break
    final = _with(result, trials)
    write_json_atomic(final.to_dict(), job.out / SEARCH_NAME)
    return final


def _relaxed(job: SearchJob, candidates: list[Candidate], candidate: Candidate, budget: int) -> int:
    """Index in ``candidates`` of ``candidate`` relaxed to the least pruning predicted within ``budget``
    (appended when new)."""
    ratios = relax(candidate.ratios, job.spec.ratios, lambda r: job.predict(r).crossbars <= budget)
    for i, known in enumerate(candidates):
        if known.ratios == ratios:
            return i
    candidates.append(Candidate(candidate.tolerance, ratios, job.predict(ratios), relaxed=True))
    return len(candidates) - 1


def _bisect(n: int, measure: Callable[[int], Trial], max_trials: int) -> None:
    """Measure candidates to find the largest index that is feasible, assuming feasibility falls with
    the index (more pruning, lower accuracy): a bisection over 0..n-1, at most ``max_trials`` steps."""
    lo, hi = 0, n - 1
    for _ in range(max_trials):
        if lo > hi:
            return
        mid = (lo + hi + 1) // 2
        if measure(mid).feasible:
            lo = mid + 1
        else:
            hi = mid - 1


def _with(result: SearchResult, trials: list[Trial]) -> SearchResult:
    """``result`` with ``trials`` and the chosen one: the most pruned feasible trial without a budget,
    the least pruned within it with one."""
    feasible = [i for i, t in enumerate(trials) if t.feasible]
    pick = max if result.budget is None else min
    chosen = pick(feasible, key=lambda i: trials[i].candidate) if feasible else None
    return replace(result, trials=list(trials), chosen=chosen)


def _trial(job: SearchJob, result: SearchResult, index: int) -> Trial:
    """Compress at candidate ``index``'s ratios (resumed or reused when its run folder has it)."""
    candidate = result.candidates[index]
    spec: CompressSpec = job.spec.compress.with_overrides({"prune.layer_ratios": candidate.ratios})
    key = content_digest(job.source_fp, spec.model_dump(mode="json"))
    folder = job.out / TRIALS_DIR / key[:KEY_CHARS]
    job.log(
        f"trial at candidate {index} of {len(result.candidates)}: tolerance {candidate.tolerance:.2f} "
        f"points, ratios {_ratios_text(candidate.ratios)}; predicted {candidate.predicted.crossbars} "
        f"crossbars, x{candidate.predicted.per_weight_total:.1f} per weight; run in {folder}"
    )
    m = compress(spec, job.checkpoint, folder, resume=True, progress=job.progress)
    trial = _measured(index, folder, m, result)
    job.log(
        f"candidate {index}: validation {trial.validation_accuracy:.4f}, test {trial.test_accuracy:.4f}, "
        f"{trial.crossbars} crossbars (x{trial.physical_total:.2f}), x{trial.per_weight_total:.1f} per "
        f"weight: {'meets' if trial.feasible else 'misses'} the goal"
    )
    return trial


def _measured(index: int, folder: Path, m: CompressResult, result: SearchResult) -> Trial:
    """The :class:`Trial` of compression result ``m`` against ``result``'s floor and budget."""
    kept = m.retrain.history[m.retrain.selected_epoch - 1].validation_accuracy
    assert kept is not None  # SearchSpec requires validation images and retraining epochs
    crossbars = final_crossbars(m.crossbars)
    return Trial(
        candidate=index,
        folder=str(folder),
        validation_accuracy=kept,
        test_accuracy=m.accuracy_after,
        crossbars=crossbars,
        physical_total=m.reduction.physical.total,
        per_weight_total=m.reduction.per_weight.total,
        meets_floor=result.floor is None or kept >= result.floor,
        meets_budget=result.budget is None or crossbars <= result.budget,
    )


def _ratios_text(ratios: dict[str, float]) -> str:
    """'features.3=0.7 classifier.1=0.9' (or 'none')."""
    return " ".join(f"{name}={r:g}" for name, r in ratios.items()) or "none"
