"""The typed result of one simulation: what ``forms simulate`` writes to ``metrics.json``.

:class:`SimulationResult` holds the measured quantities; the statistics derived from them (mean and
spread over chips, clip rates, zero-skip totals) are properties, so each is computed in one place.
:meth:`SimulationResult.to_dict` is metrics.json (read back by :meth:`SimulationResult.from_dict`), with
keys in this order: ``spec``, ``encoding``, ``images``, ``accuracy`` (= ``accuracy_mean``),
``accuracy_mean``, ``accuracy_std``, ``float_accuracy``, ``reference_accuracy``,
``prediction_agreement``, ``runs``, ``adc_clip_rate``, ``zero_skip``, ``zero_skip_totals``, ``layers``,
``mapping``, ``elapsed_s``, ``device`` and, for a checkpoint, ``checkpoint`` and ``dataset``.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, fields
from typing import Any

from forms.encoding import Encoding
from forms.sim.mapping import MappingTable
from forms.sim.spec import SimSpec
from forms.sim.zeroskip import ZeroSkipCounts

ZERO_SKIP_TOTALS = ("conversions_total", "conversions_skipped_leading", "conversions_skipped_bitplane")
"""The zero-skip conversion counts summed over layers (``zero_skip_totals``)."""

ACTIVITY_TOTALS = (
    "reads_total",
    "reads_skipped_leading",
    "reads_skipped_bitplane",
    "input_digits_total",
    "input_digits_nonzero",
)
"""The read-cycle and row-driver counts summed over layers when every layer has them (metrics written
before they were measured lack them)."""


@dataclass(frozen=True)
class LayerZeroSkip:
    """Conversions, crossbar reads and row-driver digits of one layer with and without input
    zero-skipping (:mod:`forms.sim.zeroskip`, whose docstring says what multiplies what).

    The read and digit counts are None in records written before they were measured.
    """

    conversions_total: int
    """Conversions without skipping: sub-array rounds x columns."""
    conversions_skipped_leading: int
    """Conversions the "leading" rule skips."""
    conversions_skipped_bitplane: int
    """Conversions the "bitplane" rule skips."""
    rounds_total: int
    """Sub-array conversion rounds without skipping."""
    columns: int
    """Physical columns one round converts."""
    steps: int
    """Analog steps per input."""
    rows: int
    """Rows per sub-array (R)."""
    fragment_size: int
    """R, the fragment size the sub-arrays follow."""
    reads_total: int | None = None
    """Crossbar read cycles without skipping: vectors x groups x row tiles x steps x column tiles x sets."""
    reads_skipped_leading: int | None = None
    """Read cycles the "leading" rule skips (every sub-array of the crossbar past its last non-zero
    digit)."""
    reads_skipped_bitplane: int | None = None
    """Read cycles the "bitplane" rule skips (every input digit of the crossbar zero at that step)."""
    input_digits_total: int | None = None
    """Input digits the row drivers apply: vectors x groups x rows x steps."""
    input_digits_nonzero: int | None = None
    """Input digits that are non-zero (a zero digit leaves its row driver idle)."""

    @classmethod
    def from_counts(
        cls, counts: ZeroSkipCounts, columns: int, steps: int, fragment_size: int
    ) -> LayerZeroSkip:
        """The record of a layer's sub-array ``counts``, each round converting ``columns`` columns."""
        return cls(
            conversions_total=counts.rounds_total * columns,
            conversions_skipped_leading=(counts.rounds_total - counts.rounds_needed_leading) * columns,
            conversions_skipped_bitplane=(counts.rounds_total - counts.rounds_needed_bitplane) * columns,
            rounds_total=counts.rounds_total,
            columns=columns,
            steps=steps,
            rows=fragment_size,
            fragment_size=fragment_size,
            reads_total=counts.reads_total,
            reads_skipped_leading=counts.reads_total - counts.reads_needed_leading,
            reads_skipped_bitplane=counts.reads_total - counts.reads_needed_bitplane,
            input_digits_total=counts.digits_total,
            input_digits_nonzero=counts.digits_nonzero,
        )

    def to_dict(self) -> dict[str, int]:
        """Plain-dict form for JSON (counts not measured, None, are left out)."""
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerZeroSkip:
        """Read back :meth:`to_dict`, also of records without the read and digit counts."""
        return cls(**data)


