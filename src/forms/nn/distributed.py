"""Data-parallel training across processes (``torchrun``): gloo on CPU, nccl on GPU.

Run any training command under ``torchrun --nproc_per_node N --no-python forms train ...`` (or
``forms train --nproc N``, which launches that for you). Each process reads ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment; :func:`init_from_env` joins the process group
once. Outside torchrun everything here degrades to a single process (rank 0 of 1).

The global batch is split across ranks (see :class:`forms.nn.loader.EpochLoader`): rank r takes
every W-th sample of each global batch, and DDP averages gradients, so a W-process run follows the
same mathematics as a single process with the same global batch size.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn

from forms.errors import INTERRUPTED_STATUS, ConfigError
from forms.nn.device import resolve_device


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: str = "auto") -> torch.device:
    """Join the torchrun process group (once) and return this process's device.

    Uses nccl when the chosen device is CUDA, gloo otherwise. With ``WORLD_SIZE`` unset or 1 it only
    picks the device. ``device`` is "auto" (CUDA when available), "cpu" or "cuda" (see
    :func:`forms.nn.device.resolve_device`); each process takes GPU ``LOCAL_RANK``.
    """
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    if env_world_size() > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return dev


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on the process that writes files and draws progress (rank 0)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def all_reduce_sum(values: Sequence[float], device: torch.device) -> list[float]:
    """Sum each value over all processes (identity when not distributed)."""
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """Wrap ``model`` in DistributedDataParallel when distributed, else return it unchanged."""
    if not is_distributed():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DDP wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N``, for the torchrun children (so they do not relaunch)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def cleanup() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


_TORCHRUN = "import sys; from forms.nn.distributed import run_torchrun; sys.exit(run_torchrun(sys.argv[1:]))"
"""Program of the launcher process: torchrun, reporting a failed worker by its exit status only."""


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``forms <argv>`` in ``nproc`` processes under torchrun on this machine; return its exit status.

    Equivalent to ``torchrun --standalone --nproc_per_node nproc --no-python forms <argv>``, with one
    thread per process unless ``OMP_NUM_THREADS`` is set. The status is that of the first worker that
    failed (each worker prints its own error), 130 when Ctrl-C stopped the run.
    """
    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    sibling = os.path.join(os.path.dirname(sys.executable), "forms")
    forms_exe = sibling if os.path.exists(sibling) else (shutil.which("forms") or "forms")
    cmd = [sys.executable, "-c", _TORCHRUN, "--standalone", f"--nproc_per_node={nproc}"]
    cmd += ["--no-python", forms_exe, *argv]
    launcher = subprocess.Popen(cmd, env=env)
    try:
        return launcher.wait()
    except KeyboardInterrupt:  # the launcher and the workers got the same Ctrl-C: let them stop
        launcher.wait()
        return INTERRUPTED_STATUS


def run_torchrun(argv: Sequence[str]) -> int:
    """torchrun's ``main`` on ``argv``; the exit status of the first worker that failed, else 0.

    torchrun reports a failed worker as a ChildFailedError traceback and log lines; the worker has
    already printed its own error, so these are silenced and only a worker killed by a signal (which
    printed nothing) gets a line here.
    """
    logging.disable(logging.ERROR)  # this launcher process only; the workers log as usual
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    try:
        torchrun_main(list(argv))
    except ChildFailedError as exc:
        worker, failure = exc.get_first_failure()
        if failure.exitcode >= 0:
            return failure.exitcode
        signal_number = -failure.exitcode
        if signal_number != signal.SIGINT:
            print(f"error: worker {worker} was killed by signal {signal_number}", file=sys.stderr)
        return 128 + signal_number
    except SignalException as exc:  # Ctrl-C or a kill reached torchrun itself; it stopped the workers
        return 128 + int(exc.sigval)
    return 0
