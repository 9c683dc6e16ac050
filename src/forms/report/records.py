"""The records of summary.json besides the stage results: a simulation run's setup, and the run's meta.

:class:`RunSetup` is what a job asked the simulator (``simulate.<run>.setup``); :class:`SimulationRun`
pairs it with the run's :class:`~forms.sim.result.SimulationResult`. :class:`RunMeta` says when, where
and by which command the summary was made, and how long its stages took (:class:`StageTimings`).
Each ``to_dict`` is the exact JSON record and each ``from_dict`` reads one back.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from dataclasses import asdict, dataclass
from typing import Any

from forms.encoding import Encoding
from forms.sim.result import SimulationResult


@dataclass(frozen=True)
class RunSetup:
    """What one simulation run of a job asks the simulator."""

    encoding: Encoding
    mode: str
    """'ideal' (lossless ADC, ideal devices), 'adc' (narrower ADC) or 'variation'."""
    adc_bits: int
    flipped: bool = False
    """ISAAC's column flipping (offset encoding only)."""
    variation_sigma: float = 0.0
    """Log-normal conductance variation sigma (0: ideal devices)."""
    runs: int = 1
    """Monte Carlo chips."""
    limit: int | None = None
    """Test images simulated (None: the whole test set)."""
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The ``setup`` record in summary.json."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSetup:
        """Read back :meth:`to_dict`."""
        return cls(**{**data, "encoding": Encoding.parse(data["encoding"])})


@dataclass(frozen=True)
class SimulationRun:
    """One simulation run of a job: its setup and what the simulator measured (metrics.json)."""

    setup: RunSetup
    metrics: SimulationResult

    def to_dict(self) -> dict[str, Any]:
        """``{"setup": {...}, "metrics": <metrics.json>}``."""
        return {"setup": self.setup.to_dict(), "metrics": self.metrics.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulationRun:
        """Read back :meth:`to_dict`."""
        return cls(RunSetup.from_dict(data["setup"]), SimulationResult.from_dict(data["metrics"]))


@dataclass(frozen=True)
class StageTimings:
    """Wall seconds of a job's stages, keyed by each stage's folder (in summary.json ``meta``)."""

    stage_seconds: dict[str, float]
    """Stages run by this job."""
    earlier_stage_seconds: dict[str, float]
    """Stages reused from an earlier job, with the seconds they took then."""
    reused_stages: list[str]
    """Stages whose finished output this job reused."""

    def to_dict(self) -> dict[str, Any]:
        """``{"stage_seconds", "earlier_stage_seconds", "reused_stages"}``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageTimings:
        """Read these fields of a ``meta`` record."""
        return cls(data["stage_seconds"], data["earlier_stage_seconds"], data["reused_stages"])


def machine_description() -> str:
    """One line naming the machine: OS, CPU architecture, Python and logical CPU count."""
    return (
        f"{platform.system()} {platform.release()} {platform.machine()}, "
        f"{os.cpu_count()} logical CPUs, Python {platform.python_version()}"
    )


@dataclass(frozen=True)
class RunMeta:
    """When, where and how a summary was made; a job adds its stage timings and wall time."""

    created: str
    """UTC creation time, ISO 8601 to the second."""
    command: str
    """The command line that made the summary."""
    machine: str
    """:func:`machine_description` of the machine it ran on."""
    timings: StageTimings | None = None
    """Seconds of each stage (jobs only); written as fields of ``meta`` itself."""
    wall_seconds: float | None = None
    """Wall seconds of the whole job up to the summary (jobs only)."""

    @classmethod
    def now(
        cls, command: str, timings: StageTimings | None = None, wall_seconds: float | None = None
    ) -> RunMeta:
        """The meta of a summary made now, on this machine, by ``command``."""
        created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        return cls(created, command, machine_description(), timings, wall_seconds)

    def to_dict(self) -> dict[str, Any]:
        """``meta``: created, command, machine, then the timings and wall seconds when recorded."""
        meta: dict[str, Any] = {"created": self.created, "command": self.command, "machine": self.machine}
        if self.timings is not None:
            meta.update(self.timings.to_dict())
        if self.wall_seconds is not None:
            meta["wall_seconds"] = self.wall_seconds
        return meta

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunMeta:
        """Read back :meth:`to_dict`."""
        timings = StageTimings.from_dict(data) if "stage_seconds" in data else None
        return cls(data["created"], data["command"], data["machine"], timings, data.get("wall_seconds"))
