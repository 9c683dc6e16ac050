"""Compression benchmark: LeNet-5/MNIST accuracy vs fragment size R, filter pruning, W-step cost.

Parts (each resumable: a finished compression is reused, an interrupted one resumes):

- ``sweep``: 8-bit, R in {4, 8, 16, 32, 128}, no pruning: accuracy vs the float model;
- ``prune``: R = 8, 8-bit, filter pruning ratios: the largest ratio whose drop is <= 0.5 points,
  with the crossbar reduction factors;
- ``timing``: seconds of one ADMM W-step epoch (with the rho/2||W - Z + U||^2 term) vs one plain
  epoch, interleaved, same model, data and optimizer;
- ``report``: write the ``compress`` section of docs/benchmarks.md from the finished runs;
- ``resnet20``: write the ``compress-resnet20`` section from the ResNet-20 / Fashion-MNIST float model in
  ``--resnet-float`` and the run sets of ``--resnet-runs`` (each ``FOLDER=CONFIG``: one ``r<R>`` folder per
  fragment size, made by ``forms compress --config CONFIG`` as that section's commands say; R folders not
  there are listed as not run).

Usage: ``python benchmarks/bench_compress.py --part sweep`` (etc.; ``--part all`` runs every part).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import GPU_BASELINE_DROP, TARGET_DROP, machine_line, residual_layer_table, stamp, update_section
from forms.compress.admm import init_state, penalty_fn
from forms.compress.constraints import layer_constraints
from forms.compress.export import check_npz, export_npz
from forms.compress.pipeline import compress
from forms.compress.spec import CompressSpec
from forms.compress.state import saved_run_config
from forms.nn.checkpoint import load_checkpoint, model_from_checkpoint
from forms.nn.data import load_dataset
from forms.nn.train import EpochLoader, train_epoch

FRAGMENTS = (4, 8, 16, 32, 128)
PRUNE_RATIOS = (0.5, 0.7, 0.85)


def run(args: argparse.Namespace, name: str, spec: CompressSpec) -> dict[str, Any]:
    """Compress (or reuse) one configuration under ``args.out/name``."""
    spec = spec.replace(train_subset=args.train_subset)
    return compress(spec, args.checkpoint, Path(args.out) / name, resume=True, progress=False).to_dict()


def sweep(args: argparse.Namespace) -> None:
    """Accuracy vs R, 8-bit, no pruning."""
    for r in args.fragments:
        m = run(args, f"r{r}", CompressSpec().with_overrides({"crossbar.fragment_size": r}))
        print(f"R={r}: {m['accuracy_before']:.4f} -> {m['accuracy_after']:.4f}", flush=True)


def prune(args: argparse.Namespace) -> None:
    """Filter-pruning ratios at R = 8."""
    for ratio in args.ratios:
        spec = CompressSpec().with_overrides({"prune.ratio": ratio, "prune.granularity": "filter"})
        m = run(args, f"r8-filter{ratio}", spec)
        print(f"filter {ratio}: {m['accuracy_before']:.4f} -> {m['accuracy_after']:.4f}", flush=True)


def timing(args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved plain vs W-step epochs on the float model; writes ``out/timing.json``."""
    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt)
    data = load_dataset(ckpt["data"]["dataset"], "train")
    if args.train_subset is not None:
        data = TensorDataset(*(t[: args.train_subset] for t in data.tensors))
    spec = CompressSpec()
    state = init_state(model, layer_constraints(model, spec), spec)
    extra = penalty_fn(state, torch.device("cpu"))
    loader = EpochLoader(data, spec.schedule.batch_size, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=spec.schedule.lr)
    plain, wstep = [], []
    for i in range(args.timing_repeats):
        loader.set_epoch(i)
        plain.append(train_epoch(model, loader, opt)["seconds"])
        wstep.append(train_epoch(model, loader, opt, extra_loss=extra)["seconds"])
    result = {
        "plain_epoch_seconds": plain,
        "wstep_epoch_seconds": wstep,
        "ratio_of_medians": sorted(wstep)[len(wstep) // 2] / sorted(plain)[len(plain) // 2],
        "threads": torch.get_num_threads(),
        "images": len(data),
    }
    out = Path(args.out) / "timing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(result, flush=True)
    return result


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _subset_note(args: argparse.Namespace) -> str:
    if args.train_subset is None:
        return "`."
    return (
        f" --train-subset {args.train_subset}` (REDUCED: every ADMM and retraining epoch of these runs "
        f"sees only the first {args.train_subset} of the 60000 training images, to fit the shared CPU; "
        "accuracy is always on the full 10000-image test set). Runs on the full training set, where "
        "they finished, are in the second table."
    )


def _r_table(out: Path, title: str) -> list[str]:
    lines = [
        f"{title}:",
        "",
        "| R | float acc. | after ADMM | after hard projection | final | drop (points) | "
        "mixed-sign fragments | max final ‖W−Z‖/‖W‖ | `forms check` of the export |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in FRAGMENTS:
        m = _load(out / f"r{r}" / "metrics.json")
        if m is None:
            lines.append(f"| {r} | not run | | | | | | | |")
            continue
        export_npz(out / f"r{r}" / "checkpoint.pt", out / f"r{r}" / "model.npz")
        check = check_npz(out / f"r{r}" / "model.npz")
        verdict = "pass" if check.ok else "FAIL: " + "; ".join(check.violations)
        hist = m["admm"]["history"]
        res = f"{hist[-1]['residual_max']:.4f}" if hist else "-"
        lines.append(
            f"| {r} | {100 * m['accuracy_before']:.2f} | {100 * m['accuracy_admm']:.2f} | "
            f"{100 * m['accuracy_projected']:.2f} | {100 * m['accuracy_after']:.2f} | "
            f"{m['accuracy_drop_points']:.2f} | {m['fragments_mixed_sign']} / {m['fragments_total']} | "
            f"{res} | {verdict} |"
        )
    return lines


def _prune_table(out: Path) -> list[str]:
    lines = [
        "",
        "| filter ratio | final acc. | drop (points) | sparsity | crossbars dense 32-bit -> pruned 32-bit "
        "-> polarized / offset / differential | factors pruning x quantization x polarization = total |",
        "|---|---|---|---|---|---|",
    ]
    best = None
    tried = sorted(float(d.name.removeprefix("r8-filter")) for d in out.glob("r8-filter*"))
    for ratio in (0.0, *tried):
        m = _load(out / ("r8" if ratio == 0.0 else f"r8-filter{ratio}") / "metrics.json")
        if m is None:
            continue
        c, f = m["crossbars"], m["crossbars"]["factors"]
        if m["accuracy_drop_points"] <= 0.5:
            best = ratio
        lines.append(
            f"| {ratio} | {100 * m['accuracy_after']:.2f} | {m['accuracy_drop_points']:.2f} | "
            f"{m['sparsity']:.3f} | {c['dense_32bit']} -> {c['pruned_32bit']} -> {c['final']['polarized']} / "
            f"{c['final']['offset']} / {c['final']['differential']} | {f['pruning']:.2f} x "
            f"{f['quantization']:.2f} x {f['polarization']:.2f} = {f['total']:.2f} |"
        )
    lines += ["", f"Largest tried filter-pruning ratio with drop <= 0.5 points: {best}."]
    return lines


def _resnet_run_sets(pairs: list[str]) -> list[tuple[Path, Path, CompressSpec]]:
    """Parse ``--resnet-runs FOLDER=CONFIG`` entries into (folder, config path, spec of the config)."""
    sets = []
    for pair in pairs:
        folder, _, config = pair.partition("=")
        if not folder or not config:
            raise SystemExit(f"--resnet-runs {pair!r}: expected FOLDER=CONFIG, e.g. runs/r20=configs/c.yaml")
        sets.append((Path(folder), Path(config), CompressSpec.from_yaml(config)))
    return sets


def _same_schedule(run_config: dict[str, Any], spec: CompressSpec) -> bool:
    """Whether a finished run was made with ``spec`` (up to R and the execution-only settings)."""

    def strip(d: dict[str, Any]) -> dict[str, Any]:
        return {k: strip(v) if isinstance(v, dict) else v for k, v in d.items() if k != "fragment_size"}

    # saved_run_config drops the execution-only keys and fills fields added since the run
    return strip(saved_run_config(run_config)) == strip(saved_run_config(spec.model_dump(mode="json")))


def _epochs_per_r(spec: CompressSpec) -> int:
    """Training epochs one compression of ``spec`` runs: ADMM W-step epochs plus retraining epochs."""
    s = spec.schedule
    return s.admm_rounds * s.round_epochs + s.retrain_epochs


def _retrain_extras(spec: CompressSpec) -> str:
    """Retraining settings beyond lr and schedule, as ', weight decay ..., distillation ...' (or '')."""
    s = spec.schedule
    decay = s.weight_decay if s.retrain_weight_decay is None else s.retrain_weight_decay
    text = f", weight decay {decay:g}" if decay else ""
    if s.distill_weight:
        text += f", distilling the float model (weight {s.distill_weight:g}, T {s.distill_temperature:g})"
    return text


def _resnet_set_lines(folder: Path, config: Path, spec: CompressSpec, float_dir: Path) -> list[str]:
    """One run set of the ``compress-resnet20`` section: command, R table, accuracy and residual per round."""
    runs = {r: m for r in FRAGMENTS if (m := _load(folder / f"r{r}" / "metrics.json")) is not None}
    for r, m in runs.items():
        if not _same_schedule(m["config"], spec):
            raise SystemExit(
                f"{folder}/r{r} was not made with {config}: give its own config in --resnet-runs"
            )
    s = spec.schedule
    lines = [
        f"### {_epochs_per_r(spec)} epochs per R (`{config}`)",
        "",
        f"`OMP_NUM_THREADS=T forms compress --checkpoint {float_dir}/checkpoint.pt --config {config} "
        f"--fragment R --out {folder}/rR`, runs sharing the 2 cores: {s.admm_rounds} ADMM rounds x "
        f"{s.round_epochs} epoch(s) ({s.optimizer}, lr {s.lr}), rho {s.rho} x{s.rho_growth} per round, hard "
        f"projection, BN re-estimation, {s.retrain_epochs} masked-retraining epochs (lr {s.retrain_lr}, "
        f"cosine{_retrain_extras(spec)}), {spec.quant.weight_bits}-bit per-{spec.quant.scale} scales, "
        f"{spec.train_subset or 'all 60,000'} training images per epoch"
        + (
            f" less {spec.validation_images} held out (seed {spec.seed}) to choose the retraining epoch by "
            "validation accuracy."
            if spec.validation_images
            else "; the last retraining epoch is kept."
        ),
    ]
    if not runs:
        return [*lines, "", f"No run under `{folder}` has finished."]
    epochs = [h["seconds"] for m in runs.values() for h in m["retrain"]["history"]]
    epochs += [t for m in runs.values() for h in m["admm"]["history"] for t in h["wstep_epoch_seconds"]]
    by_threads: dict[int, list[str]] = {}
    for r, m in runs.items():
        by_threads.setdefault(m["torch_threads"], []).append(str(r))
    threads = "; ".join(f"T = {t} for R = {', '.join(rs)}" for t, rs in sorted(by_threads.items()))
    layouts = {"channels-last" if m["config"].get("channels_last") else "NCHW" for m in runs.values()}
    lines[-1] += (
        f" Epochs took {min(epochs) / 60:.1f}-{max(epochs) / 60:.1f} min each ({threads}; "
        f"{', '.join(sorted(layouts))})."
    )
    lines += [
        "",
        *_r_table(folder, "Accuracy vs R (test set, 10,000 images)"),
    ]
    for r, m in runs.items():
        acc = ", ".join(f"{100 * h['accuracy']:.2f}" for h in m["admm"]["history"])
        re = ", ".join(f"{100 * h['accuracy']:.2f}" for h in m["retrain"]["history"])
        chosen = ""
        if m["retrain"].get("validation_images"):
            val = ", ".join(f"{100 * h['validation_accuracy']:.2f}" for h in m["retrain"]["history"])
            chosen = f" (validation: {val}; kept epoch {m['retrain']['selected_epoch']})"
        lines += [
            "",
            f"R = {r}: test accuracy after each ADMM round {acc}; after each retraining epoch {re}{chosen}. "
            "Per-layer ‖W − Z‖ / ‖W‖ after each round:",
            "",
            *residual_layer_table(m["admm"]["history"]),
        ]
    return lines


def resnet20(args: argparse.Namespace) -> None:
    """Write the ``compress-resnet20`` section of docs/benchmarks.md from the runs in ``--resnet-runs``."""
    float_dir = Path(args.resnet_float)
    float_m = _load(float_dir / "metrics.json")
    if float_m is None:
        raise SystemExit(f"{float_dir / 'metrics.json'} not found: train the float model first")
    fc = float_m["config"]
    sets = _resnet_run_sets(args.resnet_runs)
    lines = [
        "## Compression: ResNet-20 / Fashion-MNIST (32x32 padded), full training set",
        "",
        f"Written {stamp()} on {machine_line()}. Float model: `forms train --model {fc['model']} --dataset "
        f"{fc['dataset']} --pad-to {fc['pad_to']} --epochs {fc['epochs']} --nproc {float_m['world_size']} "
        f"--threads {float_m['torch_threads']} --out {float_dir}` ({fc['optimizer']}, {fc['schedule']} lr "
        f"{fc['lr']}, weight decay {fc['weight_decay']}, shift {fc['shift']} px, flip {fc['flip']}, seed "
        f"{fc['seed']}): {100 * float_m['test_accuracy']:.2f}% after "
        f"{float_m['train_seconds'] / 60:.0f} min. Every R starts from it. Command of this section: "
        "`python benchmarks/bench_compress.py --part resnet20 "
        f"--resnet-float {float_dir} --resnet-runs {' '.join(args.resnet_runs)}`.",
        "",
        "Drop (points) against the plain ADMM baseline of issue 3 (GPU, float 94.7%, 6 rounds x 2 epochs + 8 "
        "retraining epochs = 20 epochs per R):",
        "",
    ]
    budgets = " | ".join(f"this tool, {_epochs_per_r(spec)} epochs (`{c.name}`)" for _, c, spec in sets)
    lines += [
        f"| R | baseline (20 epochs) | target | {budgets} |",
        "|---" * (3 + len(sets)) + "|",
    ]
    for r in FRAGMENTS:
        drops = [_load(folder / f"r{r}" / "metrics.json") for folder, _, _ in sets]
        if r not in GPU_BASELINE_DROP and all(m is None for m in drops):
            continue
        cells = [f"{m['accuracy_drop_points']:.2f}" if m else "not run" for m in drops]
        target = f"≤ {TARGET_DROP[r]}" if r in TARGET_DROP else "-"
        lines.append(f"| {r} | {GPU_BASELINE_DROP.get(r, '-')} | {target} | " + " | ".join(cells) + " |")
    for folder, config, spec in sets:
        lines += ["", *_resnet_set_lines(folder, config, spec, float_dir)]
    update_section("compress-resnet20", "\n".join(lines))
    print("\n".join(lines))


def _secs(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def report(args: argparse.Namespace) -> None:
    """Write the ``compress`` section of docs/benchmarks.md from the finished runs."""
    out = Path(args.out)
    d = CompressSpec().schedule
    lines = [
        "## Compression: LeNet-5 / MNIST (ADMM polarization + 8-bit quantization + filter pruning)",
        "",
        f"Written {stamp()} from runs measured on {machine_line()}; the 2 cores were shared with 4 other "
        "jobs, so timings are noisy and pessimistic. Float model: `forms train --model lenet5 --dataset "
        "mnist --epochs 10 --out runs/lenet5` (seed 0). Every compression uses the default schedule: "
        f"{d.admm_rounds} ADMM rounds x {d.round_epochs} epoch ({d.optimizer}, lr {d.lr}), rho {d.rho} "
        f"x{d.rho_growth} per round (cap {d.rho_max}), hard projection, BN re-estimation, "
        f"{d.retrain_epochs} masked-retraining epochs (lr {d.retrain_lr}, cosine), per-channel scales. "
        f"Command: `python benchmarks/bench_compress.py --part all{_subset_note(args)}",
        "",
    ]
    lines += _r_table(
        out, "Training subset: " + (f"first {args.train_subset} images" if args.train_subset else "all")
    )
    if args.full_out:
        lines += ["", *_r_table(Path(args.full_out), "Full training set (60000 images per epoch)")]
    lines += [
        "",
        "Per-layer ‖W − Z‖ / ‖W‖ after each ADMM round (R = 8):",
        "",
    ]
    m8 = _load(out / "r8" / "metrics.json")
    if m8 is not None:
        lines += residual_layer_table(m8["admm"]["history"])
    lines += [
        "",
        "Filter pruning at R = 8, 8-bit (every layer but the first and the logits layer). Crossbars: "
        "128x128, 2-bit cells; baselines are 32-bit weights on the differential (two-crossbar) "
        "encoding, so the polarization factor is FORMS vs a differential design "
        "(see forms.compress.counting).",
    ]
    for directory, title in (
        (out, "Training subset"),
        (Path(args.full_out) if args.full_out else None, "Full data"),
    ):
        if directory is not None:
            lines += ["", f"{title}:", *_prune_table(directory)]
    t = _load(out / "timing.json")
    if t is not None:
        lines += [
            "",
            f"W-step epoch vs plain epoch (LeNet-5, {t['images']} MNIST training images, batch 128, Adam, "
            f"{t['threads']} thread(s), interleaved): plain {_secs(t['plain_epoch_seconds'])} s, "
            f"W-step {_secs(t['wstep_epoch_seconds'])} s; ratio of medians "
            f"{t['ratio_of_medians']:.3f} (target <= 1.15).",
        ]
    lines += ["", "ResNet-20 / Fashion-MNIST: section `compress-resnet20` (`--part resnet20`)."]
    update_section("compress", "\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    """Parse arguments and run the chosen part."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["sweep", "prune", "timing", "report", "resnet20", "all"], default="all")
    p.add_argument("--checkpoint", default="runs/lenet5/checkpoint.pt")
    p.add_argument("--out", default="runs/bench-compress")
    p.add_argument("--fragments", type=int, nargs="+", default=list(FRAGMENTS))
    p.add_argument("--ratios", type=float, nargs="+", default=list(PRUNE_RATIOS))
    p.add_argument("--timing-repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--resnet-float",
        default="runs/resnet20-full/train",
        help="resnet20: the float ResNet-20's run folder.",
    )
    p.add_argument(
        "--resnet-runs",
        nargs="+",
        default=[
            "runs/resnet20-full=configs/compress-resnet20-full.yaml",
            "runs/resnet20-full-20=configs/compress-resnet20-full-20.yaml",
            "runs/resnet20-val=configs/compress-resnet20-full-20-val.yaml",
        ],
        help="resnet20: FOLDER=CONFIG per run set (one r<R> folder per fragment size, made with CONFIG).",
    )
    p.add_argument("--full-out", default=None, help="report: also tabulate full-data R runs found here.")
    p.add_argument(
        "--train-subset", type=int, default=None, help="Train (ADMM, retraining) on the first N images only."
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    parts = ["sweep", "prune", "timing", "report"] if args.part == "all" else [args.part]
    for part in parts:
        {"sweep": sweep, "prune": prune, "timing": timing, "report": report, "resnet20": resnet20}[part](args)


if __name__ == "__main__":
    main()