@dataclass(frozen=True)
class LayerSetup:
    """How one layer ran: its engine, ADC and input quantization."""

    path: str
    """``bit_level`` when some column ran bit by bit, ``exact_fast`` when all ran as one integer GEMM
    (plus sparse read-noise errors for engine ``events``)."""
    engine: str
    """``exact``, ``events``, ``table`` or ``gemm`` (:attr:`forms.sim.crossbar.CrossbarArray.engine`)."""
    adc_bits: int
    adc_step: float
    adc_group_rows: int
    """Rows one conversion sums."""
    max_partial_sum: int
    """Largest partial sum the ideal cells can produce."""
    input_scale: float
    input_signed: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerSetup:
        """Read these fields of a layer record (other keys are ignored)."""
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class LayerRecord:
    """One layer in metrics.json: its setup (chip 0) and its conversions and clips over every chip."""

    setup: LayerSetup
    conversions_all_runs: int
    clipped_all_runs: int

    @property
    def clip_rate(self) -> float:
        """Clipped conversions / conversions over every chip (0 without conversions)."""
        return self.clipped_all_runs / self.conversions_all_runs if self.conversions_all_runs else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The setup's fields followed by ``conversions_all_runs`` and ``clipped_all_runs``."""
        return {
            **self.setup.to_dict(),
            "conversions_all_runs": self.conversions_all_runs,
            "clipped_all_runs": self.clipped_all_runs,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerRecord:
        """Read back :meth:`to_dict`."""
        return cls(LayerSetup.from_dict(data), data["conversions_all_runs"], data["clipped_all_runs"])


@dataclass(frozen=True)
class RunsSummary:
    """Per-chip results of the Monte Carlo runs, in run order."""

    accuracy: tuple[float, ...]
    prediction_agreement: tuple[float, ...]
    """Fraction of images whose prediction equals the exact integer reference's."""
    seeds: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """``{"count", "accuracy", "prediction_agreement", "seeds"}`` with lists."""
        return {
            "count": len(self.accuracy),
            "accuracy": list(self.accuracy),
            "prediction_agreement": list(self.prediction_agreement),
            "seeds": list(self.seeds),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunsSummary:
        """Read back :meth:`to_dict`."""
        return cls(tuple(data["accuracy"]), tuple(data["prediction_agreement"]), tuple(data["seeds"]))


@dataclass(frozen=True)
class SimulationSource:
    """Where the simulated network came from (recorded for ``forms simulate`` runs of a checkpoint)."""

    checkpoint: str
    """The checkpoint path (``checkpoint`` for a checkpoint passed as a dict)."""
    dataset: str
    """The dataset whose test split was simulated."""


@dataclass(frozen=True)
class SimulationResult:
    """Accuracy, clipping and zero-skip statistics of one simulation (metrics.json; module docstring)."""

    spec: SimSpec
    images: int
    """Test images simulated."""
    float_accuracy: float
    """Accuracy of the float model (dequantized weights)."""
    reference_accuracy: float
    """Accuracy of the exact integer model (the simulator's reference)."""
    runs: RunsSummary
    zero_skip: dict[str, LayerZeroSkip]
    """Per layer, from chip 0."""
    layers: dict[str, LayerRecord]
    mapping: MappingTable
    elapsed_s: float
    """Wall-clock seconds of the simulation."""
    device: str
    """Torch device it ran on."""
    source: SimulationSource | None = None

    @property
    def encoding(self) -> Encoding:
        """The sign encoding simulated."""
        return self.spec.encoding

    @property
    def accuracy_mean(self) -> float:
        """Mean accuracy over the chips."""
        return statistics.fmean(self.runs.accuracy)

    @property
    def accuracy(self) -> float:
        """The simulated accuracy: the mean over the chips."""
        return self.accuracy_mean

    @property
    def accuracy_std(self) -> float:
        """Population standard deviation of the chips' accuracies (0 for one chip)."""
        return statistics.pstdev(self.runs.accuracy) if len(self.runs.accuracy) > 1 else 0.0

    @property
    def prediction_agreement(self) -> float:
        """Mean over the chips of the fraction of predictions equal to the reference's."""
        return statistics.fmean(self.runs.prediction_agreement)

    @property
    def clip_rate(self) -> float:
        """Clipped conversions / conversions over every layer and chip (0 without conversions)."""
        conversions = sum(r.conversions_all_runs for r in self.layers.values())
        clipped = sum(r.clipped_all_runs for r in self.layers.values())
        return clipped / conversions if conversions else 0.0

    @property
    def zero_skip_totals(self) -> dict[str, int]:
        """The zero-skip conversion counts (:data:`ZERO_SKIP_TOTALS`) summed over layers, and the read
        and digit counts (:data:`ACTIVITY_TOTALS`) where every layer has them."""
        layers = self.zero_skip.values()
        keys: tuple[str, ...] = ZERO_SKIP_TOTALS
        if all(z.reads_total is not None for z in layers):
            keys += ACTIVITY_TOTALS
        return {key: sum(getattr(z, key) or 0 for z in layers) for key in keys}

    def to_dict(self) -> dict[str, Any]:
        """metrics.json (keys in the order of the module docstring)."""
        metrics: dict[str, Any] = {
            "spec": self.spec.model_dump(mode="json"),
            "encoding": self.encoding,
            "images": self.images,
            "accuracy": self.accuracy,
            "accuracy_mean": self.accuracy_mean,
            "accuracy_std": self.accuracy_std,
            "float_accuracy": self.float_accuracy,
            "reference_accuracy": self.reference_accuracy,
            "prediction_agreement": self.prediction_agreement,
            "runs": self.runs.to_dict(),
            "adc_clip_rate": {
                "overall": self.clip_rate,
                "layers": {name: r.clip_rate for name, r in self.layers.items()},
            },
            "zero_skip": {name: z.to_dict() for name, z in self.zero_skip.items()},
            "zero_skip_totals": self.zero_skip_totals,
            "layers": {name: r.to_dict() for name, r in self.layers.items()},
            "mapping": self.mapping.to_dict(),
            "elapsed_s": self.elapsed_s,
            "device": self.device,
        }
        if self.source is not None:
            metrics.update(asdict(self.source))
        return metrics

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulationResult:
        """Read back :meth:`to_dict` (a metrics.json); derived entries are recomputed, not read."""
        has_source = "checkpoint" in data
        return cls(
            spec=SimSpec.model_validate(data["spec"]),
            images=data["images"],
            float_accuracy=data["float_accuracy"],
            reference_accuracy=data["reference_accuracy"],
            runs=RunsSummary.from_dict(data["runs"]),
            zero_skip={name: LayerZeroSkip.from_dict(z) for name, z in data["zero_skip"].items()},
            layers={name: LayerRecord.from_dict(r) for name, r in data["layers"].items()},
            mapping=MappingTable.from_dict(data["mapping"]),
            elapsed_s=data["elapsed_s"],
            device=data["device"],
            source=SimulationSource(data["checkpoint"], data["dataset"]) if has_source else None,
        )
