"""Packaged measured accuracy: the simulator's test accuracy of each crossbar design point, shipped as data.

A file ``forms/presets/accuracy/<model>-<dataset>.json`` (made by ``scripts/measure_accuracy.py``) holds,
for one network, the accuracy ``forms simulate`` measured on its compressed model at each point
(encoding, fragment size R, ADC bits, flipped) under fixed ``conditions`` (crossbar rows and columns, cell,
DAC, input and weight widths), the float (uncompressed) model's accuracy on the same test images, the
clip rates and the provenance. :class:`AccuracyFloor` turns it into a constraint for
:func:`forms.cost.optimize.optimize`: a design point is allowed when its measured accuracy is at most
``max_drop_points`` percentage points below the float model's; a point without a measurement (another
R, width or condition) is never allowed. A network without a file of its own may borrow a named
network's measurement (``accuracy_from``); :func:`nearest_accuracy` finds the one to borrow (the same
family's, :data:`~forms.cost.measured_activity.NEAREST_MEASURED`, else a named fallback). The floor says
whose measurement it is by :class:`~forms.cost.measured_activity.MeasurementSource`'s rule: borrowed when
taken on another model or on another data set than the costed network's, 'data set unknown' when that
network's data set is not known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from forms.cost.arch import ArchSpec
from forms.cost.measured_activity import NEAREST_MEASURED, MeasurementSource, packaged_activity_digest
from forms.encoding import Encoding
from forms.errors import ConfigError
from forms.io import read_json

CONDITION_FIELDS: tuple[str, ...] = ("rows", "cols", "cell_bits", "dac_bits", "input_bits", "weight_bits")
"""Widths every point of a file was simulated at; an architecture differing in one has no measurement."""

REQUIRED_KEYS: tuple[str, ...] = (
    "model", "dataset", "images", "float_accuracy", "conditions", "points", "provenance",
)  # fmt: skip
"""Top-level keys of an accuracy file."""

POINT_FIELDS: dict[str, type] = {
    "encoding": str,
    "fragment_size": int,
    "adc_bits": int,
    "flipped": bool,
    "accuracy": float,
    "reference_accuracy": float,
    "clip_rate": float,
}
"""Fields every packaged point must carry, and their types."""


@dataclass(frozen=True)
class AccuracyPoint:
    """The simulator's accuracy at one design point (rows per conversion, ADC width, flipping)."""

    encoding: str
    """Sign encoding simulated: polarized, offset or differential."""
    fragment_size: int
    """Rows summed by one conversion: R for polarized, the crossbar rows otherwise."""
    adc_bits: int
    """ADC resolution simulated."""
    flipped: bool
    """Whether columns were flipped."""
    accuracy: float
    """Test accuracy of the simulated crossbars (0..1)."""
    reference_accuracy: float
    """Accuracy of the exact integer model the simulator is checked against (no ADC clipping)."""
    clip_rate: float
    """Fraction of conversions the ADC clipped."""


@dataclass(frozen=True)
class MeasuredAccuracy:
    """One network's packaged accuracy measurement."""

    model: str
    """The zoo model measured."""
    dataset: str
    """The data set its test images came from."""
    images: int
    """Test images each simulation ran (the first ones)."""
    float_accuracy: float
    """The float (uncompressed) model's accuracy on the same images: the reference of every drop."""
    conditions: dict[str, int]
    """The widths of :data:`CONDITION_FIELDS` every point was simulated at."""
    points: tuple[AccuracyPoint, ...]
    """Every measured design point."""
    path: Path
    """The packaged file."""

    @property
    def name(self) -> str:
        """``<model>-<dataset>``, the file's stem."""
        return f"{self.model}-{self.dataset}"

    def point_for(self, arch: ArchSpec) -> AccuracyPoint | None:
        """The measurement of ``arch``'s design point, or None when it was not measured. An ADC wider
        than the lossless width converts every partial sum exactly, as the lossless one does, so it
        takes the lossless width's measurement."""
        if _widths(arch) != self.conditions:
            return None
        rows = arch.encoding.rows_per_conversion(arch.crossbar.rows, arch.crossbar.fragment_size)
        bits = min(arch.adc_bits, arch.lossless_adc_bits)  # wider than lossless converts exactly the same
        key = (arch.encoding.value, rows, bits, arch.adc.flip)
        return next(
            (p for p in self.points if (p.encoding, p.fragment_size, p.adc_bits, p.flipped) == key), None
        )

    def covers(self, arch: ArchSpec) -> bool:
        """Whether any point was measured at ``arch``'s encoding and widths (:data:`CONDITION_FIELDS`);
        when none was, a floor from this measurement would refuse every point of ``arch``."""
        return _widths(arch) == self.conditions and any(
            p.encoding == arch.encoding.value for p in self.points
        )


