"""Two-process DistributedDataParallel training (gloo on CPU) matches single-process training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from forms.nn.checkpoint import load_checkpoint
from forms.nn.train import TrainSpec, train
from nn_helpers import write_idx_dataset


def _forms(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", "from forms.cli import main; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_two_process_ddp_equals_one_process(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path / "data" / "mnist", 128, 64)
    config = tmp_path / "train.yaml"
    config.write_text(
        f"model: lenet5\nepochs: 2\nbatch_size: 32\noptimizer: adam\nlr: 0.005\nshift: 1\n"
        f"device: cpu\ndata_dir: {tmp_path / 'data'}\n"
    )
    ddp = _forms("train", "--config", str(config), "--out", str(tmp_path / "ddp"), "--nproc", "2", "--quiet")
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # the single-process reference runs in this process (saves a torch start-up)
        train(TrainSpec.from_yaml(config), tmp_path / "one", progress=False)
    finally:
        torch.set_num_threads(threads)

    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["epochs"] == 2
    a = load_checkpoint(tmp_path / "ddp")["state_dict"]
    b = load_checkpoint(tmp_path / "one")["state_dict"]
    # Same global batches and averaged gradients: only float summation order differs.
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-4)
