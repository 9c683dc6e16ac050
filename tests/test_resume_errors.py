"""Damaged or foreign run state, refused overwrites and non-finite numbers, through the real ``forms``.

Every case runs the installed console script as a separate process, as a user would, and asserts the
exit status, one clear message on stderr with no traceback, and that the files already there are
untouched. The runs the cases start from are made in this process with tiny settings; the cases'
``forms`` processes (mostly importing torch) run side by side, then each case is one test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import assert_clean_error, fingerprints, run_forms
from compress_helpers import make_float_checkpoint, tiny_spec
from forms.compress.export import export_npz
from forms.compress.pipeline import compress
from forms.nn.checkpoint import load_checkpoint, save_checkpoint
from forms.sim.simulate import simulate
from forms.sim.spec import SimSpec

QUIET = ("--quiet", "--device", "cpu")


@dataclass(frozen=True)
class Runs:
    """Finished runs to copy from: data, a float run, a compressed run, its export and a simulation."""

    data: Path
    float_run: Path
    compressed_run: Path
    npz: Path
    simulation: Path
    compress_config: Path
    """YAML of the compression settings the compressed run used."""

    @property
    def compressed(self) -> Path:
        """The compressed checkpoint."""
        return self.compressed_run / "checkpoint.pt"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("runs")
    ckpt, data = make_float_checkpoint(root, epochs=1)
    spec = tiny_spec(data, schedule={"admm_rounds": 0, "retrain_epochs": 0})
    (root / "compress.yaml").write_text(spec.to_yaml())
    compress(spec, ckpt, root / "c", progress=False)
    export_npz(root / "c" / "checkpoint.pt", root / "model.npz")
    sim_spec = SimSpec.from_dict({"limit": 16, "runs": 2, "devices": {"variation": 0.2}})
    simulate(sim_spec, root / "c" / "checkpoint.pt", root / "sim", data_dir=data, device="cpu")
    return Runs(data, ckpt.parent, root / "c", root / "model.npz", root / "sim", root / "compress.yaml")


def _copy(src: Path, dst: Path) -> Path:
    """A copy of the file or folder ``src`` at ``dst``."""
    (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    return dst


@dataclass(frozen=True)
class Case:
    """A ``forms`` command that must fail cleanly, and what must hold after it."""

    args: list[str]
    fragments: tuple[str, ...]
    """Text the message on stderr must hold (case and line wraps aside)."""
    watched: tuple[Path, ...] = ()
    """Files and folders the command must leave untouched."""
    absent: tuple[Path, ...] = ()
    """Files the command must not create."""
    status: int = 2


# Item 4: damaged or foreign resume state.


def _compress_args(runs: Runs, checkpoint: Path, out: Path, *extra: str) -> list[str]:
    """``forms compress`` with the settings of the compressed run (so a finished run there is reusable)."""
    args = ["compress", "--checkpoint", str(checkpoint), "--out", str(out)]
    return [*args, "--config", str(runs.compress_config), *QUIET, *extra]


def _damaged_state(runs: Runs, tmp: Path, write: Callable[[Path], object], message: str) -> Case:
    """compress --resume over the compress_state.pt that ``write`` makes."""
    out = tmp / "run"
    out.mkdir()
    write(out / "compress_state.pt")
    args = _compress_args(runs, runs.float_run / "checkpoint.pt", out, "--resume")
    return Case(args, (message, "--out"), (out, runs.float_run))


def corrupt_compress_state(runs: Runs, tmp: Path) -> Case:
    """compress --resume over a compress_state.pt that is not a whole PyTorch file."""
    return _damaged_state(
        runs, tmp, lambda p: p.write_bytes(b"PK\x03\x04 half"), "compress_state.pt is damaged"
    )


def bare_tensor_compress_state(runs: Runs, tmp: Path) -> Case:
    """compress --resume over a compress_state.pt holding a bare tensor."""
    return _damaged_state(
        runs, tmp, lambda p: torch.save(torch.zeros(4), p), "it holds a Tensor, not a compression"
    )


def corrupt_metrics_of_finished_compression(runs: Runs, tmp: Path) -> Case:
    """compress --resume of a finished run whose metrics.json is cut short."""
    out = _copy(runs.compressed_run, tmp / "run")
    (out / "metrics.json").write_text('{"model": "lenet5", "accu')
    args = _compress_args(runs, runs.float_run / "checkpoint.pt", out, "--resume")
    return Case(args, ("metrics.json is damaged", "delete both files"), (out,))


def _damaged_run_log(runs: Runs, tmp: Path, content: str) -> Case:
    """simulate --resume over a runs.json holding ``content``."""
    out = _copy(runs.simulation, tmp / "sim")
    (out / "runs.json").write_text(content)
    args = ["simulate", "--checkpoint", str(runs.compressed), "--out", str(out), "--data-dir", str(runs.data),
            "--limit", "16", "--runs", "2", "--variation", "0.2", "--resume", *QUIET]  # fmt: skip
    return Case(args, ("runs.json is not a record of simulated chips", "delete it"), (out,))


def corrupt_run_log(runs: Runs, tmp: Path) -> Case:
    """simulate --resume over a runs.json that is not JSON."""
    return _damaged_run_log(runs, tmp, "{ not json")


def list_run_log(runs: Runs, tmp: Path) -> Case:
    """simulate --resume over a runs.json holding a list."""
    return _damaged_run_log(runs, tmp, "[]")


def train_resume_on_compressed_run(runs: Runs, tmp: Path) -> Case:
    """train --resume in a folder holding a compressed checkpoint."""
    out = _copy(runs.compressed_run, tmp / "run")
    args = ["train", "--out", str(out), "--resume", "--data-dir", str(runs.data), *QUIET]
    return Case(args, ("holds a compressed lenet5 model", "not a training run"), (out,))


# Item 5: `forms check` on damaged files (not an archive: status 2; a damaged member: a violation, 1).


def _crc_damaged(good: bytes, path: Path) -> None:
    """``good`` with the last data byte of its first member flipped, written to ``path``."""
    path.write_bytes(good)
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[0]
    data = bytearray(good)
    name_len, extra_len = np.frombuffer(good[info.header_offset + 26 : info.header_offset + 30], "<u2")
    data[info.header_offset + 30 + name_len + extra_len + info.compress_size - 1] ^= 0xFF
    path.write_bytes(bytes(data))


def _with(good: Path, path: Path, **changes: np.ndarray) -> None:
    """The archive ``good`` with some arrays replaced, written to ``path``."""
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    with path.open("wb") as fh:
        np.savez(fh, **{**arrays, **changes})


def _check(tmp: Path, make: Callable[[Path], object], message: str, status: int) -> Case:
    """check on the file ``make`` writes."""
    path = tmp / "model.npz"
    make(path)
    return Case(["check", str(path)], (message,), (path,), status=status)


def check_empty(runs: Runs, tmp: Path) -> Case:
    """check on an empty file."""
    return _check(tmp, lambda p: p.write_bytes(b""), "is empty, not an .npz archive", 2)


def check_truncated(runs: Runs, tmp: Path) -> Case:
    """check on the first 300 bytes of an export."""
    return _check(
        tmp, lambda p: p.write_bytes(runs.npz.read_bytes()[:300]), "is not a readable .npz archive", 2
    )


def check_junk_after_zip_header(runs: Runs, tmp: Path) -> Case:
    """check on a zip header followed by junk."""
    return _check(tmp, lambda p: p.write_bytes(b"PK\x03\x04" + b"\x00junk" * 50), "is not a readable .npz", 2)


def check_npy(runs: Runs, tmp: Path) -> Case:
    """check on a single .npy array."""
    return _check(tmp, lambda p: np.save(p.open("wb"), np.zeros(3)), "holds a single array (.npy)", 2)


def check_crc_error(runs: Runs, tmp: Path) -> Case:
    """check on an export with one member's bytes damaged (its CRC fails)."""
    return _check(
        tmp, lambda p: _crc_damaged(runs.npz.read_bytes(), p), "cannot be read (BadZipFile: Bad CRC-32", 1
    )