def _widths(arch: ArchSpec) -> dict[str, int]:
    """``arch``'s value of every field of :data:`CONDITION_FIELDS`."""
    return {
        "rows": arch.crossbar.rows,
        "cols": arch.crossbar.cols,
        "cell_bits": arch.crossbar.cell_bits,
        "dac_bits": arch.dac_bits,
        "input_bits": arch.input_bits,
        "weight_bits": arch.weight_bits,
    }


def accuracy_dir() -> Path:
    """Folder of the packaged measured accuracy files."""
    return Path(str(resources.files("forms") / "presets" / "accuracy"))


def _field(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    """``data[key]`` checked to be a ``kind`` (an int is accepted for a float); ConfigError naming it."""
    value = data.get(key)
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        raise ConfigError(f"{where}: '{key}' must be a {kind.__name__}, got {value!r}")
    return value


def _point(data: Any, where: str) -> AccuracyPoint:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of {', '.join(POINT_FIELDS)}")
    values = {key: _field(data, key, kind, where) for key, kind in POINT_FIELDS.items()}
    try:
        Encoding.parse(values["encoding"])
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    for key in ("accuracy", "reference_accuracy", "clip_rate"):
        if not 0.0 <= values[key] <= 1.0:
            raise ConfigError(f"{where}: '{key}' must lie in [0, 1], got {values[key]}")
    return AccuracyPoint(**values)


def load_measured_accuracy(path: str | Path) -> MeasuredAccuracy:
    """Read and validate one accuracy file; ConfigError naming the file and what is wrong."""
    file = Path(path)
    data = read_json(file, "measured accuracy file")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{file} must hold a JSON object (scripts/measure_accuracy.py writes one)")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ConfigError(f"{file} lacks {', '.join(missing)}; remake it with scripts/measure_accuracy.py")
    conditions = data["conditions"]
    if not isinstance(conditions, Mapping) or set(conditions) != set(CONDITION_FIELDS):
        raise ConfigError(f"{file}: 'conditions' must give exactly {', '.join(CONDITION_FIELDS)}")
    points = data["points"]
    if not isinstance(points, list) or not points:
        raise ConfigError(f"{file}: 'points' must be a non-empty list of measured design points")
    return MeasuredAccuracy(
        model=_field(data, "model", str, str(file)),
        dataset=_field(data, "dataset", str, str(file)),
        images=_field(data, "images", int, str(file)),
        float_accuracy=_field(data, "float_accuracy", float, str(file)),
        conditions={k: _field(conditions, k, int, f"{file} conditions") for k in CONDITION_FIELDS},
        points=tuple(_point(p, f"{file} point {i}") for i, p in enumerate(points)),
        path=file,
    )


def list_measured_accuracy(directory: str | Path | None = None) -> list[MeasuredAccuracy]:
    """Every accuracy file in ``directory`` (default :func:`accuracy_dir`), sorted by file name."""
    folder = Path(directory) if directory is not None else accuracy_dir()
    return [load_measured_accuracy(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def find_measured_accuracy(name: str, directory: str | Path | None = None) -> MeasuredAccuracy | None:
    """The measurement of ``name``: a ``<model>-<dataset>`` stem, or a model measured on one data set."""
    hits = [m for m in list_measured_accuracy(directory) if name in (m.name, m.model)]
    if len(hits) > 1:
        names = ", ".join(m.name for m in hits)
        raise ConfigError(f"several accuracy measurements match '{name}': {names}; name one of them")
    return hits[0] if hits else None


def packaged_accuracy_digest(directory: str | Path | None = None) -> str:
    """SHA-256 of every packaged accuracy file, names and contents (the rule of packaged activity files):
    part of the key of resumable work that reads them."""
    return packaged_activity_digest(directory or accuracy_dir())


def model_accuracy(
    network: str, dataset: str | None = None, directory: str | Path | None = None
) -> MeasuredAccuracy | None:
    """The measurement of model ``network``: the one on ``dataset`` when packaged, else the model's on
    any data set (:class:`~forms.cost.measured_activity.MeasurementSource` says whether it is its own)."""
    exact = find_measured_accuracy(f"{network}-{dataset}", directory) if dataset is not None else None
    return exact or find_measured_accuracy(network, directory)


def nearest_accuracy(
    network: str,
    fallback: str | None = None,
    directory: str | Path | None = None,
    dataset: str | None = None,
) -> MeasuredAccuracy | None:
    """The measurement a floor for ``network`` on ``dataset`` (None: not known) is judged by: the
    model's (:func:`model_accuracy`), else its family's
    (:data:`~forms.cost.measured_activity.NEAREST_MEASURED`, borrowed), else ``fallback``'s (a measured
    ``<model>-<dataset>``, borrowed; ConfigError when it is not packaged), else None."""
    found = model_accuracy(network, dataset, directory)
    nearest = NEAREST_MEASURED.get(network)
    if found is None and nearest is not None:
        found = find_measured_accuracy(nearest, directory)
    if found is not None or fallback is None:
        return found
    return accuracy_floor(network, 0.0, fallback, directory).measured


@dataclass(frozen=True)
class AccuracyFloor:
    """An accuracy constraint: at most ``max_drop_points`` below the float model, per a measurement."""

    max_drop_points: float
    """Largest allowed drop, in percentage points, below the measured float model's accuracy."""
    measured: MeasuredAccuracy
    """The measurement every point is judged by."""
    network: str
    """The model being costed (another one than the measured model when the measurement is borrowed)."""
    dataset: str | None = None
    """The data set the costed model is meant for (a checkpoint's or ``--dataset``); None: not known."""

    @property
    def floor(self) -> float:
        """Lowest allowed accuracy (0..1): the float accuracy less the allowed drop."""
        return self.measured.float_accuracy - self.max_drop_points / 100.0

    @property
    def source(self) -> MeasurementSource:
        """Whose measurement the floor is judged by: the costed network's own, borrowed (another model's,
        or the same model's on other data), or the same model's while the data set is unknown."""
        return MeasurementSource.of(self.network, self.dataset, self.measured.model, self.measured.dataset)

    @property
    def borrowed(self) -> bool:
        """Whether the measurement was taken on another model or another data set (:attr:`source`)."""
        return self.source.borrowed

    def allows(self, point: AccuracyPoint | None) -> bool:
        """Whether a measured point meets the floor (an unmeasured one never does)."""
        return point is not None and point.accuracy >= self.floor - 1e-12

    def describe(self) -> str:
        """One line, e.g. 'accuracy >= 0.9870 (float 0.9920 - 0.5 points; lenet5-mnist.json, 2000 images)',
        ending ', borrowed for lenet5 on cifar10' or ', data set unknown' unless the measurement is own."""
        m = self.measured
        note = self.source.note(self.network, self.dataset)
        return (
            f"accuracy >= {self.floor:.4f} (float {m.float_accuracy:.4f} - {self.max_drop_points:g} "
            f"point{'' if self.max_drop_points == 1 else 's'}; "
            f"{m.path.name}, {m.images} images{f', {note}' if note else ''})"
        )

    def record(self, point: AccuracyPoint | None) -> dict[str, Any]:
        """The floor and ``point``'s measurement as a plain dict (optimize.json)."""
        return {
            "floor": self.floor,
            "max_drop_points": self.max_drop_points,
            "float_accuracy": self.measured.float_accuracy,
            "measured_on": self.measured.name,
            "network": self.network,
            "dataset": self.dataset,
            "images": self.measured.images,
            "source": str(self.measured.path),
            "borrowed": self.borrowed,
            "dataset_known": self.source.dataset_known,
            "text": self.describe(),
            "accuracy": None if point is None else point.accuracy,
            "reference_accuracy": None if point is None else point.reference_accuracy,
            "clip_rate": None if point is None else point.clip_rate,
        }


def accuracy_floor(
    network: str,
    max_drop_points: float,
    accuracy_from: str | None = None,
    directory: str | Path | None = None,
    dataset: str | None = None,
) -> AccuracyFloor:
    """The floor for costing ``network`` on ``dataset`` (None: not known): the model's packaged
    measurement (:func:`model_accuracy`), or with ``accuracy_from`` the named network's; the floor says
    whether it is borrowed (:attr:`AccuracyFloor.source`). ConfigError when there is none, naming the
    measured networks."""
    if not max_drop_points >= 0:
        raise ConfigError(f"the allowed accuracy drop must be >= 0 points, got {max_drop_points}")
    name = accuracy_from or network
    measured = (
        find_measured_accuracy(accuracy_from, directory)
        if accuracy_from
        else model_accuracy(network, dataset, directory)
    )
    if measured is None:
        have = ", ".join(m.name for m in list_measured_accuracy(directory)) or "none"
        fix = "name a measured network" if accuracy_from else "borrow a measured network's accuracy"
        raise ConfigError(
            f"no measured accuracy for '{name}' (measured: {have}); {fix} with --accuracy-from NAME "
            "(labelled borrowed), or drop --max-accuracy-drop"
        )
    return AccuracyFloor(float(max_drop_points), measured, network, dataset)


def floor_from_options(
    network: str, max_drop_points: float | None, accuracy_from: str | None, dataset: str | None = None
) -> AccuracyFloor | None:
    """The floor ``--max-accuracy-drop`` and ``--accuracy-from`` ask for (None without a drop), for
    ``network`` on ``dataset`` (None: not known)."""
    if max_drop_points is None:
        if accuracy_from is not None:
            raise ConfigError("--accuracy-from needs --max-accuracy-drop (the floor it sets)")
        return None
    return accuracy_floor(network, max_drop_points, accuracy_from, dataset=dataset)
