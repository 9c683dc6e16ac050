"""Bad input to the installed ``forms``, run as a user would: exit status, one paragraph, nothing touched.

Every case runs ``forms`` as a real process in its own copy of a small workspace (a file where a folder
is meant, a folder where a file is meant, broken YAML/JSON, an exported file that violates the
constraints) and asserts the exit status, a message on stderr naming the problem in one paragraph
without a traceback, and that the workspace is byte for byte what it was: no file changed, none added.
The cases fail while validating their input, so each costs one start of ``forms`` (torch's import);
they run concurrently, one per core.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from _simhelpers import compressed_lenet5_checkpoint
from cli_helpers import FORMS, assert_clean_error, fingerprints, forms_env, run_forms
from forms.nn.checkpoint import save_checkpoint
from forms.nn.data import IDX_FILES, write_idx
from forms.nn.holdout import HOLDOUT_KEY
from forms.nn.train_spec import TrainSpec
from nn_helpers import write_idx_dataset

REPO = Path(__file__).resolve().parents[1]
SWEEP_CONFIG = str(REPO / "configs" / "sweep-lenet5.yaml")
HUGE_SEED = str(2**70)


@dataclass(frozen=True)
class Case:
    """One bad command line: ``forms *args`` run in a fresh workspace, and what it must say."""

    name: str
    args: tuple[str, ...]
    fragments: tuple[str, ...]
    """Parts of the message on stderr (case-insensitive)."""
    status: int = 2


def _case(name: str, args: str, *fragments: str, status: int = 2) -> Case:
    return Case(name, tuple(args.split()), fragments, status)


USAGE = [
    _case("unknown-command", "report", "no such command 'report'"),
    _case("not-an-integer", "train --epochs abc --out run", "invalid value for '--epochs'"),
    _case("missing-option", "train", "missing option '--out'"),
    _case("unknown-option", "train --bogus --out run", "no such option: --bogus"),
    _case("check-without-file", "check", "missing argument"),
    _case("not-a-number", "compress --prune abc --checkpoint ck.pt --out run", "invalid value for '--prune'"),
    _case("jobs-below-one", f"sweep --jobs 0 --config {SWEEP_CONFIG} --out run", "'--jobs'"),
]

EXIT_STATUS = [
    _case("check-violation", "check bad.npz", "violation", "fragment_size", status=1),
    _case("check-folder", "check adir", "adir is a folder"),
    _case("check-missing", "check nothere.npz", "nothere.npz does not exist"),
    _case(
        "nproc-zero", "train --nproc 0 --out run", "invalid value for '--nproc'", "greater than or equal to 1"
    ),
    _case(
        "nproc-negative",
        "compress --nproc -3 --checkpoint ck.pt --out run",
        "'--nproc'",
        "greater than or equal to 1",
    ),
    _case("nproc-unknown-model", "train --nproc 2 --model resnet999 --out run", "unknown model 'resnet999'"),
]

OUTPUTS = [
    _case("train-out-file", "train --out afile", "--out folder afile", "afile is a file"),
    _case("train-out-under-file", "train --out afile/run", "afile is a file"),
    _case("compress-out-file", "compress --checkpoint ck.pt --out afile", "afile is a file"),
    _case("simulate-out-file", "simulate --checkpoint ck.pt --out afile", "afile is a file"),
    _case("export-out-folder", "export --checkpoint ck.pt --out adir", "--out file adir is a folder"),
    _case("estimate-out-file", "estimate --arch forms-8 --model lenet5 --out afile", "afile is a file"),
    _case("compare-out-file", "compare --archs forms-8,prime --model lenet5 --out afile", "afile is a file"),
    _case("sweep-out-file", f"sweep --config {SWEEP_CONFIG} --out afile", "afile is a file"),
    _case("optimize-out-file", "optimize --model lenet5 --out afile", "afile is a file"),
    _case("search-out-file", "search --checkpoint ck.pt --out afile", "afile is a file"),
    _case("demo-out-file", "demo --out afile", "afile is a file"),
    _case("reproduce-out-file", "reproduce --quick --out afile", "afile is a file"),
    _case("fetch-into-file", "data fetch mnist --data-dir afile", "afile is a file"),
]

INPUTS = [
    _case("config-folder", "train --config adir --out run", "config file adir is a folder"),
    _case("config-missing", "train --config nothere.yaml --out run", "nothere.yaml does not exist"),
    _case("config-not-utf8", "train --config latin1.yaml --out run", "latin1.yaml is not UTF-8"),
    _case("config-duplicate-key", "train --config dup.yaml --out run", "duplicate key 'epochs'"),
    _case("config-boolean-epochs", "train --config bool.yaml --out run", "epochs", "boolean"),
    _case("config-unknown-key", "train --config unknown.yaml --out run", "unknown key 'epoch'"),
    _case("config-bad-yaml", "compress --config broken.yaml --checkpoint ck.pt --out run", "not valid YAML"),
    _case(
        "prune-global-layer-ratio",
        "compress --config global-ratios.yaml --checkpoint ck.pt --out run",
        "prune.scope 'global' would not use",
        "features.3",
    ),
    _case("sweep-duplicate-key", "sweep --config dup.yaml --out run", "duplicate key 'epochs'"),
    _case("seed-beyond-64-bits", f"train --seed {HUGE_SEED} --out run", "seed", "4294967295"),
    _case("train-device-tpu", "train --device tpu --out run", "device", "'cpu'"),
    _case("simulate-device-tpu", "simulate --checkpoint ck.pt --device tpu --out run", "device", "tpu"),
    _case("activity-list", "estimate --arch forms-8 --model lenet5 --activity list.json --out run", "list"),
    _case(
        "activity-unknown-mode",
        "estimate --arch forms-8 --model lenet5 --activity measured:in12 --out run",
        "activity mode must be one of",
        "in12",
    ),
    _case("optimize-hold-no-value", "optimize --model lenet5 --hold fragment_size --out run", "PATH=VALUE"),
    _case(
        "optimize-hold-unknown",
        "optimize --model lenet5 --hold read_time_ns=50 --out run",
        "cannot hold read_time_ns",
        "crossbar.fragment_size",
    ),
    _case("optimize-bad-objective", "optimize --model lenet5 --objective speed --out run", "objective"),
    _case(
        "prune-layer-unknown-unit",
        "compress --checkpoint ck.pt --prune-granularity filter+channel "
        "--prune-layer classifier.1=filter:0.5,width:0.2 --out run",
        "prune.layer_ratios",
        "'width'",
    ),
    _case(
        "train-holds-out-every-image",
        "train --validation-images 60000 --out run",
        "cannot hold out 60000 of 60000",
        "validation_images",
    ),
    _case(
        "estimate-dataset-disagrees",
        "estimate --arch forms-8 --checkpoint compressed.pt --dataset cifar10 --out run",
        "--dataset cifar10 disagrees with checkpoint",
        "mnist",
    ),
    _case(
        "optimize-accuracy-unmeasured",
        "optimize --model resnet18 --max-accuracy-drop 0.5 --out run",
        "no measured accuracy for 'resnet18'",
        "--accuracy-from",
    ),
    _case(
        "activity-not-utf8",
        "estimate --arch forms-8 --model lenet5 --activity latin1.yaml --out run",
        "UTF-8",
    ),
    _case(
        "activity-missing", "estimate --arch forms-8 --model lenet5 --activity no.json --out run", "no.json"
    ),
    _case("skip-rule-alone", "estimate --arch forms-8 --model lenet5 --skip-rule foo --out run", "'foo'"),
    _case("unknown-arch", "estimate --arch nosuch --model lenet5 --out run", "unknown architecture 'nosuch'"),
    _case(
        "unknown-model", "estimate --arch forms-8 --model resnet999 --out run", "unknown model 'resnet999'"
    ),
    _case("compress-no-checkpoint", "compress --checkpoint ck.pt --out run", "ck.pt does not exist"),
    _case("export-no-checkpoint", "export --checkpoint ck.pt --out x.npz", "ck.pt does not exist"),
    _case("fetch-unknown", "data fetch cifar10", "cannot fetch 'cifar10'"),
    _case("data-no-images", "train --data-dir empty-data --device cpu --out run", "holds 0 images"),
    _case("data-16x16", "train --data-dir small-data --device cpu --out run", "(1, 16, 16)", "(1, 28, 28)"),
    _case(
        "compress-validates-on-trained-images",
        "compress --checkpoint held.pt --data-dir held-data --validation-images 32 --device cpu --out run",
        "validation_images=32",
        "images the float model trained on",
        "held out 16 images (seed 0, drawn from the first 64 training images)",
        "leave validation_images, validation_seed and validation_pool unset",
    ),
]

if not torch.cuda.is_available():
    INPUTS += [
        _case("train-no-cuda", "train --device cuda --out run", "no CUDA GPU"),
        _case("simulate-no-cuda", "simulate --checkpoint ck.pt --device cuda --out run", "no CUDA GPU"),
    ]
if os.geteuid() != 0:  # root writes anywhere: a read-only folder refuses only other users
    OUTPUTS += [
        _case("train-out-read-only", "train --out readonly/run", "no permission to write in readonly")
    ]

CASES = USAGE + EXIT_STATUS + OUTPUTS + INPUTS


def _make_workspace(root: Path) -> Path:
    """The files the cases point at; none of them may change."""
    root.mkdir()
    (root / "afile").write_text("a file where a folder is meant\n")
    (root / "adir").mkdir()
    (root / "adir" / "inside.txt").write_text("a folder where a file is meant\n")
    (root / "dup.yaml").write_text("epochs: 1\nepochs: 2\n")
    (root / "bool.yaml").write_text("epochs: true\n")
    (root / "unknown.yaml").write_text("epoch: 3\n")
    (root / "broken.yaml").write_text("schedule: [1, 2\n")
    (root / "global-ratios.yaml").write_text(
        "prune: {ratio: 0.5, scope: global, layer_ratios: {features.3: 0.2}}\n"
    )
    (root / "latin1.yaml").write_bytes("model: l\xe9net\n".encode("latin-1"))
    (root / "list.json").write_text("[1, 2, 3]\n")
    np.savez(root / "bad.npz", foo=np.zeros(2))  # no FORMS metadata: every check is a violation
    for folder, images in (("empty-data", 0), ("small-data", 8)):  # MNIST files: no images, 16x16 ones
        (root / folder / "mnist").mkdir(parents=True)
        for image_file, label_file in IDX_FILES.values():
            write_idx(np.zeros((images, 16, 16), np.uint8), root / folder / "mnist" / image_file)
            write_idx(np.zeros(images, np.uint8), root / folder / "mnist" / label_file)
    _held_out_float_checkpoint(root)
    compressed_lenet5_checkpoint(root / "compressed.pt", dataset="mnist")
    (root / "readonly").mkdir()
    (root / "readonly").chmod(0o555)
    return root


def _held_out_float_checkpoint(root: Path) -> None:
    """``held.pt``: an untrained LeNet-5 whose record says 16 of ``held-data``'s 64 training images were
    held out (as forms train --validation-images 16 --train-subset 64 writes it)."""
    write_idx_dataset(root / "held-data" / "mnist", 64, 16)
    spec = TrainSpec(validation_images=16, train_subset=64)
    save_checkpoint(
        {
            "stage": "float",
            "model": {"name": spec.model, "kwargs": spec.model_kwargs()},
            "state_dict": spec.build_model().state_dict(),
            "config": spec.model_dump(mode="json"),
            "data": spec.data_record(),
            HOLDOUT_KEY: spec.holdout(64).to_dict(),
        },
        root / "held.pt",
    )


@dataclass(frozen=True)
class Outcome:
    """What one case did: the finished process, and the workspace before and after."""

    proc: subprocess.CompletedProcess[str]
    before: dict[Path, str]
    after: dict[Path, str]


def _run_case(case: Case, template: Path, root: Path) -> Outcome:
    workspace = root / case.name
    shutil.copytree(template, workspace)
    before = fingerprints([workspace])
    proc = run_forms(*case.args, cwd=workspace, timeout=120)
    return Outcome(proc, before, fingerprints([workspace]))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    """Every case run once, concurrently (each costs one start of ``forms``)."""
    root = tmp_path_factory.mktemp("cli-errors")
    template = _make_workspace(root / "template")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {c.name: pool.submit(_run_case, c, template, root) for c in CASES}
        yield {name: future.result() for name, future in futures.items()}
    for folder in root.rglob("readonly"):
        folder.chmod(0o755)  # so pytest can remove its temporary folders


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_clear_paragraph_and_touches_nothing(
    case: Case, outcomes: dict[str, Outcome]
) -> None:
    outcome = outcomes[case.name]
    assert_clean_error(outcome.proc, *case.fragments, status=case.status)
    message = outcome.proc.stderr.strip()
    assert message and "\n\n" not in message, f"not one paragraph:\n{outcome.proc.stderr}"
    assert outcome.after == outcome.before, "files changed or appeared"


def test_check_violation_prints_the_report_and_exits_one(outcomes: dict[str, Outcome]) -> None:
    """`forms check` documents exit status 1 for a violation: the real process exits 1."""
    proc = outcomes["check-violation"].proc
    assert proc.returncode == 1 and proc.stderr.count("violation:") == 4


def test_bare_forms_prints_its_help_and_exits_two() -> None:
    """`forms` without a command is a usage error: the help on stdout, exit status 2, nothing on stderr."""
    proc = run_forms()
    assert proc.returncode == 2 and "Usage: forms" in proc.stdout and not proc.stderr.strip(), proc.stderr


def test_estimate_of_a_huge_input_computes_shapes_without_allocating(tmp_path: Path) -> None:
    """A 20000 x 20000 input to LeNet-5 (a 191 GB dense layer) is costed on shapes alone."""
    proc = run_forms(
        "estimate", "--arch", "forms-8", "--model", "lenet5", "--input-shape", "1,20000,20000",
        "--out", str(tmp_path / "est"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "est" / "estimate.json").is_file()


def _interrupt(args: list[str], after: float, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Start ``forms *args`` in its own process group, press Ctrl-C there after ``after`` seconds."""
    proc = subprocess.Popen(
        [str(FORMS), *args],
        cwd=cwd,
        env=forms_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background job ignores it
    )
    time.sleep(after)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_ctrl_c_during_start_up_says_interrupted_and_exits_130(tmp_path: Path) -> None:
    proc = _interrupt(["train", "--out", "run"], 0.4, tmp_path)  # torch is still being imported
    assert proc.returncode == 130 and proc.stderr.strip() == "interrupted", proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("nproc", [1, 2])
def test_ctrl_c_during_training_says_interrupted_once_and_exits_130(tmp_path: Path, nproc: int) -> None:
    data = tmp_path / "data"
    write_idx_dataset(data / "mnist", 512, 64)
    args = ["train", "--out", "run", "--data-dir", str(data), "--epochs", "1000", "--device", "cpu"]
    proc = _interrupt([*args, "--quiet", "--nproc", str(nproc)], 15.0, tmp_path)
    assert proc.returncode == 130 and proc.stderr.strip() == "interrupted", proc.stderr


@pytest.mark.slow
def test_failing_workers_exit_with_their_status_without_traceback(tmp_path: Path) -> None:
    """`--nproc 2` whose workers both fail (no data): their error, exit status 2, no torchrun traceback."""
    (tmp_path / "empty").mkdir()
    proc = run_forms(
        "train", "--nproc", "2", "--out", str(tmp_path / "run"), "--data-dir", str(tmp_path / "empty")
    )
    assert_clean_error(proc, "file not found", "forms data fetch mnist")
    assert "ChildFailedError" not in proc.stderr