def check_object_layers(runs: Runs, tmp: Path) -> Case:
    """check on an export whose ``layers`` is an object (pickled) array."""
    layers = np.asarray(["features.0", None], dtype=object)
    return _check(tmp, lambda p: _with(runs.npz, p, layers=layers), "member 'layers' cannot be read", 1)


def check_vector_fragment_size(runs: Runs, tmp: Path) -> Case:
    """check on an export whose ``fragment_size`` is a vector."""
    message = "metadata 'fragment_size' must be an integer scalar"
    return _check(tmp, lambda p: _with(runs.npz, p, fragment_size=np.asarray([8, 8])), message, 1)


# Item 8: nothing is overwritten.


def train_over_a_finished_run(runs: Runs, tmp: Path) -> Case:
    """train (another model, no --resume) into a finished training run."""
    out = _copy(runs.float_run, tmp / "run")
    args = ["train", "--out", str(out), "--model", "mlp", "--data-dir", str(runs.data), *QUIET]
    return Case(args, ("already holds a float lenet5 model on mnist", "--resume"), (out,))


def export_onto_its_checkpoint(runs: Runs, tmp: Path) -> Case:
    """export --out naming the checkpoint being exported."""
    ckpt = _copy(runs.compressed, tmp / "checkpoint.pt")
    args = ["export", "--checkpoint", str(ckpt), "--out", str(ckpt)]
    return Case(args, ("is the checkpoint being exported",), (ckpt,))


# Item 9: integer layers must fit the model.


def _short_layer(runs: Runs, tmp: Path) -> Path:
    """The compressed checkpoint with its first integer layer 10x6 instead of 25x6."""
    state = load_checkpoint(runs.compressed)
    first = state["integer_layers"][0]
    state["integer_layers"][0] = {**first, "weight_int": first["weight_int"][:, :10]}
    return save_checkpoint(state, tmp / "short.pt")


def export_short_layer(runs: Runs, tmp: Path) -> Case:
    """export of a checkpoint whose integer layer is 10x6 instead of 25x6."""
    ckpt, out = _short_layer(runs, tmp), tmp / "m.npz"
    message = ("short.pt: corrupt integer layer record", "(1, 10, 6)", "(1, 25, 6)")
    return Case(["export", "--checkpoint", str(ckpt), "--out", str(out)], message, (ckpt,), (out,))


def simulate_short_layer(runs: Runs, tmp: Path) -> Case:
    """simulate of a checkpoint whose integer layer is 10x6 instead of 25x6."""
    ckpt, out = _short_layer(runs, tmp), tmp / "sim"
    args = ["simulate", "--checkpoint", str(ckpt), "--out", str(out), "--data-dir", str(runs.data), *QUIET]
    return Case(args, ("corrupt integer layer record", "(1, 25, 6)"), (ckpt,), (out / "metrics.json",))


# Item 10: non-finite settings, weights and losses.


def train_infinite_lr(runs: Runs, tmp: Path) -> Case:
    """train --lr inf."""
    args = ["train", "--out", str(tmp / "run"), "--lr", "inf", "--data-dir", str(runs.data), *QUIET]
    return Case(args, ("lr", "finite number"), absent=(tmp / "run",))


def train_infinite_lr_in_yaml(runs: Runs, tmp: Path) -> Case:
    """train --config with ``lr: .inf``."""
    config = tmp / "train.yaml"
    config.write_text(f"lr: .inf\nepochs: 1\ndata_dir: {runs.data}\n")
    args = ["train", "--out", str(tmp / "run"), "--config", str(config), *QUIET]
    return Case(args, ("lr", "finite number"), (config,), (tmp / "run",))


def train_diverging(runs: Runs, tmp: Path) -> Case:
    """train whose loss becomes NaN in its first epoch."""
    out = tmp / "run"
    args = ["train", "--out", str(out), "--lr", "1e38", "--optimizer", "sgd", "--schedule", "constant",
            "--epochs", "2", "--data-dir", str(runs.data), *QUIET]  # fmt: skip
    fragments = ("training diverged in epoch 1", "lower the learning rate")
    return Case(args, fragments, absent=(out / "checkpoint.pt", out / "metrics.json"))


def compress_nan_weights(runs: Runs, tmp: Path) -> Case:
    """compress of a float checkpoint with a NaN weight."""
    state = load_checkpoint(runs.float_run)
    state["state_dict"]["features.0.weight"].view(-1)[3] = float("nan")
    nan = save_checkpoint(state, tmp / "nan" / "checkpoint.pt")
    out = tmp / "out"
    args = ["compress", "--checkpoint", str(nan), "--out", str(out), "--data-dir", str(runs.data), *QUIET]
    return Case(
        args, ("features.0.weight holds NaN or infinite values",), (nan.parent,), (out / "checkpoint.pt",)
    )


# Item 13: say what is really in the --out folder.


def compress_into_the_float_run(runs: Runs, tmp: Path) -> Case:
    """compress --out naming the folder of the float checkpoint it compresses."""
    float_run = _copy(runs.float_run, tmp / "float")
    args = _compress_args(runs, float_run / "checkpoint.pt", float_run)
    return Case(
        args, ("is the folder of the float checkpoint being compressed", "choose another --out"), (float_run,)
    )


CASES: dict[str, Callable[[Runs, Path], Case]] = {
    f.__name__: f
    for f in (
        corrupt_compress_state,
        bare_tensor_compress_state,
        corrupt_metrics_of_finished_compression,
        corrupt_run_log,
        list_run_log,
        train_resume_on_compressed_run,
        check_empty,
        check_truncated,
        check_junk_after_zip_header,
        check_npy,
        check_crc_error,
        check_object_layers,
        check_vector_fragment_size,
        train_over_a_finished_run,
        export_onto_its_checkpoint,
        export_short_layer,
        simulate_short_layer,
        train_infinite_lr,
        train_infinite_lr_in_yaml,
        train_diverging,
        compress_nan_weights,
        compress_into_the_float_run,
    )
}


@dataclass(frozen=True)
class Outcome:
    """A case, the finished process and the fingerprints of its watched files before and after."""

    case: Case
    process: subprocess.CompletedProcess[str]
    before: dict[Path, str]
    after: dict[Path, str]


def _run(case: Case) -> Outcome:
    """Run ``case``'s command, fingerprinting its watched files before and after."""
    before = fingerprints(case.watched)
    process = run_forms(*case.args)
    return Outcome(case, process, before, fingerprints(case.watched))


@pytest.fixture(scope="module")
def outcomes(runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case's outcome; the processes run side by side (each mostly imports torch)."""
    cases = {name: make(runs, tmp_path_factory.mktemp(name)) for name, make in CASES.items()}
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        done = dict(zip(cases, pool.map(_run, cases.values()), strict=True))
    return done


@pytest.mark.parametrize("name", list(CASES))
def test_fails_with_one_clear_message_and_touches_nothing(outcomes: dict[str, Outcome], name: str) -> None:
    outcome = outcomes[name]
    assert_clean_error(outcome.process, *outcome.case.fragments, status=outcome.case.status)
    assert outcome.after == outcome.before
    assert not [p for p in outcome.case.absent if p.exists()]


# Item 7: resumable simulation work is keyed by the checkpoint's content.


def test_simulate_resume_does_not_reuse_chips_of_another_checkpoint(runs: Runs, tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    state = load_checkpoint(runs.compressed)
    bias = state["state_dict"]["classifier.5.bias"]
    bias.zero_()[3] = 1e4  # every image becomes class 3
    save_checkpoint(state, other)
    out = _copy(runs.simulation, tmp_path / "sim")  # chips of the first checkpoint
    args = ["simulate", "--checkpoint", str(other), "--out", str(out), "--data-dir", str(runs.data),
            "--limit", "16", "--runs", "2", "--variation", "0.2", "--resume", *QUIET]  # fmt: skip
    proc = run_forms(*args)
    assert proc.returncode == 0, proc.stderr
    spec = SimSpec.from_dict({"limit": 16, "runs": 2, "devices": {"variation": 0.2}})
    fresh = simulate(spec, other, data_dir=runs.data, device="cpu")
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["runs"]["accuracy"] == list(fresh.runs.accuracy)
    assert resumed["runs"]["prediction_agreement"] == list(fresh.runs.prediction_agreement)
    assert resumed["float_accuracy"] == fresh.float_accuracy
    first = json.loads((runs.simulation / "metrics.json").read_text())
    assert resumed["runs"]["accuracy"] != first["runs"]["accuracy"]  # the old chips were not reused
